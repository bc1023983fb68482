"""Refused calls that named an usager (their jeton did) are found by the usager: the search
lists them and « qui a consulté mon dossier » counts them, whichever key the event carries."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from parcours.tables import Usager
from relais.core.auditing import AuditDraft
from relais.core.personal_data import blind_index
from tests.audit.audit_api_support import AUDIT, cssi, read_file, rssi, search
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT


def refused(hub: Hub, *, usager_id: str | None = None, nir: str | None = None, organisation: str = "CD33") -> None:
    """The event the request pipeline writes for a partner call refused after its jeton was read."""
    with hub.services.database.transaction() as session:
        hub.services.audit_recorder.record(
            session,
            AuditDraft(
                channel="partner-api",
                operation="recupererDonneesParIdRci",
                client_id=organisation.lower(),
                organisation=organisation,
                agent_identifiant="AGT-7",
                usager_id=usager_id,
                usager_nir_index=blind_index(hub.services.keys, nir) if nir else None,
                reason="habilitation_absente",
            ),
            request_id=f"refus-{usager_id}-{nir is not None}",
            http_status=403,
            occurred_at=hub.clock.now - timedelta(minutes=5),
        )


def usager_id(hub: Hub, numero: str) -> str:
    with hub.services.database.session() as session:
        return session.exec(select(Usager.id).where(Usager.numero_france_travail == numero)).one()


def test_refusals_naming_the_usager_are_listed_by_the_search(hub: Hub) -> None:
    read_file(hub, GIRONDE)
    refused(hub, usager_id=usager_id(hub, GIRONDE.numero))
    refused(hub, nir=GIRONDE.nir13)
    refused(hub, usager_id=usager_id(hub, GIRONDE_SANS_CONTRAT.numero))
    for usager in ({"numeroFranceTravail": GIRONDE.numero}, {"nir": GIRONDE.nir13}):
        found = search(hub, rssi(hub, "CD33"), usager=usager, decision="denied")
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["total"] == 2 and {event["motif"] for event in body["evenements"]} == {"habilitation_absente"}
    everything = search(hub, rssi(hub, "CD33"), usager={"numeroFranceTravail": GIRONDE.numero}).json()
    assert [event["decision"] for event in everything["evenements"]].count("denied") == 2
    assert everything["total"] == 4


def test_the_citizen_report_counts_refusals_per_organisation(hub: Hub) -> None:
    read_file(hub, GIRONDE)
    refused(hub, usager_id=usager_id(hub, GIRONDE.numero))
    refused(hub, nir=GIRONDE.nir13, organisation="CD93")
    report = hub.client.post(
        f"{AUDIT}/usagers/acces", json={"usager": {"nir": GIRONDE.nir13}}, headers=cssi(hub)
    ).json()
    summary = {entry["organisation"]["code"]: entry for entry in report["organisations"]}
    assert summary["CD33"]["tentativesRefusees"] == 1 and summary["CD33"]["nombreAcces"] == 2
    assert summary["CD93"]["tentativesRefusees"] == 1 and summary["CD93"]["nombreAcces"] == 0
    # Refused attempts are counted, never listed as accesses: nothing of the usager was read.
    assert report["total"] == 2 and len(report["acces"]) == 2
    own = hub.client.post(
        f"{AUDIT}/usagers/acces", json={"usager": {"numeroFranceTravail": GIRONDE.numero}}, headers=rssi(hub, "CD93")
    ).json()
    assert [entry["tentativesRefusees"] for entry in own["organisations"]] == [1]
