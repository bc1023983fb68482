"""« Qui a consulté mon dossier » : for a GDPR access request, which organisations read the
usager's data, when and why — never which agent."""

from __future__ import annotations

from typing import Any

from tests.audit.audit_api_support import AUDIT, cssi, events, read_file, rssi
from tests.support.hub import Hub
from tests.support.people import GIRONDE, RATTACHE_EXPLICITE, SEINE_SAINT_DENIS
from tests.support.scopes import AGENT, RECHERCHE

# The end-to-end hub fixtures (a real app on a fresh database per test).


def _report(hub: Hub, headers: dict[str, str], **usager: str) -> Any:
    response = hub.client.post(f"{AUDIT}/usagers/acces", json={"usager": usager}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_report_names_organisations_purposes_and_dates_but_no_agent(hub: Hub) -> None:
    # RATTACHE_EXPLICITE lives in the 93 and is attached to CD33 as well: both read it.
    read_file(hub, RATTACHE_EXPLICITE, "cd33")
    read_file(hub, RATTACHE_EXPLICITE, "cd93")
    read_file(hub, GIRONDE, "cd33")
    report = _report(hub, cssi(hub), numeroFranceTravail=RATTACHE_EXPLICITE.numero)
    assert report["usagerConnu"] is True
    summary = {entry["organisation"]["code"]: entry for entry in report["organisations"]}
    assert set(summary) == {"CD33", "CD93"}
    assert summary["CD33"]["nombreAcces"] == 2 and summary["CD33"]["organisation"]["libelle"] == "Département 33"
    assert report["total"] == 4 and len(report["acces"]) == 4
    assert {line["operation"] for line in report["acces"]} == {
        "RechercherUsagerParNumeroFranceTravail",
        "recupererDonneesParIdRci",
    }
    text = str(report)
    for value in AGENT.values():
        assert value not in text
    assert RATTACHE_EXPLICITE.nir13 not in text


def test_refused_attempts_are_counted_not_listed_and_rssi_sees_their_organisation_only(hub: Hub) -> None:
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    refused = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": SEINE_SAINT_DENIS.numero},
        headers=hub.headers(hub.token("cd33")),
    )
    assert refused.status_code == 403
    everyone = _report(hub, cssi(hub), nir=SEINE_SAINT_DENIS.nir)
    summary = {entry["organisation"]["code"]: entry for entry in everyone["organisations"]}
    assert summary["CD33"]["nombreAcces"] == 0 and summary["CD33"]["tentativesRefusees"] == 1
    assert summary["CD93"]["nombreAcces"] == 2
    own = _report(hub, rssi(hub, "CD93"), nir=SEINE_SAINT_DENIS.nir)
    assert {entry["organisation"]["code"] for entry in own["organisations"]} == {"CD93"}
    audited = events(hub)[-1]
    assert audited.operation == "rapportAccesUsager" and audited.target and audited.target.startswith("usager:")


def test_unknown_usager_gives_an_empty_report(hub: Hub) -> None:
    report = _report(hub, cssi(hub), numeroFranceTravail="99999999999")
    assert report["usagerConnu"] is False and report["total"] == 0 and report["organisations"] == []


def test_an_rssi_does_not_learn_whether_the_hub_knows_someone_outside_their_organisation(hub: Hub) -> None:
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    # Known to the hub and read by CD93 only: CD33's RSSI must not tell it from a stranger.
    outsider = _report(hub, rssi(hub, "CD33"), nir=SEINE_SAINT_DENIS.nir)
    stranger = _report(hub, rssi(hub, "CD33"), numeroFranceTravail="99999999999")
    assert outsider["usagerConnu"] is stranger["usagerConnu"] is False
    assert outsider["total"] == 0 and outsider["organisations"] == []
    own = _report(hub, rssi(hub, "CD93"), nir=SEINE_SAINT_DENIS.nir)
    assert own["usagerConnu"] is True
