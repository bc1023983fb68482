"""Searching the journal: by usager (NIR or numéro France Travail in the body), by actor,
outcome and period, page after page with a total; every search is itself audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.audit.audit_api_support import events, read_file, rssi, search
from tests.support.hub import Hub
from tests.support.people import GIRONDE, SEINE_SAINT_DENIS
from tests.support.scopes import INFOS, RECHERCHE

# The end-to-end hub fixtures (a real app on a fresh database per test).


def test_search_by_nir_finds_every_access_to_that_usager_and_only_those(hub: Hub) -> None:
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE)
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    # A search by NIR that CD33 made: it names the usager by its blind index only.
    hub.client.post(
        f"{RECHERCHE}/par-datenaissance-et-nir",
        json={"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir},
        headers=hub.headers(hub.token()),
    )
    headers = rssi(hub)
    by_nir = search(hub, headers, usager={"nir": GIRONDE.nir})
    by_numero = search(hub, headers, usager={"numeroFranceTravail": GIRONDE.numero})
    assert by_nir.status_code == 200, by_nir.text
    found = by_nir.json()["evenements"]
    assert by_nir.json()["total"] == len(found) == 5
    assert {event["operation"] for event in found} == {
        "RechercherUsagerParNumeroFranceTravail",
        "recupererDonneesParIdRci",
        "RechercherUsagerParDateNaissanceEtNir",
    }
    assert [event["id"] for event in by_numero.json()["evenements"]] == [event["id"] for event in found]
    # Newest first.
    assert [event["id"] for event in found] == sorted((event["id"] for event in found), reverse=True)
    assert GIRONDE.nir13 not in by_nir.text


def test_the_search_is_audited_with_filter_names_and_the_usager_id_never_the_nir(hub: Hub) -> None:
    read_file(hub, GIRONDE)
    response = search(hub, rssi(hub), usager={"nir": GIRONDE.nir}, decision="allowed")
    assert response.status_code == 200
    audited = events(hub)[-1]
    assert audited.operation == "rechercherEvenements" and audited.channel == "admin-api"
    assert audited.details == {"filtres": ["usager", "decision"]}
    usager_id = response.json()["evenements"][0]["usagerId"]
    assert audited.target == f"usager:{usager_id}"
    dumped = " ".join(str(value) for value in audited.model_dump().values())
    assert GIRONDE.nir13 not in dumped and GIRONDE.numero not in dumped
    assert audited.agent_id is not None and audited.organisation == "CD33"


def test_filters_combine_and_pages_follow_the_cursor(hub: Hub) -> None:
    for _ in range(3):
        read_file(hub, GIRONDE)
    refused = hub.client.get(INFOS, headers=hub.headers(hub.token(), **{"ft-jeton-usager": "bad"}))
    assert refused.status_code == 401
    headers = rssi(hub)
    reads = search(hub, headers, operation="recupererDonneesParIdRci", clientId="cd33", decision="allowed")
    assert reads.json()["total"] == 3
    denied = search(hub, headers, operation="recupererDonneesParIdRci", decision="denied")
    assert [event["motif"] for event in denied.json()["evenements"]] == ["jeton_invalide"]
    by_agent = search(hub, headers, agentIdentifiant="AGT-0042", operation="recupererDonneesParIdRci")
    assert by_agent.json()["total"] == 4

    seen: list[int] = []
    body: dict[str, object] = {"organisation": "CD33", "limite": 2}
    total = None
    while True:
        page = search(hub, headers, **body).json()
        total = page["total"] if total is None else total
        seen += [event["id"] for event in page["evenements"]]
        if page["curseurSuivant"] is None:
            break
        body["curseur"] = page["curseurSuivant"]
    assert len(seen) == len(set(seen)) == total
    assert seen == sorted(seen, reverse=True)


def test_period_bounds(hub: Hub) -> None:
    read_file(hub, GIRONDE)
    start = hub.clock.now
    hub.clock.now = start + timedelta(hours=2)
    read_file(hub, GIRONDE)
    headers = rssi(hub)
    middle = (start + timedelta(hours=1)).isoformat()
    before = search(hub, headers, operation="recupererDonneesParIdRci", fin=middle).json()
    after = search(hub, headers, operation="recupererDonneesParIdRci", debut=middle).json()
    assert before["total"] == after["total"] == 1
    assert before["evenements"][0]["id"] < after["evenements"][0]["id"]


def test_bad_inputs_get_clear_errors_without_values(hub: Hub) -> None:
    headers = rssi(hub)
    bad_nir = search(hub, headers, usager={"nir": "1850733063001" + "00"})
    assert bad_nir.status_code == 400 and bad_nir.json()["codeErreur"] == "NIR_INVALIDE"
    assert "1850733063001" not in bad_nir.text
    both = search(hub, headers, usager={"nir": GIRONDE.nir, "numeroFranceTravail": GIRONDE.numero})
    assert both.status_code == 400 and both.json()["codeErreur"] == "USAGER_ABSENT"
    cursor = search(hub, headers, curseur="not-a-cursor")
    assert cursor.status_code == 400 and cursor.json()["codeErreur"] == "CURSEUR_INVALIDE"
    period = search(hub, headers, debut="2026-01-02T00:00:00Z", fin="2026-01-01T00:00:00Z")
    assert period.status_code == 400 and period.json()["codeErreur"] == "PERIODE_INVALIDE"
    unknown = search(hub, headers, usagr={"nir": GIRONDE.nir})
    assert unknown.status_code == 400 and unknown.json()["codeErreur"] == "REQUETE_INVALIDE"
    assert GIRONDE.nir13 not in unknown.text
    # A refused search is audited too, with its reason.
    assert events(hub)[-1].decision == "denied"


def test_a_search_by_nir_leaves_no_nir_in_the_logs(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    read_file(hub, GIRONDE)
    headers = rssi(hub)
    capsys.readouterr()
    assert search(hub, headers, usager={"nir": GIRONDE.nir}).status_code == 200
    assert search(hub, headers, usager={"nir": GIRONDE.nir13[:12] + "X"}).status_code == 400
    logged = capsys.readouterr()
    # The request log lines were captured: the check below can fail.
    assert "rechercherEvenements" in logged.out + logged.err
    assert GIRONDE.nir13 not in logged.out + logged.err
    assert GIRONDE.nir13[:12] not in logged.out + logged.err
