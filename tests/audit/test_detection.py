"""Detection rules on the journal: each fires on the behaviour it names, opens one incident
with its evidence and a 48-hour notification clock, alerts through the outbox, and is
evaluated once per event however often the detector runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlmodel import col, select

from audit.detection import MAX_EVIDENCE, SQLITE_PAUSE_SECONDS, _window_hits, run_detection
from audit.incident_models import Incident, IncidentPreuve
from audit.journal import DraftedEvent, append_events
from audit.models import AuditEvent
from relais.core.auditing import AuditDraft
from relais.core.config import Settings
from relais.core.outbox import OutboxMessage
from tests.audit.audit_api_support import AUDIT, agent_with_role, cssi, events, read_file, rgc
from tests.support.hub import Hub
from tests.support.people import CORSE, GIRONDE, GIRONDE_SANS_CONTRAT, RATTACHE_EXPLICITE, SEINE_SAINT_DENIS
from tests.support.scopes import INFOS, RECHERCHE, STATUT

# The end-to-end hub fixtures (a real app on a fresh database per test).


def _settings(hub: Hub, **overrides: Any) -> Settings:
    # No commit lag to wait for: SQLite serialises writers, and the test waits for each call.
    return hub.services.settings.model_copy(update={"audit_detection_lag_seconds": 0, **overrides})


def _detect(hub: Hub, settings: Settings) -> list[str]:
    return run_detection(hub.services.database, settings, now=hub.clock).opened


def _incidents(hub: Hub) -> list[Incident]:
    with hub.services.database.session() as session:
        return list(session.exec(select(Incident).order_by(col(Incident.detecte_le))).all())


def _evidence(hub: Hub, incident: Incident) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        ids = session.exec(select(IncidentPreuve.audit_event_id).where(IncidentPreuve.incident_id == incident.id))
        return list(session.exec(select(AuditEvent).where(col(AuditEvent.id).in_(list(ids.all())))).all())


def test_bulk_reads_by_one_agent_open_one_incident_with_evidence_clock_and_alerts(hub: Hub) -> None:
    settings = _settings(hub, audit_bulk_read_usagers=3, audit_bulk_read_window_seconds=600)
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE_SANS_CONTRAT)
    assert _detect(hub, settings) == []
    read_file(hub, RATTACHE_EXPLICITE)
    opened = _detect(hub, settings)
    assert len(opened) == 1
    (incident,) = _incidents(hub)
    assert incident.regle == "lectures_massives" and incident.etat == "OUVERT"
    reads = [event for event in events(hub) if event.operation == "recupererDonneesParIdRci"]
    # The agent's record when the call was made under a habilitation, else its headers.
    agent = f"agent:{reads[0].agent_id}" if reads[0].agent_id is not None else "agent:CD33/cd33/AGT-0042"
    assert incident.organisation == "CD33" and incident.sujet == agent
    assert incident.echeance_notification - incident.detecte_le == timedelta(hours=48)
    proof = _evidence(hub, incident)
    assert {event.usager_id for event in proof if event.operation == "recupererDonneesParIdRci"} == {
        event.usager_id for event in events(hub) if event.operation == "recupererDonneesParIdRci"
    }
    assert all(event.agent_identifiant == "AGT-0042" for event in proof)
    with hub.services.database.session() as session:
        alerts = session.exec(select(OutboxMessage).where(OutboxMessage.topic == "audit.incident.ouvert")).all()
    assert sorted(message.recipient for message in alerts) == ["cssi", "rssi:CD33"]
    assert all(message.payload["incident"] == incident.id for message in alerts)
    assert GIRONDE.nir13 not in str([message.payload for message in alerts])
    # The opening itself is in the journal.
    assert events(hub)[-1].operation == "audit.incident.ouvrir" and events(hub)[-1].target == f"incident:{incident.id}"

    # Running again evaluates nothing twice; a further read adds evidence to the open incident.
    assert _detect(hub, settings) == []
    before = incident.nombre_preuves
    read_file(hub, GIRONDE)
    assert _detect(hub, settings) == []
    (again,) = _incidents(hub)
    assert again.id == incident.id and again.nombre_preuves > before


def test_reads_spread_beyond_the_window_do_not_fire(hub: Hub) -> None:
    settings = _settings(hub, audit_bulk_read_usagers=3, audit_bulk_read_window_seconds=600)
    for person in (GIRONDE, GIRONDE_SANS_CONTRAT, RATTACHE_EXPLICITE):
        read_file(hub, person)
        hub.clock.now += timedelta(minutes=11)
    assert _detect(hub, settings) == []


def test_one_usager_read_again_and_again_is_not_bulk_reading(hub: Hub) -> None:
    # Distinct usagers count, not reads: the detector settles it from a count, without the rows.
    settings = _settings(hub, audit_bulk_read_usagers=2, audit_bulk_read_window_seconds=600)
    for _ in range(3):
        read_file(hub, GIRONDE)
    assert _detect(hub, settings) == []
    read_file(hub, GIRONDE_SANS_CONTRAT)
    assert len(_detect(hub, settings)) == 1


def test_attempts_outside_the_perimeter_and_repeated_denials(hub: Hub) -> None:
    settings = _settings(hub, audit_perimeter_threshold=3, audit_denials_threshold=4)
    token = hub.token()
    for person in (SEINE_SAINT_DENIS, CORSE, SEINE_SAINT_DENIS):
        response = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": person.numero},
            headers=hub.headers(token),
        )
        assert response.status_code == 403
    _detect(hub, settings)
    assert [incident.regle for incident in _incidents(hub)] == ["hors_perimetre"]
    hub.client.get(INFOS, headers=hub.headers(token, **{"ft-jeton-usager": "bad"}))
    _detect(hub, settings)
    assert sorted(incident.regle for incident in _incidents(hub)) == ["hors_perimetre", "refus_repetes"]


def test_off_hours_bulk_reads(hub: Hub) -> None:
    settings = _settings(hub, audit_off_hours_usagers=2, audit_bulk_read_usagers=100)
    # A Tuesday at 10:00 in Paris: office hours.
    hub.clock.now = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE_SANS_CONTRAT)
    assert _detect(hub, settings) == []
    # The same night at 23:30 in Paris.
    hub.clock.now = datetime(2026, 11, 17, 22, 30, tzinfo=UTC)
    read_file(hub, GIRONDE)
    read_file(hub, RATTACHE_EXPLICITE)
    _detect(hub, settings)
    assert [incident.regle for incident in _incidents(hub)] == ["lectures_hors_horaires"]


def test_a_client_calling_an_operation_it_never_uses(hub: Hub) -> None:
    settings = _settings(hub, audit_rare_scope_min_calls=5, audit_bulk_read_usagers=100)
    for _ in range(3):
        read_file(hub, GIRONDE)
    assert _detect(hub, settings) == []
    hub.clock.now += timedelta(minutes=1)
    jeton = hub.jeton(GIRONDE)
    response = hub.client.get(STATUT, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
    assert response.status_code == 200
    _detect(hub, settings)
    (incident,) = _incidents(hub)
    assert incident.regle == "scope_inhabituel"
    unusual = {item["valeur"] for item in incident.details["inhabituels"]}
    # The statut scopes when calls carry their scopes, else the operation itself.
    assert unusual in ({"api_contrat-usagerv2", "statutcontratusager"}, {"recupererContratV2"})
    assert [event.operation for event in _evidence(hub, incident)] == ["recupererContratV2"]


def test_self_grant_attempt_and_security_override_each_open_an_incident(hub: Hub) -> None:
    settings = _settings(hub)
    headers = rgc(hub, "CD33")
    with hub.services.database.session() as session:
        from habilitations.models import Agent

        own = session.exec(select(Agent).where(Agent.identifiant == "RGC-CD33")).one()
    refused = hub.client.post(
        f"/relais/habilitations/v1/agents/{own.id}/habilitations",
        json={"api": "rechercher-usager-v2", "scopes": ["rechercheusager"], "finalite": "Instruction RSA"},
        headers=headers,
    )
    assert refused.status_code == 403, refused.text
    target = agent_with_role(hub, "CD33", None, "AGT-SUSPECT")
    blocked = hub.client.post(
        f"/relais/habilitations/v1/agents/{target}/etat",
        json={"action": "bloquer", "motif": "usage_suspect"},
        headers=cssi(hub),
    )
    assert blocked.status_code == 200, blocked.text
    _detect(hub, settings)
    rules = sorted(incident.regle for incident in _incidents(hub))
    assert rules == ["action_exceptionnelle", "auto_habilitation"]


def test_detection_results_are_visible_through_the_api(hub: Hub) -> None:
    settings = _settings(hub, audit_bulk_read_usagers=2)
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE_SANS_CONTRAT)
    _detect(hub, settings)
    listing = hub.client.get(f"{AUDIT}/incidents", headers=cssi(hub))
    assert listing.status_code == 200 and listing.json()["total"] == 1


def test_on_sqlite_a_long_run_leaves_the_connection_to_calls_between_its_batches(hub: Hub) -> None:
    # SQLite's one connection holds the write lock for each transaction: the calls being served
    # wait for it. A run over many events pauses between its batches' transactions;
    # PostgreSQL's connections do not wait on one another.
    batch = 100
    draft = AuditDraft(channel="partenaire", operation="rechercherUsagerParNumeroFranceTravail", client_id="c")
    count = 2 * batch + 50
    with hub.services.database.transaction() as session:
        append_events(session, [DraftedEvent(draft, f"r{i}", 200, hub.clock()) for i in range(count)])
    pauses: list[float] = []
    settings = _settings(hub, audit_detection_batch=batch)
    report = run_detection(hub.services.database, settings, now=hub.clock, sleep=pauses.append)
    assert report.evaluated >= count
    with hub.services.database.session() as session:
        last = session.exec(select(AuditEvent.id).order_by(col(AuditEvent.id).desc())).first()
    assert report.watermark == last
    if hub.services.database.dialect == "sqlite":
        assert pauses == [SQLITE_PAUSE_SECONDS] * (report.evaluated // batch)
    else:
        assert pauses == []


def test_a_long_burst_keeps_its_peak_and_the_first_pieces_of_evidence() -> None:
    # 2,000 reads of distinct usagers within one window, all new: the peak counts them all; the
    # evidence stops at MAX_EVIDENCE, in the order the reads came.
    start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    burst = [
        SimpleNamespace(id=index, occurred_at=start + timedelta(milliseconds=index), usager_id=f"u{index}")
        for index in range(1, 2001)
    ]
    peak, evidence = _window_hits(
        burst,  # type: ignore[arg-type]
        window=timedelta(seconds=600),
        threshold=50,
        new_from=0,
        key=lambda event: event.usager_id,
    )
    assert peak == 2000
    assert evidence == list(range(1, MAX_EVIDENCE + 1))
