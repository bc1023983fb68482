"""Every call leaves exactly one audit event, written before the response, verifiable, and
free of personal data; if it cannot be written, the call fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import col, select

from audit.checkpoints import create_checkpoint, signing_key
from audit.models import AuditEvent
from audit.verify import verify_database
from habilitations.models import Agent
from relais.core.db import Database
from tests.audit.journal_fixtures import tampering
from tests.support.hub import Hub
from tests.support.people import GIRONDE, SEINE_SAINT_DENIS
from tests.support.scopes import INFOS, RECHERCHE


def _events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def _search(hub: Hub, token: str, numero: str, **headers: str) -> Any:
    return hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": numero},
        headers={**hub.headers(token), **headers},
    )


def test_each_call_appends_exactly_one_event(hub: Hub) -> None:
    token = hub.token()
    before = len(_events(hub))
    _search(hub, token, GIRONDE.numero)
    _search(hub, token, SEINE_SAINT_DENIS.numero)
    _search(hub, "not-a-token", GIRONDE.numero)
    _search(hub, token, "123")
    events = _events(hub)[before:]
    assert [(e.decision, e.http_status) for e in events] == [
        ("allowed", 200),
        ("denied", 403),
        ("denied", 401),
        ("denied", 400),
    ]
    assert events[1].reason == "usager_non_rattache"
    assert events[2].reason is not None and events[2].reason.startswith("invalid_token")
    assert events[3].reason == "field_invalid:numeroFranceTravail"


def test_event_says_who_what_and_which_usager(hub: Hub) -> None:
    jeton = hub.jeton(GIRONDE)
    response = hub.client.get(
        INFOS,
        headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton, "X-Request-Id": "req-123"}),
    )
    assert response.headers["x-request-id"] == "req-123"
    event_ = _events(hub)[-1]
    assert event_.request_id == "req-123"
    assert event_.operation == "recupererDonneesParIdRci"
    assert event_.client_id == "cd33" and event_.organisation == "CD33"
    assert (event_.agent_nom, event_.agent_prenom, event_.agent_identifiant) == (
        "Martin",
        "Claire",
        "AGT-0042",
    )
    assert event_.usager_id and event_.usager_nir_index
    assert event_.decision == "allowed" and event_.http_status == 200


def test_search_by_nir_records_the_blind_index_never_the_nir(hub: Hub) -> None:
    hub.client.post(
        f"{RECHERCHE}/par-datenaissance-et-nir",
        json={"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir},
        headers=hub.headers(hub.token()),
    )
    event_ = _events(hub)[-1]
    assert event_.usager_nir_index and GIRONDE.nir13 not in event_.usager_nir_index
    dumped = " ".join(str(value) for value in event_.model_dump().values())
    assert GIRONDE.nir13 not in dumped


def test_token_requests_are_audited(hub: Hub) -> None:
    hub.token()
    event_ = _events(hub)[-1]
    assert event_.channel == "oauth" and event_.operation == "genererAccessToken"
    assert event_.client_id == "cd33" and event_.decision == "allowed"


def test_journal_verifies_and_detects_tampering(hub: Hub) -> None:
    token = hub.token()
    for _ in range(3):
        _search(hub, token, GIRONDE.numero)
    keys = [signing_key(hub.services.settings).public_key()]
    assert create_checkpoint(hub.services.database, hub.services.settings, now=hub.clock.now) is not None
    with hub.services.database.session() as session:
        report = verify_database(session, keys)
    assert report.ok and report.events == len(_events(hub))
    # An UPDATE through the application is refused (the row stays) and recorded.
    with hub.services.database.transaction() as session:
        session.execute(text("UPDATE audit_event SET http_status = 500 WHERE seq = 2"))
    with hub.services.database.session() as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.seq == 2)).one().http_status == 200
        assert verify_database(session, keys).ok
    assert _events(hub)[-1].operation == "journal.modification_refusee"
    # The same edit by whoever can switch the triggers off is found by verify, at its leaf.
    with tampering(hub.services.database) as session:
        session.execute(text("UPDATE audit_event SET http_status = 500 WHERE seq = 2"))
    with hub.services.database.session() as session:
        report = verify_database(session, keys)
    assert not report.ok and report.first is not None
    assert (report.first.kind, report.first.seq) == ("contenu_modifie", 2)


def _search_while_the_audit_insert_raises(hub: Hub, token: str, error: Exception) -> Any:
    engine = hub.services.database.engine

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENT"):
            raise error

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        return _search(hub, token, GIRONDE.numero)
    finally:
        event.remove(engine, "before_cursor_execute", refuse)


@contextmanager
def _audit_inserts_refused(database: Database) -> Iterator[None]:
    """The database itself refuses the journal's inserts (a trigger, as a full disk would),
    whichever way they reach it: a session in a worker thread, or the event loop's own
    PostgreSQL connections (``audit.batch_appends``)."""
    if database.dialect == "sqlite":
        create = [
            "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_event BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        ]
        drop = ["DROP TRIGGER test_refuse_audit"]
    else:
        create = [
            "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
            "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()",
        ]
        drop = ["DROP TRIGGER test_refuse_audit ON audit_event", "DROP FUNCTION test_refuse_audit()"]
    with database.transaction() as session:
        for statement in create:
            session.execute(text(statement))
    try:
        yield
    finally:
        with database.transaction() as session:
            for statement in drop:
                session.execute(text(statement))


def _agents_last_active_yesterday(hub: Hub) -> None:
    """An agent's first call of the day notes the agent's activity: that call's event then
    commits with this write, in the call's own session, on either engine."""
    with hub.services.database.transaction() as session:
        for agent in session.exec(select(Agent)).all():
            agent.derniere_activite = hub.clock.now - timedelta(days=1)
            session.add(agent)


