"""Who may read the audit trail: an organisation's RSSI sees its own organisation only,
France Travail's CSSI sees every organisation, and nobody else sees anything."""

from __future__ import annotations

from tests.audit.audit_api_support import AUDIT, cssi, officer_headers, read_file, rgc, rssi, search
from tests.support.hub import Hub
from tests.support.people import GIRONDE, SEINE_SAINT_DENIS

# The end-to-end hub fixtures (a real app on a fresh database per test).


def _organisations(response: object) -> set[str | None]:
    return {event["organisation"] for event in response.json()["evenements"]}  # type: ignore[attr-defined]


def test_security_officer_sees_only_their_own_organisations_events(hub: Hub) -> None:
    read_file(hub, GIRONDE, "cd33")
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    response = search(hub, rssi(hub, "CD33"), limite=500)
    assert response.status_code == 200, response.text
    assert _organisations(response) == {"CD33"}
    # Searching by the other organisation's usager finds nothing of CD93's reads.
    by_usager = search(hub, rssi(hub, "CD33") | {}, usager={"numeroFranceTravail": SEINE_SAINT_DENIS.numero})
    assert by_usager.status_code == 200 and by_usager.json()["total"] == 0


def test_security_officer_cannot_ask_for_another_organisation(hub: Hub) -> None:
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    response = search(hub, rssi(hub, "CD33"), organisation="CD93")
    assert response.status_code == 403
    assert response.json()["codeErreur"] == "ORGANISATION_HORS_PERIMETRE"


def test_cssi_sees_every_organisation(hub: Hub) -> None:
    read_file(hub, GIRONDE, "cd33")
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    response = search(hub, cssi(hub), limite=500)
    assert response.status_code == 200
    assert {"CD33", "CD93"} <= _organisations(response)


def test_rgc_plain_agent_and_partner_token_are_refused(hub: Hub) -> None:
    read_file(hub, GIRONDE, "cd33")
    for headers in (rgc(hub, "CD33"), officer_headers(hub, "CD33", None, "AGT-PLAIN")):
        for call in (
            lambda h: search(hub, h),
            lambda h: hub.client.get(f"{AUDIT}/incidents", headers=h),
            lambda h: hub.client.post(
                f"{AUDIT}/usagers/acces", json={"usager": {"numeroFranceTravail": GIRONDE.numero}}, headers=h
            ),
            lambda h: hub.client.post(f"{AUDIT}/evenements/export", json={"format": "csv"}, headers=h),
        ):
            response = call(headers)
            assert response.status_code == 403, response.text
            assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
    partner = {"Authorization": f"Bearer {hub.token()}"}
    assert search(hub, partner).status_code == 401
    assert search(hub, {}).status_code == 401


def test_ended_designation_takes_effect_on_the_next_call(hub: Hub) -> None:
    from sqlmodel import select

    from habilitations.models import Designation

    headers = rssi(hub, "CD33")
    assert search(hub, headers).status_code == 200
    with hub.services.database.transaction() as session:
        for designation in session.exec(select(Designation)).all():
            designation.fin = hub.clock.now
            session.add(designation)
    assert search(hub, headers).status_code == 403
