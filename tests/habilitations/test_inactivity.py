"""Two calendar months of inactivity: month ends, leap years, never-active accounts, the
D-15 and D-7 warnings and the suspension at D, with the clock injected."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from habilitations import agent_states, designations, inactivity, transitions
from habilitations.inactivity import TOPIC_SUSPENSION, TOPIC_WARNING, add_months, inactivity_due_date, is_overdue, sweep
from habilitations.models import ACTIF, SUSPENDU_INACTIVITE, Agent
from relais.core.outbox import OutboxMessage
from tests.habilitations.world import RECORDER, add_agent, add_rgc, agent_row, events, last_seq, request_id
from tests.support.hub import Hub


@pytest.mark.parametrize(
    ("day", "due"),
    [
        (date(2026, 1, 15), date(2026, 3, 15)),
        (date(2025, 12, 31), date(2026, 2, 28)),
        (date(2027, 12, 31), date(2028, 2, 29)),  # leap year
        (date(2027, 12, 30), date(2028, 2, 29)),
        (date(2028, 12, 29), date(2029, 2, 28)),
        (date(2026, 8, 31), date(2026, 10, 31)),
        (date(2026, 7, 31), date(2026, 9, 30)),
        (date(2026, 11, 30), date(2027, 1, 30)),
    ],
)
def test_two_calendar_months_later(day: date, due: date) -> None:
    assert add_months(day, 2) == due


def _agent(last: datetime | None, created: datetime) -> Agent:
    return Agent(organisation_id=1, identifiant="X", nom="X", derniere_activite=last, created_at=created)


def test_an_agent_who_was_never_active_counts_from_creation() -> None:
    created = datetime(2026, 3, 10, 9, tzinfo=UTC)
    assert inactivity_due_date(_agent(None, created)) == date(2026, 5, 10)
    assert inactivity_due_date(_agent(datetime(2026, 4, 2, 9, tzinfo=UTC), created)) == date(2026, 6, 2)


def test_days_are_counted_in_france_and_suspension_starts_on_the_due_day() -> None:
    # 31 December 23:30 UTC is already 1 January in Paris.
    agent = _agent(datetime(2025, 12, 31, 23, 30, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    assert inactivity_due_date(agent) == date(2026, 3, 1)
    assert not is_overdue(agent, datetime(2026, 2, 28, 22, 59, tzinfo=UTC))  # 23:59 in Paris
    assert is_overdue(agent, datetime(2026, 2, 28, 23, 0, tzinfo=UTC))  # midnight in Paris


def _warnings(hub: Hub) -> list[OutboxMessage]:
    with hub.services.database.session() as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.topic == TOPIC_WARNING)).all())


def _sweep(hub: Hub, now: datetime) -> tuple[list[int], list[tuple[int, int]]]:
    with hub.services.database.transaction() as session:
        report = sweep(session, now, recorder=RECORDER, request_id=request_id())
    return report.suspended, report.warned


def test_warnings_at_d15_and_d7_then_suspension_at_d_each_once(hub: Hub) -> None:
    created = datetime(2026, 1, 15, 10, tzinfo=UTC)
    hub.clock.now = created
    agent_id = add_agent(hub, "AGT-300")
    rgc_id = add_rgc(hub, "RGC-300")  # created at the same time: the RGC's own deadline comes too
    due = datetime(2026, 3, 15, 10, tzinfo=UTC)

    assert _sweep(hub, due - timedelta(days=16)) == ([], [])
    assert _sweep(hub, due - timedelta(days=15)) == ([], [(agent_id, 15), (rgc_id, 15)])
    assert _sweep(hub, due - timedelta(days=15)) == ([], [])  # a re-run queues nothing
    assert _sweep(hub, due - timedelta(days=10)) == ([], [])
    assert _sweep(hub, due - timedelta(days=7)) == ([], [(agent_id, 7), (rgc_id, 7)])
    mine = [w for w in _warnings(hub) if w.payload["agent_id"] == agent_id]
    assert sorted((w.recipient, w.payload["seuil"]) for w in mine) == [
        (f"agent:{agent_id}", "J-15"),
        (f"agent:{agent_id}", "J-7"),
        ("rgc:CD33", "J-15"),
        ("rgc:CD33", "J-7"),
    ]
    assert {w.payload["suspension_le"] for w in mine} == {"2026-03-15"}

    before = last_seq(hub)
    assert _sweep(hub, due - timedelta(days=1)) == ([], [])
    suspended, _ = _sweep(hub, due)
    assert sorted(suspended) == sorted([agent_id, rgc_id])
    assert _sweep(hub, due) == ([], [])
    assert agent_row(hub, agent_id).etat == SUSPENDU_INACTIVITE
    transitions = [e for e in events(hub, before) if e.operation == "habilitations.agent.suspendre"]
    assert sorted(e.target or "" for e in transitions) == sorted([f"agent:{agent_id}", f"agent:{rgc_id}"])
    assert all(e.channel == "lifecycle" and e.details and e.details["echeance"] == "2026-03-15" for e in transitions)
    # The RGC absent for two months: France Travail's CSSI must be told within 8 days.
    with hub.services.database.session() as session:
        [notice] = session.exec(select(OutboxMessage).where(OutboxMessage.topic == designations.TOPIC_RGC_NOTICE)).all()
    assert notice.recipient == "cssi" and notice.payload["motif"] == "absence_prolongee"
    assert notice.payload["a_signaler_avant"] == "2026-03-23"
    # The RGCs hear of each suspension, once however often the sweep runs.
    with hub.services.database.session() as session:
        notices = session.exec(select(OutboxMessage).where(OutboxMessage.topic == TOPIC_SUSPENSION)).all()
    assert sorted((n.recipient, n.payload["agent_id"], n.payload["suspension_le"]) for n in notices) == sorted(
        [("rgc:CD33", agent_id, "2026-03-15"), ("rgc:CD33", rgc_id, "2026-03-15")]
    )


def test_a_late_sweep_sends_only_the_nearest_warning(hub: Hub) -> None:
    hub.clock.now = datetime(2026, 5, 31, 8, tzinfo=UTC)
    agent_id = add_agent(hub, "AGT-301")
    # Due 31 July; the sweep did not run until 26 July.
    assert _sweep(hub, datetime(2026, 7, 26, 8, tzinfo=UTC)) == ([], [(agent_id, 7)])


def test_activity_moves_the_deadline_and_suspended_agents_are_left_alone(hub: Hub) -> None:
    hub.clock.now = datetime(2026, 1, 10, 8, tzinfo=UTC)
    agent_id = add_agent(hub, "AGT-302")
    with hub.services.database.transaction() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        inactivity.record_activity(session, agent, datetime(2026, 2, 20, 8, tzinfo=UTC))
    assert _sweep(hub, datetime(2026, 3, 10, 8, tzinfo=UTC)) == ([], [])
    suspended, _ = _sweep(hub, datetime(2026, 4, 20, 8, tzinfo=UTC))
    assert agent_id in suspended
    assert agent_id not in _sweep(hub, datetime(2026, 9, 1, 8, tzinfo=UTC))[0]
    assert agent_row(hub, agent_id).etat == SUSPENDU_INACTIVITE


def test_reactivation_restarts_the_clock(hub: Hub) -> None:
    hub.clock.now = datetime(2026, 1, 10, 8, tzinfo=UTC)
    agent_id = add_agent(hub, "AGT-303")
    _sweep(hub, datetime(2026, 3, 10, 8, tzinfo=UTC))
    with hub.services.database.transaction() as session:
        agent_states.reactivate_agent(
            session,
            transitions.SYSTEM_ACTOR,
            agent_id,
            now=datetime(2026, 3, 12, 8, tzinfo=UTC),
            recorder=RECORDER,
            request_id=request_id(),
        )
    assert _sweep(hub, datetime(2026, 3, 13, 8, tzinfo=UTC)) == ([], [])
    assert agent_row(hub, agent_id).etat == ACTIF
