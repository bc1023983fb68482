"""Two calendar months without activity suspend an account (convention, Annexe 1).

Activity is the last ProConnect login with an accepted ``acr`` or the last partner call
accepted for the agent (``Agent.derniere_activite``); an agent who was never active counts
from the account's creation. "Two months" are calendar months in France's time zone: last
active on 15 January, suspended from 15 March; on 31 December, from the last day of
February (28 or 29). Warnings go to the agent and to the organisation's RGC at D-15 and D-7;
the RGCs are told of the suspension itself (they are the ones who can reactivate the account).
These are people's notifications: each lands in the console inbox of the people it reaches,
and by e-mail where a channel is configured (``adapters.outbound.notices`` words them).

``sweep`` is idempotent (run it daily, or twice: nothing is queued or suspended twice) and
the same due date is checked on every partner call, so a late sweep lets no one through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlmodel import Session, select

from habilitations.agent_states import suspend_for_inactivity
from habilitations.models import ACTIF, Agent
from relais.core.auditing import AuditRecorder
from relais.core.calendar import add_months
from relais.core.french_dates import local_date
from relais.core.outbox import OutboxMessage, enqueue
from relais.core.tables import Organisation

INACTIVITY_MONTHS = 2
# Days before the due date when the agent and the RGC are warned, most distant first.
WARNINGS = (15, 7)
TOPIC_WARNING = "habilitations.inactivite.avertissement"
TOPIC_SUSPENSION = "habilitations.inactivite.suspension"


def last_activity(agent: Agent) -> datetime:
    return agent.derniere_activite or agent.created_at


def inactivity_due_date(agent: Agent) -> date:
    """The first day the agent is suspended unless active before it."""
    return add_months(local_date(last_activity(agent)), INACTIVITY_MONTHS)


def is_overdue(agent: Agent, now: datetime) -> bool:
    return local_date(now) >= inactivity_due_date(agent)


def record_activity(session: Session, agent: Agent, now: datetime) -> None:
    """A call accepted for the agent: the input of the inactivity rule (not a transition)."""
    agent.derniere_activite = now
    session.add(agent)


@dataclass
class SweepReport:
    suspended: list[int] = field(default_factory=list)
    # (agent id, days before the due date) of the warnings queued by this run.
    warned: list[tuple[int, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"suspendus": len(self.suspended), "avertissements": len(self.warned)}


def sweep(session: Session, now: datetime, *, recorder: AuditRecorder, request_id: str) -> SweepReport:
    """Suspend every overdue active agent and warn those near their due date.

    Each suspension is audited through ``recorder`` under ``request_id`` (the sweep's run).
    The caller commits. Re-running it the same day changes nothing more.
    """
    report = SweepReport()
    today = local_date(now)
    agents = session.exec(select(Agent).where(Agent.etat == ACTIF)).all()
    for agent in agents:
        assert agent.id is not None
        due = inactivity_due_date(agent)
        if today >= due:
            suspend_for_inactivity(session, agent.id, due=due, now=now, recorder=recorder, request_id=request_id)
            _notify_suspension(session, agent, due, now)
            report.suspended.append(agent.id)
            continue
        threshold = _warning_threshold(today, due)
        if threshold is not None and _warn(session, agent, threshold, due, now):
            report.warned.append((agent.id, threshold))
    return report


def _warning_threshold(today: date, due: date) -> int | None:
    """The nearest warning threshold already reached (a late sweep sends only that one)."""
    reached = [days for days in WARNINGS if today >= due - timedelta(days=days)]
    return min(reached) if reached else None


def _warn(session: Session, agent: Agent, threshold: int, due: date, now: datetime) -> bool:
    organisation = session.get(Organisation, agent.organisation_id)
    assert organisation is not None
    payload = {
        "agent_id": agent.id,
        "organisation": organisation.code,
        "jours_restants": (due - local_date(now)).days,
        "seuil": f"J-{threshold}",
        "suspension_le": due.isoformat(),
    }
    queued = False
    for recipient in (f"agent:{agent.id}", f"rgc:{organisation.code}"):
        key = f"inactivite:{agent.id}:J-{threshold}:{due.isoformat()}:{recipient}"
        if session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == key)).first() is not None:
            continue
        enqueue(
            session,
            topic=TOPIC_WARNING,
            recipient=recipient,
            payload=payload,
            idempotency_key=key,
            now=now,
            organisation_id=organisation.id,
        )
        queued = True
    return queued


def _notify_suspension(session: Session, agent: Agent, due: date, now: datetime) -> None:
    """The organisation's RGCs hear of the suspension (once per agent and due date)."""
    organisation = session.get(Organisation, agent.organisation_id)
    assert organisation is not None
    enqueue(
        session,
        topic=TOPIC_SUSPENSION,
        recipient=f"rgc:{organisation.code}",
        payload={"agent_id": agent.id, "organisation": organisation.code, "suspension_le": due.isoformat()},
        idempotency_key=f"inactivite:{agent.id}:suspension:{due.isoformat()}",
        now=now,
        organisation_id=organisation.id,
    )
