"""People's notifications as they read them, filed once in each person's console inbox.

The inactivity sweep queues warnings and suspension notices in the outbox; filing them gives
the agent and the organisation's RGCs (as they stood when it was raised) their own copy, in
French, naming the agent, the date and what to do; a person marks only their own copies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from adapters.outbound import notices
from habilitations import notifications
from habilitations.inactivity import sweep
from habilitations.models import RGC_SUPPLEANT, Agent, Designation
from habilitations.notification_models import Notification
from habilitations.refusals import HabilitationRefused
from relais.core.outbox import OutboxMessage
from tests.habilitations.world import RECORDER, add_agent, add_rgc, grant, principal, request_id
from tests.support.hub import Hub

CREATED = datetime(2026, 10, 12, 8, tzinfo=UTC)  # due on Saturday 12 December 2026


def _name(hub: Hub, agent_id: int, prenom: str, nom: str) -> None:
    with hub.services.database.transaction() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        agent.prenom, agent.nom = prenom, nom
        session.add(agent)


def _sweep_and_file(hub: Hub, now: datetime) -> int:
    with hub.services.database.transaction() as session:
        sweep(session, now, recorder=RECORDER, request_id=request_id())
    with hub.services.database.transaction() as session:
        return notices.file_pending(session, now)


def _inbox(hub: Hub, agent_id: int) -> list[Notification]:
    with hub.services.database.session() as session:
        return notifications.inbox(session, agent_id)


def test_warnings_read_as_french_sentences_in_the_agent_s_and_the_rgc_s_inbox(hub: Hub) -> None:
    hub.clock.now = CREATED
    agent_id = add_agent(hub, "AGT-500")
    _name(hub, agent_id, "Claire", "Martin")
    hub.clock.now = CREATED + timedelta(days=30)  # the RGC is not due for a warning yet
    rgc_id = add_rgc(hub, "RGC-500")
    other_id = add_agent(hub, "AGT-501")

    warned = _sweep_and_file(hub, datetime(2026, 11, 27, 8, tzinfo=UTC))  # D-15
    assert warned == 2  # one copy for the agent, one for the RGC in post

    (own,) = _inbox(hub, agent_id)
    assert own.subject == "Votre accès à Relais sera suspendu le samedi 12 décembre 2026 sans connexion d'ici là"
    assert own.body.startswith("Bonjour Claire Martin,")
    assert "(dans 15 jours)" in own.body and "connectez-vous à la console" in own.body
    assert own.link == "/console/" and own.read_at is None
    (rgc_copy,) = _inbox(hub, rgc_id)
    assert rgc_copy.subject == "Claire Martin : compte suspendu le samedi 12 décembre 2026 sans activité d'ici là"
    assert "Claire Martin (AGT-500, CD33)" in rgc_copy.body and "révoquez ses habilitations" in rgc_copy.body
    assert rgc_copy.link == f"/console/habilitations/agents/{agent_id}"
    assert "agent_id" not in rgc_copy.body and "2026-12-12" not in rgc_copy.body
    assert _inbox(hub, other_id) == []

    # Filing again, or sweeping again the same day, gives no one a second copy.
    assert _sweep_and_file(hub, datetime(2026, 11, 27, 9, tzinfo=UTC)) == 0
    assert len(_inbox(hub, agent_id)) == 1 and len(_inbox(hub, rgc_id)) == 1


def test_the_rgcs_hear_of_the_suspension_and_a_later_rgc_does_not_inherit_old_mail(hub: Hub) -> None:
    hub.clock.now = CREATED
    agent_id = add_agent(hub, "AGT-502")
    _name(hub, agent_id, "Paul", "Durand")
    hub.clock.now = CREATED + timedelta(days=40)
    rgc_id = add_rgc(hub, "RGC-502")

    _sweep_and_file(hub, datetime(2026, 12, 12, 9, tzinfo=UTC))  # due day: suspended
    suspension = [n for n in _inbox(hub, rgc_id) if n.topic == "habilitations.inactivite.suspension"]
    assert [n.subject for n in suspension] == [
        "Paul Durand : compte suspendu pour inactivité depuis le samedi 12 décembre 2026"
    ]
    assert "réactivez son compte" in suspension[0].body

    hub.clock.now = datetime(2026, 12, 13, 9, tzinfo=UTC)
    newcomer = add_rgc(hub, "RGC-503", role=RGC_SUPPLEANT)
    with hub.services.database.transaction() as session:
        notices.file_pending(session, hub.clock.now)
    assert _inbox(hub, newcomer) == []


def test_an_rgc_near_their_own_deadline_is_told_once_in_their_own_words(hub: Hub) -> None:
    hub.clock.now = CREATED
    rgc_id = add_rgc(hub, "RGC-507")
    _name(hub, rgc_id, "Agnès", "Roux")
    _sweep_and_file(hub, datetime(2026, 11, 27, 8, tzinfo=UTC))
    subjects = [n.subject for n in _inbox(hub, rgc_id) if n.topic == "habilitations.inactivite.avertissement"]
    assert subjects == ["Votre accès à Relais sera suspendu le samedi 12 décembre 2026 sans connexion d'ici là"]


def test_a_person_marks_their_own_notifications_only(hub: Hub) -> None:
    hub.clock.now = CREATED
    agent_id = add_agent(hub, "AGT-504")
    other_id = add_agent(hub, "AGT-505")
    _sweep_and_file(hub, datetime(2026, 11, 27, 8, tzinfo=UTC))
    (mine,) = _inbox(hub, agent_id)
    with hub.services.database.transaction() as session:
        with pytest.raises(HabilitationRefused) as refused:
            notifications.mark_read(session, principal(hub, other_id), mine.id, hub.clock.now)
        assert refused.value.code == "NOTIFICATION_INCONNUE"
    assert _inbox(hub, agent_id)[0].read_at is None
    read_at = datetime(2026, 11, 28, 8, tzinfo=UTC)
    with hub.services.database.transaction() as session:
        notifications.mark_read(session, principal(hub, agent_id), mine.id, read_at)
        assert notifications.unread_count(session, agent_id) == 0
    assert _inbox(hub, agent_id)[0].read_at is not None


def test_a_notification_that_reaches_no_one_is_not_looked_at_again(hub: Hub) -> None:
    hub.clock.now = CREATED
    with hub.services.database.transaction() as session:
        session.add(
            OutboxMessage(
                topic="audit.incident.ouvert",
                recipient="rssi:CD33",
                payload={"resume": "12 consultations refusées en une heure", "detecteLe": CREATED.isoformat()},
                idempotency_key="incident:sans-rssi",
                created_at=CREATED,
            )
        )
    with hub.services.database.transaction() as session:
        assert notices.file_pending(session, CREATED) == 0
        assert notifications.unfiled(session) == []
        filed = session.exec(select(OutboxMessage)).all()
        assert all(notifications.is_filed(session, m.id) for m in filed if notifications.is_for_people(m.recipient))


def test_every_notification_the_domains_raise_names_the_agent_says_what_to_do_and_links_the_console(
    hub: Hub,
) -> None:
    hub.clock.now = CREATED
    agent_id = add_agent(hub, "AGT-506")
    _name(hub, agent_id, "Inès", "Moreau")
    grant_id = grant(hub, agent_id)
    rgc_id = add_rgc(hub, "RGC-506", role=RGC_SUPPLEANT)
    with hub.services.database.session() as session:
        designation = session.exec(select(Designation).where(Designation.agent_id == rgc_id)).one()
    _name(hub, rgc_id, "Agnès", "Roux")
    when = "2026-10-12T10:30:00+00:00"
    cases = {
        "habilitations.securite.blocage": [
            {"agent_id": agent_id, "motif": "usage_suspect", "organisation": "CD33", "le": when},
            {"habilitation_id": grant_id, "agent_id": agent_id, "motif": "usage_suspect", "le": when},
        ],
        "habilitations.rgc.signalement_cssi": [
            {
                "organisation": "CD33",
                "designation_id": designation.id,
                "role": RGC_SUPPLEANT,
                "motif": "depart",
                "constate_le": "2026-10-12",
                "a_signaler_avant": "2026-10-20",
            }
        ],
        "audit.incident.ouvert": [
            {"incident": "x", "resume": "20 refus en 5 minutes", "detecteLe": when, "echeanceNotification": when}
        ],
        "audit.incident.echeance_depassee": [{"resume": "20 refus en 5 minutes", "echeanceNotification": when}],
        "connecteurs.connecteur.suspendu": [{"connecteur": "solis-cd33", "motif": "5 échecs consécutifs"}],
    }
    with hub.services.database.session() as session:
        for topic, payloads in cases.items():
            for payload in payloads:
                message = OutboxMessage(
                    topic=topic, recipient="rgc:CD33", payload=payload, idempotency_key=topic, created_at=CREATED
                )
                wording = notices.word(session, message)
                assert "_" not in wording.subject and "Ce qu'il faut faire" in wording.body, (topic, wording)
                assert wording.link.startswith("/console/") and "{" not in wording.body
                if topic.startswith("habilitations.securite"):
                    assert "Inès Moreau" in wording.subject and "12 octobre 2026 à 12 h 30" in wording.body
                    assert "Motif : usage suspect" in wording.body
    with hub.services.database.session() as session:
        blocked_grant = notices.word(
            session,
            OutboxMessage(
                topic="habilitations.securite.blocage",
                recipient="rgc:CD33",
                payload=cases["habilitations.securite.blocage"][1],
                idempotency_key="g",
                created_at=CREATED,
            ),
        )
        notice = notices.word(
            session,
            OutboxMessage(
                topic="habilitations.rgc.signalement_cssi",
                recipient="cssi",
                payload=cases["habilitations.rgc.signalement_cssi"][0],
                idempotency_key="c",
                created_at=CREATED,
            ),
        )
    assert "l'habilitation « Rechercher usager v2 » d'Inès Moreau" in blocked_grant.body
    assert notice.subject == "CD33 : RGC suppléant à remplacer (Agnès Roux)"
    assert "a quitté l'organisation (constaté le lundi 12 octobre 2026)" in notice.body
    assert "avant le mardi 20 octobre 2026" in notice.body
