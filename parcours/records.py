"""Parcours records as imports and feeds carry them: an usager, an orientation, a rendez-vous,
a contrat d'engagement, a manquement, recorded through the domain rules.

``relais import`` (a JSON Lines file) and the inbound feeds (an editor's CSV file, a pulled
API) hand records shaped by ``specs/import-v1.schema.json`` and already checked against it.
``ParcoursRecords`` applies them exactly as the API records the same facts, so the
activities they imply (ACT382, ACT380, GLI100) are opened and closed alike and their domain
events are published alike. Identifiers given in a record (a rendez-vous ``id``, an
``identifiantConsequenceSanction``) are kept. Applying the same record twice changes nothing.

``orientation``, ``rendez-vous``, ``contrat-engagement`` and ``manquement`` records designate
their usager by numéro France Travail. One ``ParcoursRecords`` serves one run (a file, a
feed's batch): a natural key given twice in a run is refused. Every refusal is a
``Refused`` whose message names fields and rules, never values (a NIR, a name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, SQLModel, select

from parcours import alimentation as alimentation_domain
from parcours import contrat as contrat_domain
from parcours import orientation as orientation_domain
from parcours import rendez_vous as rendez_vous_domain
from parcours.alimentation import Outcome
from parcours.perimeter import organisation_for
from parcours.ports import Refused
from parcours.tables import ContratEngagement, Orientation, RendezVous, Usager, UsagerOrganisation
from relais.core.keys import KeySet
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

RECORD_TYPES = ("usager", "orientation", "rendez-vous", "contrat-engagement", "manquement")
# Who the domain rules record as the agent of what an import creates (``agent_creation``...).
IMPORT_AGENT = "IMPORT"
# Columns that say when or how often a row was written, not what it holds.
_BOOKKEEPING = frozenset({"version", "created_at", "updated_at"})


class ParcoursRecords:
    """The parcours records of one run, applied in ``session`` (the caller commits)."""

    def __init__(self, session: Session, keys: KeySet, now: datetime) -> None:
        self.session = session
        self.keys = keys
        self.now = now
        self._organisation_ids: dict[str, int] = {}
        # Natural keys seen in this run, with the position of their record, to refuse repeats.
        self._seen: dict[tuple[str, str], int] = {}

    def apply(self, position: int, kind: str, data: Mapping[str, Any]) -> Outcome:
        """Record one record of ``kind`` (one of ``RECORD_TYPES``) found at ``position``."""
        if kind == "usager":
            # The numéro identifies a person: it is not repeated in the message.
            self._note_key(position, kind, data["numeroFranceTravail"], "numéro France Travail déjà présent")
            return self._usager(data)
        if kind == "orientation":
            return self._orientation(data)
        if kind == "rendez-vous":
            self._note_key(position, kind, data["id"], f"rendez-vous « {data['id']} » déjà défini")
            return self._rendez_vous(data)
        if kind == "contrat-engagement":
            self._note_key(
                position, kind, data["numeroFranceTravail"], "contrat d'engagement de cet usager déjà défini"
            )
            return self._contrat_engagement(data)
        if kind == "manquement":
            for consequence in data["consequences"]:
                identifiant = consequence["identifiantConsequenceSanction"]
                self._note_key(position, "consequence", identifiant, f"conséquence « {identifiant} » déjà définie")
            return self._manquement(data)
        raise ValueError(f"not a parcours record: {kind}")

    def organisation_id(self, code: str) -> int:
        """The id of the organisation ``code``, declared earlier in the run or already known."""
        if code not in self._organisation_ids:
            organisation = self.session.exec(select(Organisation).where(Organisation.code == code)).first()
            if organisation is None or organisation.id is None:
                raise Refused(
                    RefusalKind.UNKNOWN,
                    "ORGANISATION_INCONNUE",
                    f"organisation inconnue « {code} » (à déclarer plus haut dans le fichier)",
                )
            self._organisation_ids[code] = organisation.id
        return self._organisation_ids[code]

    def _note_key(self, position: int, kind: str, key: str, message: str) -> None:
        first = self._seen.setdefault((kind, key), position)
        if first != position:
            raise Refused(RefusalKind.CONFLICT, "ENREGISTREMENT_EN_DOUBLE", f"{message} ligne {first}")

    # Usagers --------------------------------------------------------------------------------

    def _usager(self, data: Mapping[str, Any]) -> Outcome:
        organisation_ids = {self.organisation_id(code) for code in data.get("organisations", [])}
        # Identity and NIR: the producer feed's rule, so both check and encrypt alike.
        usager, outcome = alimentation_domain.enregistrer_usager(
            self.session, self.keys, data["numeroFranceTravail"], data, now=self.now
        )
        # The status as given, with the contrat d'engagement rules of a cessation or a return.
        statut = alimentation_domain.appliquer_contrat(self.session, usager, data.get("contrat"), now=self.now)
        if self._attach(usager.id, organisation_ids) and statut == "unchanged":
            usager.updated_at = self.now
            self.session.add(usager)
            statut = "updated"
        return "updated" if outcome == "unchanged" and statut == "updated" else outcome

    def _attach(self, usager_id: str, organisation_ids: set[int]) -> bool:
        """Make the usager's explicit attachments exactly ``organisation_ids``; True if they changed."""
        rows = self.session.exec(select(UsagerOrganisation).where(UsagerOrganisation.usager_id == usager_id)).all()
        current = {row.organisation_id for row in rows}
        if current == organisation_ids:
            return False
        for row in rows:
            if row.organisation_id not in organisation_ids:
                self.session.delete(row)
        for organisation_id in sorted(organisation_ids - current):
            self.session.add(UsagerOrganisation(usager_id=usager_id, organisation_id=organisation_id))
        self.session.flush()
        return True

    def _usager_of(self, data: Mapping[str, Any]) -> Usager:
        usager = alimentation_domain.usager_par_numero(self.session, data["numeroFranceTravail"])
        if usager is None:
            # The numéro identifies a person: it is not repeated in the message.
            raise Refused(
                RefusalKind.UNKNOWN,
                "USAGER_INCONNU",
                "usager inconnu pour ce numéro France Travail (à déclarer plus haut dans le fichier)",
            )
        return usager

    # Orientations ---------------------------------------------------------------------------

    def _orientation(self, data: Mapping[str, Any]) -> Outcome:
        """EN_ATTENTE or BROUILLON: preconiser. OUVERT with a decision: preconiser, then decider.
        OUVERT without one: orienter (the forced orientation). See the schema's description."""
        usager = self._usager_of(data)
        preconisation = {
            "parcours": data["parcours"],
            "organisme": data["organisme"],
            "structure": data.get("structure"),
            "origine": data.get("origine"),
            "criteres_orientation": data.get("criteres_orientation"),
        }
        etat = data.get("etat") or orientation_domain.EN_ATTENTE
        agent = data.get("agent_creation") or IMPORT_AGENT
        existing = _same_orientation(orientation_domain.orientations(self.session, usager.id), preconisation)
        if existing is not None:
            if etat != orientation_domain.OUVERT or existing.etat != orientation_domain.EN_ATTENTE:
                # Already recorded; what happened to it since is the API's business.
                return "unchanged"
            self._ouvrir(usager, preconisation, data, agent)
            return "updated"
        if etat == orientation_domain.OUVERT:
            if data.get("decision") is not None:
                orientation_domain.preconiser(self.session, usager, dict(preconisation), now=self.now, agent=agent)
            self._ouvrir(usager, preconisation, data, agent)
        else:
            payload = {**preconisation, "etat": etat}
            orientation_domain.preconiser(self.session, usager, payload, now=self.now, agent=agent)
        return "created"

    def _ouvrir(self, usager: Usager, preconisation: Mapping[str, Any], data: Mapping[str, Any], agent: str) -> None:
        decision = data.get("decision")
        if decision is not None:
            orientation_domain.decider(
                self.session, usager, dict(decision), now=self.now, agent=decision.get("agent_decision") or agent
            )
        else:
            forced = {**preconisation, "structure_decision": data.get("structure_decision")}
            orientation_domain.orienter(self.session, usager, forced, now=self.now, agent=agent)

    # Rendez-vous ----------------------------------------------------------------------------

    def _rendez_vous(self, data: Mapping[str, Any]) -> Outcome:
        usager = self._usager_of(data)
        organisation = self._rendez_vous_organisation(usager, data)
        payload = {key: value for key, value in data.items() if key not in ("numeroFranceTravail", "organisation")}
        existing = self.session.get(RendezVous, data["id"])
        if existing is not None and existing.usager_id != usager.id:
            raise Refused(
                RefusalKind.CONFLICT,
                "ID_DEJA_UTILISE",
                f"rendez-vous « {data['id']} » déjà enregistré pour un autre usager",
            )
        return self._recorded(
            existing,
            lambda: rendez_vous_domain.enregistrer_rendez_vous(
                self.session, usager, organisation, payload, now=self.now
            ),
        )

    def _rendez_vous_organisation(self, usager: Usager, data: Mapping[str, Any]) -> Organisation:
        organisation: Organisation | None
        if data.get("organisation"):
            organisation = self.session.get(Organisation, self.organisation_id(data["organisation"]))
        elif data.get("organisme"):
            organisation = organisation_for(self.session, usager, data["organisme"]["code"])
        else:
            raise Refused(
                RefusalKind.INVALID,
                "CHAMP_OBLIGATOIRE",
                "champ obligatoire absent : data.organisation ou data.organisme",
            )
        if organisation is None:
            raise Refused(
                RefusalKind.UNKNOWN,
                "ORGANISATION_INTROUVABLE",
                "aucune organisation de ce type ne couvre le département de l'usager : précisez data.organisation",
            )
        return organisation

    # Contrats d'engagement ------------------------------------------------------------------

    def _contrat_engagement(self, data: Mapping[str, Any]) -> Outcome:
        usager = self._usager_of(data)
        payload = {key: value for key, value in data.items() if key != "numeroFranceTravail"}
        existing = self.session.exec(select(ContratEngagement).where(ContratEngagement.usager_id == usager.id)).first()
        return self._recorded(
            existing, lambda: contrat_domain.enregistrer_contrat(self.session, usager.id, payload, now=self.now)
        )

    # Manquements ----------------------------------------------------------------------------

    def _manquement(self, data: Mapping[str, Any]) -> Outcome:
        usager = self._usager_of(data)
        results = alimentation_domain.ouvrir_manquement(self.session, usager, data, now=self.now, agent=IMPORT_AGENT)
        return "created" if any(outcome == "created" for _, outcome in results) else "unchanged"

    # Helpers ----------------------------------------------------------------------------------

    def _recorded(self, existing: SQLModel | None, record: Callable[[], SQLModel]) -> Outcome:
        """Run a domain rule that records a row as given; undo it when it changed nothing.

        Such a rule bumps the row's version even when it writes the same values again: the
        savepoint keeps a re-import from touching anything (activities and events included)
        when the row already holds what the record says.
        """
        before = _content(existing) if existing is not None else None
        savepoint = self.session.begin_nested()
        row = record()
        if before is not None and _content(row) == before:
            savepoint.rollback()
            return "unchanged"
        savepoint.commit()
        return "created" if before is None else "updated"


def _content(row: SQLModel) -> dict[str, Any]:
    return {name: value for name, value in row.model_dump().items() if name not in _BOOKKEEPING}


def _same_orientation(candidates: Iterable[Orientation], preconisation: Mapping[str, Any]) -> Orientation | None:
    """The usager's orientation (most recent first) that was preconised as ``preconisation`` says."""
    wanted = (
        preconisation.get("origine"),
        preconisation["parcours"],
        preconisation["organisme"],
        _structure_key(preconisation.get("structure")),
    )
    for orientation in candidates:
        # A refusal replaces parcours and organisme with the counter-proposal; the decision
        # keeps what was preconised.
        decision = orientation.decision or {}
        preconised = (
            orientation.origine,
            decision.get("parcours_preconise", orientation.parcours),
            decision.get("organisme_preconise", orientation.organisme),
            _structure_key(decision["structure"] if "structure" in decision else orientation.structure),
        )
        if preconised == wanted:
            return orientation
    return None


def _structure_key(structure: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if not structure:
        return None
    key = tuple(structure.get(name) or None for name in ("code_aurore", "code_safir", "libelle_structure"))
    return key if any(key) else None
