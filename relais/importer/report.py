"""What an import did, per record type: created, updated, unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field

from parcours.alimentation import Outcome

# Kinds reported only when the file has some (``ImportReport._by_type``).
HABILITATION_KINDS = ("souscriptions", "agents", "designations", "habilitations")


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


# (key in as_dict, French label, feminine) per record type, in report order.
_REPORTED = (
    ("organisations", "organisations", True),
    ("clients", "clients", False),
    ("usagers", "usagers", False),
    ("orientations", "orientations", True),
    ("rendez_vous", "rendez-vous", False),
    ("contrats_engagement", "contrats d'engagement", False),
    ("manquements", "manquements", False),
    ("souscriptions", "souscriptions", True),
    ("agents", "agents", False),
    ("designations", "désignations", True),
    ("habilitations", "habilitations", True),
)


@dataclass
class ImportReport:
    organisations: Counts = field(default_factory=Counts)
    clients: Counts = field(default_factory=Counts)
    usagers: Counts = field(default_factory=Counts)
    orientations: Counts = field(default_factory=Counts)
    rendez_vous: Counts = field(default_factory=Counts)
    contrats_engagement: Counts = field(default_factory=Counts)
    manquements: Counts = field(default_factory=Counts)
    souscriptions: Counts = field(default_factory=Counts)
    agents: Counts = field(default_factory=Counts)
    designations: Counts = field(default_factory=Counts)
    habilitations: Counts = field(default_factory=Counts)

    @property
    def changed(self) -> bool:
        return any(counts.created or counts.updated for counts in self._by_type().values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"created": c.created, "updated": c.updated, "unchanged": c.unchanged}
            for kind, c in self._by_type().items()
        }

    def summary_lines(self) -> list[str]:
        """One French line per type, e.g. « usagers : 0 créés, 0 modifiés, 300 inchangés »."""
        lines = []
        for key, label, feminine in _REPORTED:
            if key not in self._by_type():
                continue
            counts = getattr(self, key)
            suffix = "es" if feminine else "s"
            lines.append(
                f"{label} : {counts.created} créé{suffix}, {counts.updated} modifié{suffix}, "
                f"{counts.unchanged} inchangé{suffix}"
            )
        return lines

    def _by_type(self) -> dict[str, Counts]:
        # Habilitations kinds are reported only when the file has some, so that the report
        # of a file without them reads as it always did.
        return {
            key: getattr(self, key)
            for key, _, _ in _REPORTED
            if key not in HABILITATION_KINDS or getattr(self, key).total
        }
