"""The demonstration dataset: valid, realistic, deterministic, with its deliberate special cases."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from relais.core.nir import is_valid_numero_france_travail, normalize_nir
from relais.demo.dataset import (
    ALIMENTATION_SCOPES,
    DEMO_CLIENTS,
    PARTENAIRE_SCOPES,
    RECHERCHE_SCOPES,
    build_demo_records,
    demo_parcours,
    demo_samples,
)
from specs import SPECS_DIR, served_documents


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return build_demo_records()


@pytest.fixture(scope="module")
def usagers(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record["data"] for record in records if record["type"] == "usager"]


def test_every_record_follows_the_import_schema(records: list[dict[str, Any]]) -> None:
    schema = json.loads((SPECS_DIR / "import-v1.schema.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    assert [record for record in records if not validator.is_valid(record)] == []


def test_the_dataset_is_deterministic(records: list[dict[str, Any]]) -> None:
    assert build_demo_records() == records
    assert build_demo_records(seed=1) != records


def test_organisations_and_clients(records: list[dict[str, Any]]) -> None:
    organisations = {r["data"]["code"]: r["data"] for r in records if r["type"] == "organisation"}
    clients = {r["data"]["client_id"]: r["data"] for r in records if r["type"] == "client"}

    assert set(organisations) == {"CD33", "CD2A", "CD93", "FT-NAQ", "ML-BDX", "CE33"}
    assert organisations["CD2A"]["territoire"] == ["2A"]
    assert organisations["FT-NAQ"]["territoire"] == ["24", "33", "40", "47", "64"]
    aurore = [o["code_aurore"] for o in organisations.values()]
    assert all(aurore) and len(set(aurore)) == len(aurore)
    assert {c.client_id for c in DEMO_CLIENTS} == set(clients)
    assert all(c["client_secret"].startswith("demo-") for c in clients.values())
    per_cd = [c for c in clients.values() if c["scopes"] == list(PARTENAIRE_SCOPES)]
    assert sorted(c["organisation"] for c in per_cd) == ["CD2A", "CD33", "CD93"]
    limited = [c for c in clients.values() if c["scopes"] == list(RECHERCHE_SCOPES)]
    assert [c["organisation"] for c in limited] == ["CD33"]
    producers = [c for c in clients.values() if c["scopes"] == list(ALIMENTATION_SCOPES)]
    assert [c["organisation"] for c in producers] == ["FT-NAQ"]


def _declared_scopes(spec: str) -> set[str]:
    document = yaml.safe_load((SPECS_DIR / spec).read_text(encoding="utf-8"))
    flows = document["components"]["securitySchemes"]["oauth2"]["flows"]
    return set(flows["clientCredentials"]["scopes"])


def test_the_gironde_client_may_call_every_partner_api_and_france_travail_the_feed(
    records: list[dict[str, Any]],
) -> None:
    clients = {r["data"]["client_id"]: set(r["data"]["scopes"]) for r in records if r["type"] == "client"}
    # France Travail's partner APIs; Relais' own APIs (feed, admin) are not the département's.
    partner_specs = [name for name, _, base in served_documents() if base.startswith("/partenaire/")]
    feed = _declared_scopes("alimentation-v1.yaml")

    assert len(partner_specs) >= 9
    for spec in partner_specs:
        assert _declared_scopes(spec) <= clients["demo-cd33"], spec
    assert clients["demo-ft-naq"] == feed
    assert not any(feed & scopes for client, scopes in clients.items() if client != "demo-ft-naq")


def test_every_nir_is_valid_and_consistent_with_the_person(usagers: list[dict[str, Any]]) -> None:
    for usager in usagers:
        etat_civil = usager["etatCivil"]
        nir, naissance = etat_civil["nir"], date.fromisoformat(etat_civil["dateNaissance"])
        assert len(nir) == 15
        assert normalize_nir(nir) == nir[:13]
        assert nir[0] == ("1" if etat_civil["civilite"] == "M." else "2")
        assert nir[1:5] == f"{naissance.year % 100:02d}{naissance.month:02d}"
        assert date(1960, 1, 1) <= naissance <= date(2005, 12, 31)


def test_corsican_nirs_are_present_and_only_after_1976(usagers: list[dict[str, Any]]) -> None:
    corsican = [u for u in usagers if u["etatCivil"]["nir"][5:7] in ("2A", "2B")]

    assert any(u["etatCivil"]["nir"][5:7] == "2A" for u in corsican)
    assert all(u["etatCivil"]["dateNaissance"] >= "1976" for u in corsican)


def test_numeros_are_unique_and_there_is_exactly_one_duplicate_nir(usagers: list[dict[str, Any]]) -> None:
    numeros = [u["numeroFranceTravail"] for u in usagers]
    identities = Counter((u["etatCivil"]["nir"], u["etatCivil"]["dateNaissance"]) for u in usagers)

    assert 250 <= len(usagers) <= 350
    assert len(set(numeros)) == len(numeros)
    assert all(is_valid_numero_france_travail(numero) for numero in numeros)
    assert sorted(identities.values(), reverse=True)[:2] == [2, 1]
    assert Counter(u["etatCivil"]["nir"] for u in usagers).most_common(2)[1][1] == 1


def test_addresses_match_their_departement(usagers: list[dict[str, Any]]) -> None:
    departements: Counter[str] = Counter()
    for usager in usagers:
        adresse = usager["adresses"][0]
        insee, postcode = adresse["codeInseeCommune"], adresse["codePostal"]
        departement = insee[:2]
        departements[departement] += 1
        assert postcode[:2] == ("20" if departement == "2A" else departement)
        assert adresse["indicateurResidentQPV"] in ("QP", "NQ")

    assert set(departements) == {"33", "2A", "93"}
    assert departements["33"] > len(usagers) / 2


def test_contracts_certification_and_attachments(usagers: list[dict[str, Any]]) -> None:
    with_contrat = [u for u in usagers if u.get("contrat")]
    statuts = Counter(u["contrat"]["m_statut"] for u in with_contrat)
    attachments = Counter(code for u in usagers for code in u["organisations"])

    assert 0.7 <= len(with_contrat) / len(usagers) <= 0.9
    assert set(statuts) == {"Inscrit", "Cessé", "Radié", "Identifié"}
    assert sum(u["topIdentiteCertifiee"] == "O" for u in usagers) > len(usagers) * 0.75
    assert attachments["ML-BDX"] >= 2
    for contrat in (u["contrat"] for u in with_contrat):
        durations = [contrat[f"m_duree_inscription_{n}"] for n in (12, 24, 36)]
        assert durations == sorted(durations)


def test_samples_show_the_interesting_cases(records: list[dict[str, Any]], usagers: list[dict[str, Any]]) -> None:
    samples = demo_samples(records)
    by_nir = Counter(u["etatCivil"]["nir"] for u in usagers)

    assert [s["organisation"] for s in samples] == ["CD33", "CD2A", "CD33"]
    assert all(len(s["nir"]) == 15 for s in samples)
    assert by_nir[samples[2]["nir"]] == 2


def test_gironde_usagers_have_a_parcours_to_work_on(
    records: list[dict[str, Any]], usagers: list[dict[str, Any]]
) -> None:
    parcours = demo_parcours(records)
    by_numero = {u["numeroFranceTravail"]: u for u in usagers}
    involved = {numero for numeros in parcours.values() for numero in numeros}
    kinds = Counter(record["type"] for record in records)

    assert len(parcours["preconisations"]) >= 5
    assert len(parcours["a_completer"]) == 1
    assert len(parcours["premier_rdv_a_prendre"]) >= 1
    assert len(parcours["contrats"]) >= 2
    assert len(parcours["sanctions"]) >= 3
    assert kinds["rendez-vous"] >= 2
    for numero in involved:
        usager = by_numero[numero]
        assert usager["adresses"][0]["codeInseeCommune"].startswith("33")
        assert usager["contrat"]["m_statut"] == "Inscrit"
    # The first usager of the curl walkthrough has a preconisation to look at.
    assert demo_samples(records)[0]["numeroFranceTravail"] in parcours["preconisations"]


def test_parcours_records_come_after_the_usagers_and_contracts_after_orientations(
    records: list[dict[str, Any]],
) -> None:
    order = [record["type"] for record in records]
    last_usager = max(i for i, kind in enumerate(order) if kind == "usager")
    first_parcours = min(i for i, kind in enumerate(order) if kind not in ("organisation", "client", "usager"))
    last_orientation = max(i for i, kind in enumerate(order) if kind == "orientation")
    first_contract = min(i for i, kind in enumerate(order) if kind == "contrat-engagement")

    assert last_usager < first_parcours
    assert last_orientation < first_contract


def test_identifiers_are_stable_and_unique(records: list[dict[str, Any]]) -> None:
    rdv_ids = [r["data"]["id"] for r in records if r["type"] == "rendez-vous"]
    consequence_ids = [
        c["identifiantConsequenceSanction"]
        for r in records
        if r["type"] == "manquement"
        for c in r["data"]["consequences"]
    ]

    assert rdv_ids == sorted(set(rdv_ids)) and all(i.startswith("DEMO-RDV-") for i in rdv_ids)
    assert consequence_ids == sorted(set(consequence_ids))
    assert all(i.startswith("DEMO-SANCTION-") for i in consequence_ids)