@pytest.mark.parametrize("wrote", [False, True], ids=["call-that-read", "call-that-wrote"])
def test_no_connection_in_time_is_a_503_to_retry_not_a_500(hub: Hub, wrote: bool) -> None:
    # SQLAlchemy's pool gives up after its timeout when the connection stays taken (a periodic
    # job holding SQLite's one connection): the call is refused as busy, with Retry-After,
    # nothing of it committed; neither a 500 nor an answer without its audit event.
    database = hub.services.database
    if not wrote and database.dialect == "postgresql":
        pytest.skip("on PostgreSQL a call that only read commits its event on the loop's connections, no pool's")
    if wrote:
        _agents_last_active_yesterday(hub)
    token = hub.token()
    if wrote:
        before = len(_events(hub))
        timeout = PoolTimeout("QueuePool limit of size 1 overflow 0 reached, connection timed out")
        response = _search_while_the_audit_insert_raises(hub, token, timeout)
    else:
        # Decided and remembered: the next search needs the pool for its event only.
        assert _search(hub, token, GIRONDE.numero).status_code == 200
        before = len(_events(hub))
        with database.engine.connect():  # SQLite's one connection, held for real
            response = _search(hub, token, GIRONDE.numero)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "jetonUsager" not in response.text
    assert len(_events(hub)) == before
    # Once the connection is free again, the same call is served and audited.
    assert _search(hub, token, GIRONDE.numero).status_code == 200
    assert len(_events(hub)) == before + 1


def test_fails_closed_when_the_audit_cannot_be_written(hub: Hub) -> None:
    token = hub.token()
    with _audit_inserts_refused(hub.services.database):
        read = _search(hub, token, GIRONDE.numero)
    _agents_last_active_yesterday(hub)
    before = len(_events(hub))
    with _audit_inserts_refused(hub.services.database):
        wrote = _search(hub, token, GIRONDE.numero)
    for failed in (read, wrote):
        assert failed.status_code == 500
        body = failed.json()
        assert body["codeRetour"] == "R998"
        assert body["jetonUsager"] == "null"
    assert len(_events(hub)) == before
    # Once the database takes events again, the same call is served and audited (on
    # PostgreSQL, through a worker thread for a second, then the loop's connections again).
    assert _search(hub, token, GIRONDE.numero).status_code == 200
    assert len(_events(hub)) == before + 1
    assert _search(hub, token, GIRONDE.numero).status_code == 200
    assert len(_events(hub)) == before + 2


def test_logs_carry_no_personal_data(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    token = hub.token()
    hub.client.post(
        f"{RECHERCHE}/par-datenaissance-et-nir",
        json={"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir},
        headers=hub.headers(token),
    )
    hub.client.post(
        f"{RECHERCHE}/par-datenaissance-et-nir",
        json={"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir[:-1] + "x"},
        headers=hub.headers(token),
    )
    out = capsys.readouterr()
    logs = out.out + out.err
    assert '"event": "request"' in logs
    for secret in (GIRONDE.nir13, GIRONDE.naissance, token):
        assert secret not in logs
