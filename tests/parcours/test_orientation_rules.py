"""The orientation rule table: the shipped default, its evaluation and how a bad table is refused."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from parcours.orientation_rules import (
    DEFAULT_RULES_FILE,
    RuleTableError,
    default_rules,
    load_rules,
    parse_rules,
)
from relais.demo.orientation_criteria import CRITERES_COMPLETS

TODAY = date(2026, 11, 23)


def evaluate(**changes: Any) -> tuple[str, str, str, list[str]]:
    verdict = default_rules().evaluate({**CRITERES_COMPLETS, **changes}, today=TODAY)
    [why] = verdict.justification
    return verdict.parcours, verdict.organisme, why["regle"], why["criteres"]


class TestDefaultTable:
    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({}, ("PED", "FT", "pret_a_l_emploi")),
            ({"capacite_a_travailler": False}, ("PSP", "CD", "incapacite_travail")),
            ({"contrainte_sante": "INCAPACITE_RECHERCHE_ACTIVITE_PRO"}, ("PSP", "CD", "sante_incapacite_recherche")),
            ({"contrainte_logement": "SANS_LOGEMENT"}, ("PSP", "CD", "sans_logement")),
            ({"boe": True, "boe_souhait_accompagnement": True}, ("PED", "CE", "boe_accompagnement_specialise")),
            ({"boe": True, "boe_souhait_accompagnement": False}, ("PED", "FT", "pret_a_l_emploi")),
            ({"contrainte_numerique": "NON_ACCES_INTERNET"}, ("PSO", "CD", "freins_peripheriques")),
            ({"contrainte_familiale": "AIDANT_FAMILIAL"}, ("PSO", "CD", "freins_peripheriques")),
            ({"date_naissance": "2001-01-01"}, ("PED", "ML", "jeune_moins_26_ans")),
        ],
    )
    def test_each_rule(self, changes: dict[str, Any], expected: tuple[str, str, str]) -> None:
        assert evaluate(**changes)[:3] == expected

    def test_first_matching_rule_wins(self) -> None:
        parcours, _, regle, _ = evaluate(capacite_a_travailler=False, contrainte_logement="SANS_LOGEMENT")
        assert (parcours, regle) == ("PSP", "incapacite_travail")

    def test_justification_names_the_criteria_that_matched(self) -> None:
        *_, criteres = evaluate(
            contrainte_mobilite="AUCUN_MOYEN_DE_TRANSPORT", contrainte_numerique="NON_ACCES_INTERNET"
        )
        assert criteres == ["contrainte_mobilite", "contrainte_numerique"]
        *_, criteres = evaluate()
        assert "capacite_a_travailler" in criteres  # the default lists what was tested

    @pytest.mark.parametrize(("naissance", "organisme"), [("2000-11-24", "ML"), ("2000-11-23", "FT")])
    def test_age_is_computed_at_the_date_of_the_calculation(self, naissance: str, organisme: str) -> None:
        # 25 the day before the 26th birthday, 26 on it.
        assert evaluate(date_naissance=naissance)[1] == organisme

    @pytest.mark.parametrize(
        ("missing", "absent"),
        [("capacite_a_travailler", None), ("boe", None), ("projet_pro", ""), ("adresse", {}), ("adresse", None)],
    )
    def test_missing_criteria_give_ind(self, missing: str, absent: Any) -> None:
        verdict = default_rules().evaluate({**CRITERES_COMPLETS, missing: absent}, today=TODAY)
        assert (verdict.parcours, verdict.organisme) == ("IND", "IND")
        assert verdict.criteres_manquants == [missing]
        assert verdict.justification[0]["regle"] == "criteres_manquants"
        assert missing in verdict.justification[0]["libelle"]

    def test_structure_note_is_added_for_a_computed_organisme(self) -> None:
        verdict = default_rules().evaluate(CRITERES_COMPLETS, today=TODAY)
        with_structure = verdict.with_structure({"code_aurore": "NAQ0405"})
        assert with_structure.structure == {"code_aurore": "NAQ0405"}
        assert with_structure.justification[-1]["regle"] == "structure"
        assert verdict.with_structure(None).justification[-1]["libelle"].startswith("Aucune structure")
        ind = default_rules().evaluate({}, today=TODAY)
        assert ind.with_structure(None) == ind

    def test_the_shipped_file_documents_its_format(self) -> None:
        data = json.loads(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
        assert any("une_parmi" in line for line in data["description"])
        assert [rule["id"] for rule in data["regles"]] == [rule.id for rule in default_rules().regles]


MINIMAL: dict[str, Any] = {
    "criteres_requis": ["brsa"],
    "regles": [
        {
            "id": "msa",
            "libelle": "Autonomie faible",
            "si": {"toutes": [{"critere": "msa_autonomie_recherche_emploi", "max": 2}]},
            "parcours": "PSO",
            "organisme": "CD",
        }
    ],
    "defaut": {"id": "defaut", "libelle": "Par défaut", "parcours": "PED", "organisme": "FT"},
}


class TestCustomTables:
    @pytest.mark.parametrize(("value", "regle"), [(1, "msa"), (2, "msa"), (3, "defaut"), (True, "defaut")])
    def test_numeric_bounds(self, value: Any, regle: str) -> None:
        verdict = parse_rules(MINIMAL).evaluate({"brsa": True, "msa_autonomie_recherche_emploi": value}, today=TODAY)
        assert verdict.justification[0]["regle"] == regle

    @pytest.mark.parametrize(
        ("change", "where"),
        [
            ({"regles": [{**MINIMAL["regles"][0], "parcours": "IND"}]}, "regles[0]"),
            ({"regles": [{**MINIMAL["regles"][0], "organisme": "XX"}]}, "regles[0]"),
            ({"regles": [{**MINIMAL["regles"][0], "si": {"toutes": [{"critere": "inconnu", "egal": 1}]}}]}, "inconnu"),
            ({"regles": [{**MINIMAL["regles"][0], "si": {"toutes": [{"critere": "brsa"}]}}]}, "si.toutes[0]"),
            ({"regles": [{**MINIMAL["regles"][0], "si": {"toutes": [{"critere": "brsa", "max": "2"}]}}]}, "max"),
            ({"regles": [{**MINIMAL["regles"][0], "si": {"aucune": []}}]}, "si"),
            ({"regles": [{**MINIMAL["regles"][0], "si": {}}]}, "au moins une clause"),
            ({"regles": [MINIMAL["regles"][0], MINIMAL["regles"][0]]}, "même id"),
            ({"defaut": {**MINIMAL["defaut"], "si": {"toutes": []}}}, "defaut"),
            ({"criteres_requis": ["age"]}, "criteres_requis"),
            ({"regles": {}}, "regles"),
        ],
    )
    def test_malformed_tables_are_refused_with_their_place(self, change: dict[str, Any], where: str) -> None:
        with pytest.raises(RuleTableError, match=r".*") as raised:
            parse_rules({**MINIMAL, **change}, source="cd33.json")
        assert str(raised.value).startswith("cd33.json")
        assert where in str(raised.value)

    def test_load_reloads_a_changed_file(self, tmp_path: Path) -> None:
        path = tmp_path / "regles.json"
        path.write_text(json.dumps(MINIMAL))
        assert load_rules(path).defaut.organisme == "FT"
        changed = {**MINIMAL, "defaut": {**MINIMAL["defaut"], "organisme": "CD"}}
        path.write_text(json.dumps(changed))
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert load_rules(path).defaut.organisme == "CD"

    def test_unreadable_or_invalid_files(self, tmp_path: Path) -> None:
        with pytest.raises(RuleTableError, match="illisible"):
            load_rules(tmp_path / "absent.json")
        bad = tmp_path / "bad.json"
        bad.write_text("{")
        with pytest.raises(RuleTableError, match="JSON illisible"):
            load_rules(bad)
        bad.write_text("[]")
        with pytest.raises(RuleTableError, match="objet JSON"):
            load_rules(bad)
