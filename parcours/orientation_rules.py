"""The orientation rule table that calculOrientation applies: data a département can read and adjust.

France Travail does not publish its orientation algorithm. Relais ships a small, readable
table (``orientation_rules.json``, next to this module) and lets a département replace it
with its own file (setting ``orientation_rules_file``, env ``RELAIS_ORIENTATION_RULES_FILE``).
The file format is described in the table itself (its ``description``):

- ``criteres_requis``: if one is missing, the result is ``IND`` / ``IND`` (préconisation
  incomplète) and the justification names the missing criteria;
- ``regles``: tried in order, the first whose ``si`` holds gives ``parcours`` and ``organisme``;
- ``defaut``: the result when no rule applies.

A clause is ``{"critere": name, "egal": value}``, ``{"critere": name, "dans": [values]}`` or
``{"critere": name, "min": n, "max": n}``; ``si`` has ``toutes`` (all clauses) and/or
``une_parmi`` (at least one). An absent criterion makes a clause false. ``age`` is computed
from ``date_naissance`` at the date of the calculation.

A table is checked when loaded: an unknown criterion, parcours or organisme, or a malformed
clause, raises ``RuleTableError`` naming the place in the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_RULES_FILE = Path(__file__).with_name("orientation_rules.json")

# The contract's criteria (FT's CriteresOrientation and the collection's calculOrientation body),
# the names a rule may require; the orientation domain reads and shows the same list.
CRITERES = (
    "brsa",
    "date_naissance",
    "adresse",
    "situation_professionnelle",
    "type_emploi",
    "niveau_etude",
    "capacite_a_travailler",
    "projet_pro",
    "contrainte_sante",
    "contrainte_logement",
    "contrainte_mobilite",
    "contrainte_familiale",
    "contrainte_financiere",
    "contrainte_administrative_juridique",
    "contrainte_francais_calcul",
    "contrainte_numerique",
    "boe",
    "baeeh",
    "scolarite_etablissement_specialise",
    "esat",
    "boe_souhait_accompagnement",
    "msa_autonomie_recherche_emploi",
    "msa_demarches_professionnelles",
)
# Criteria the rules may test besides those given: computed from the others.
CRITERES_CALCULES = ("age",)
PARCOURS_CALCULABLES = ("PED", "PSO", "PSP")
ORGANISMES_CALCULABLES = ("CD", "FT", "ML", "CE", "DCD")


class RuleTableError(ValueError):
    """The rule table is malformed; the message names where."""


@dataclass(frozen=True)
class Clause:
    critere: str
    egal: Any = None
    has_egal: bool = False
    dans: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def holds(self, valeurs: Mapping[str, Any]) -> bool:
        if valeurs.get(self.critere) is None:
            return False
        value = valeurs[self.critere]
        if self.has_egal and value != self.egal:
            return False
        if self.dans is not None and value not in self.dans:
            return False
        if self.minimum is not None or self.maximum is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            if self.minimum is not None and value < self.minimum:
                return False
            if self.maximum is not None and value > self.maximum:
                return False
        return True


@dataclass(frozen=True)
class Rule:
    id: str
    libelle: str
    parcours: str
    organisme: str
    toutes: tuple[Clause, ...] = ()
    une_parmi: tuple[Clause, ...] = ()

    def matching_criteria(self, valeurs: Mapping[str, Any]) -> list[str] | None:
        """The criteria that made the rule apply, or None when it does not."""
        if not all(clause.holds(valeurs) for clause in self.toutes):
            return None
        criteres = [clause.critere for clause in self.toutes]
        if self.une_parmi:
            matched = [clause.critere for clause in self.une_parmi if clause.holds(valeurs)]
            if not matched:
                return None
            criteres += matched
        return list(dict.fromkeys(criteres))


@dataclass(frozen=True)
class Verdict:
    """The result of a calculation and why (``justification``, additive field of the answer)."""

    parcours: str
    organisme: str
    justification: list[dict[str, Any]]
    structure: dict[str, Any] | None = None
    criteres_manquants: list[str] = field(default_factory=list)

    def with_structure(self, structure: dict[str, Any] | None) -> Verdict:
        if self.organisme == "IND":
            return self
        if structure is None:
            note = {
                "regle": "structure",
                "libelle": f"Aucune structure de l'organisme {self.organisme} ne couvre l'adresse de l'usager",
                "criteres": ["adresse"],
            }
        else:
            note = {
                "regle": "structure",
                "libelle": f"Structure de l'organisme {self.organisme} couvrant l'adresse de l'usager",
                "criteres": ["adresse"],
            }
        return replace(self, structure=structure, justification=[*self.justification, note])


@dataclass(frozen=True)
class RuleTable:
    version: int
    libelle: str
    criteres_requis: tuple[str, ...]
    regles: tuple[Rule, ...]
    defaut: Rule

    def evaluate(self, criteres: Mapping[str, Any], *, today: date) -> Verdict:
        valeurs = dict(criteres)
        valeurs["age"] = _age(criteres.get("date_naissance"), today)
        missing = [name for name in self.criteres_requis if _absent(valeurs.get(name))]
        if missing:
            return Verdict(
                parcours="IND",
                organisme="IND",
                criteres_manquants=missing,
                justification=[
                    {
                        "regle": "criteres_manquants",
                        "libelle": "Préconisation incomplète : critères manquants (" + ", ".join(missing) + ")",
                        "criteres": missing,
                    }
                ],
            )
        for rule in self.regles:
            matched = rule.matching_criteria(valeurs)
            if matched is not None:
                return Verdict(
                    parcours=rule.parcours,
                    organisme=rule.organisme,
                    justification=[{"regle": rule.id, "libelle": rule.libelle, "criteres": matched}],
                )
        tested = sorted({c.critere for rule in self.regles for c in (*rule.toutes, *rule.une_parmi)})
        return Verdict(
            parcours=self.defaut.parcours,
            organisme=self.defaut.organisme,
            justification=[{"regle": self.defaut.id, "libelle": self.defaut.libelle, "criteres": tested}],
        )


def _absent(value: Any) -> bool:
    return value is None or value == "" or value == {}


def _age(naissance: Any, today: date) -> int | None:
    if not naissance:
        return None
    try:
        born = naissance if isinstance(naissance, date) else date.fromisoformat(str(naissance))
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


# Loading -------------------------------------------------------------------------------


def parse_rules(data: Any, *, source: str = "table") -> RuleTable:
    """Check and build a rule table from its JSON document."""
    if not isinstance(data, Mapping):
        raise RuleTableError(f"{source} : un objet JSON est attendu")
    known = set(CRITERES) | set(CRITERES_CALCULES)
    requis = data.get("criteres_requis", [])
    if not isinstance(requis, list) or not all(isinstance(name, str) and name in CRITERES for name in requis):
        raise RuleTableError(f"{source} : criteres_requis doit être une liste de critères connus")
    regles = data.get("regles")
    if not isinstance(regles, list):
        raise RuleTableError(f"{source} : regles doit être une liste")
    parsed = tuple(_rule(item, f"{source} regles[{index}]", known) for index, item in enumerate(regles))
    ids = [rule.id for rule in parsed]
    if len(set(ids)) != len(ids):
        raise RuleTableError(f"{source} : deux règles portent le même id")
    defaut_data = data.get("defaut")
    if not isinstance(defaut_data, Mapping) or "si" in defaut_data:
        raise RuleTableError(f"{source} defaut : objet {{id, libelle, parcours, organisme}} sans condition attendu")
    defaut = _rule(defaut_data, f"{source} defaut", known)
    version = data.get("version", 1)
    if not isinstance(version, int):
        raise RuleTableError(f"{source} : version doit être un entier")
    return RuleTable(
        version=version,
        libelle=str(data.get("libelle", "")),
        criteres_requis=tuple(requis),
        regles=parsed,
        defaut=defaut,
    )


def _rule(item: Any, where: str, known: set[str]) -> Rule:
    if not isinstance(item, Mapping):
        raise RuleTableError(f"{where} : objet attendu")
    rule_id, libelle = item.get("id"), item.get("libelle")
    if not isinstance(rule_id, str) or not rule_id or not isinstance(libelle, str) or not libelle:
        raise RuleTableError(f"{where} : id et libelle (textes non vides) sont obligatoires")
    if item.get("parcours") not in PARCOURS_CALCULABLES:
        raise RuleTableError(f"{where} : parcours doit valoir l'un de {', '.join(PARCOURS_CALCULABLES)}")
    if item.get("organisme") not in ORGANISMES_CALCULABLES:
        raise RuleTableError(f"{where} : organisme doit valoir l'un de {', '.join(ORGANISMES_CALCULABLES)}")
    si = item.get("si", {})
    if not isinstance(si, Mapping) or set(si) - {"toutes", "une_parmi"}:
        raise RuleTableError(f"{where} si : seules les clés toutes et une_parmi sont permises")
    toutes = _clauses(si.get("toutes", []), f"{where} si.toutes", known)
    une_parmi = _clauses(si.get("une_parmi", []), f"{where} si.une_parmi", known)
    if "si" in item and not toutes and not une_parmi:
        raise RuleTableError(f"{where} si : au moins une clause est attendue")
    return Rule(rule_id, libelle, item["parcours"], item["organisme"], toutes, une_parmi)


def _clauses(items: Any, where: str, known: set[str]) -> tuple[Clause, ...]:
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise RuleTableError(f"{where} : liste de clauses attendue")
    return tuple(_clause(item, f"{where}[{index}]", known) for index, item in enumerate(items))


def _clause(item: Any, where: str, known: set[str]) -> Clause:
    if not isinstance(item, Mapping):
        raise RuleTableError(f"{where} : objet attendu")
    if set(item) - {"critere", "egal", "dans", "min", "max"}:
        raise RuleTableError(f"{where} : clés permises critere, egal, dans, min, max")
    critere = item.get("critere")
    if critere not in known:
        raise RuleTableError(f"{where} : critère inconnu {critere!r}")
    if not set(item) & {"egal", "dans", "min", "max"}:
        raise RuleTableError(f"{where} : egal, dans, min ou max est attendu")
    dans = item.get("dans")
    if dans is not None and not isinstance(dans, list):
        raise RuleTableError(f"{where} : dans doit être une liste")
    for bound in ("min", "max"):
        value = item.get(bound)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise RuleTableError(f"{where} : {bound} doit être un nombre")
    return Clause(
        critere=critere,
        egal=item.get("egal"),
        has_egal="egal" in item,
        dans=tuple(dans) if dans is not None else None,
        minimum=item.get("min"),
        maximum=item.get("max"),
    )


def load_rules(path: Path | None = None) -> RuleTable:
    """The table in ``path`` (the shipped default when None), checked; cached until the file changes."""
    target = path or DEFAULT_RULES_FILE
    try:
        mtime = target.stat().st_mtime_ns
    except OSError as exc:
        raise RuleTableError(f"{target} : fichier illisible ({exc.strerror})") from None
    return _load(target, mtime)


@lru_cache(maxsize=8)
def _load(path: Path, mtime: int) -> RuleTable:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuleTableError(f"{path} : JSON illisible ({exc.__class__.__name__})") from None
    return parse_rules(data, source=str(path))


def default_rules() -> RuleTable:
    return load_rules(None)
