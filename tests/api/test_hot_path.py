"""The request hot path: calls that only read share their audit commits, calls that write keep
their work and their event in one transaction, and no answer leaves before its event."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event, insert, select, text, update
from sqlmodel import col

from audit.models import AuditEvent
from relais.core.db import wrote
from relais.core.tables import Client, Organisation
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import INFOS, RECHERCHE, RECHERCHE_SCOPES

SEARCH = f"{RECHERCHE}/par-numero-francetravail"


def test_concurrent_reads_are_each_answered_after_their_event_is_committed(hub: Hub) -> None:
    headers = hub.headers(hub.token("cd33", RECHERCHE_SCOPES))
    batches_before, events_before = hub.audit_batches()

    def call(number: int) -> tuple[int, str]:
        response = hub.client.post(
            SEARCH,
            json={"numeroFranceTravail": GIRONDE.numero},
            headers={**headers, "x-request-id": f"lecture-{number}"},
        )
        return response.status_code, response.headers["x-request-id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(call, range(24)))
    assert all(status == 200 for status, _ in answers)
    # Every call's event went through a group commit, and never more than one commit per call
    # (reads share theirs when they arrive together).
    batches, events = hub.audit_batches()
    assert events - events_before == len(answers)
    assert 0 < batches - batches_before <= len(answers)
    with hub.services.database.session() as session:
        found = session.execute(
            select(col(AuditEvent.request_id), col(AuditEvent.decision)).where(
                col(AuditEvent.request_id).like("lecture-%")
            )
        ).all()
    assert sorted(request_id for request_id, _ in found) == sorted(request_id for _, request_id in answers)
    assert {decision for _, decision in found} == {"allowed"}


def test_a_session_that_only_read_wrote_nothing(hub: Hub) -> None:
    database = hub.services.database
    with database.session() as session:
        assert not wrote(session)  # nothing open yet
        session.execute(select(col(Organisation.code))).all()
        assert not wrote(session)
        session.execute(text("SELECT version FROM policy_version WHERE id = 1")).all()
        assert not wrote(session)
        session.rollback()


def test_a_session_that_wrote_by_any_path_is_seen_to_have_written(hub: Hub) -> None:
    database = hub.services.database
    with database.session() as session:
        organisation = session.execute(select(Organisation)).scalars().first()
        assert organisation is not None
        organisation.libelle = organisation.libelle + " "
        assert wrote(session)  # pending in the session, flushed on commit
        session.rollback()
    with database.session() as session:
        session.execute(text("UPDATE organisation SET libelle = libelle WHERE id = -1"))
        assert wrote(session)  # plain SQL, even touching no row
        session.rollback()
    with database.session() as session:
        session.execute(insert(Organisation).values(code="H4-TEST", type="CD", libelle="Essai", territoire=[]))
        assert wrote(session)  # a Core statement
        session.rollback()
    with database.session() as session:
        session.execute(select(col(Organisation.id)).with_for_update()).all()
        # A row lock means the caller meant to change what it locked (SQLite has no such
        # lock: every transaction there holds the write lock anyway).
        assert wrote(session) == (database.dialect == "postgresql")
        session.rollback()


def test_a_perimeter_change_applies_to_the_next_call(hub: Hub) -> None:
    # The security check hands the handlers the organisation's perimeter it read with the
    # client's rights: a territory taken away must not outlive the transaction that took it.
    headers = hub.headers(hub.token("cd33", RECHERCHE_SCOPES))
    jeton = hub.jeton(GIRONDE)
    infos_headers = hub.headers(hub.token(), **{"ft-jeton-usager": jeton})

    def search() -> dict[str, str]:
        response = hub.client.post(SEARCH, json={"numeroFranceTravail": GIRONDE.numero}, headers=headers)
        return {"status": str(response.status_code), "codeRetour": response.json().get("codeRetour", "")}

    def set_territoire(territoire: list[str]) -> None:
        with hub.services.database.transaction() as session:
            session.execute(
                update(Organisation)
                .where(
                    col(Organisation.id)
                    == select(Client.organisation_id).where(Client.client_id == "cd33").scalar_subquery()
                )
                .values(territoire=territoire)
            )

    assert search() == {"status": "200", "codeRetour": "S001"}
    assert hub.client.get(INFOS, headers=infos_headers).status_code == 200
    set_territoire(["99"])
    assert search() == {"status": "403", "codeRetour": "R002"}
    assert hub.client.get(INFOS, headers=infos_headers).status_code == 403
    set_territoire(["33"])
    assert search() == {"status": "200", "codeRetour": "S001"}
    assert hub.client.get(INFOS, headers=infos_headers).status_code == 200


def test_a_search_answered_from_memory_takes_a_pooled_connection_only_for_its_event(hub: Hub) -> None:
    # The decision remembered, the version and the usager are read without the pool (a read-only
    # SQLite connection, or PostgreSQL's event-loop reader): on SQLite the one checkout is the
    # audit commit; on PostgreSQL that commit too is the event loop's (``Database.loop_writes``).
    headers = hub.headers(hub.token("cd33", RECHERCHE_SCOPES))

    def search() -> str:
        response = hub.client.post(SEARCH, json={"numeroFranceTravail": GIRONDE.numero}, headers=headers)
        assert response.status_code == 200
        return str(response.json()["codeRetour"])

    assert search() == "S001"  # the agent's activity of the day is written: nothing remembered
    assert search() == "S001"  # decided on the rows, remembered
    checkouts: list[int] = []

    def count(*_args: object) -> None:
        checkouts.append(1)

    engine = hub.services.database.engine
    event.listen(engine, "checkout", count)
    try:
        assert search() == "S001"
    finally:
        event.remove(engine, "checkout", count)
    assert len(checkouts) == (1 if hub.services.database.dialect == "sqlite" else 0)
