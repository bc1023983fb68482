"""Role holders' accounts are the CSSI's or the operator's: an RGC (titular or deputy) can
neither revoke, block nor delete a titular RGC, a deputy, an RSSI, a CSSI or an operator, nor
change their ProConnect binding or employment status, which would end or launder a role
indirectly. Eligibility holds while the role does. The table runs both ways: for each role
holder and action, who may and who may not; an agent without a role is the control."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, select

from habilitations import agent_states, agents, designations
from habilitations.models import (
    ACTIF,
    BLOQUE,
    CSSI,
    OPERATEUR,
    REVOQUE,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    RSSI,
    SUPPRIME,
    Agent,
    Designation,
)
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal, current_roles
from relais.core.tables import Organisation
from tests.habilitations.test_admin_api import Staff, error, make_staff
from tests.habilitations.world import OPERATOR, RECORDER, request_id
from tests.support.hub import Hub

_SEQUENCE = itertools.count(1)
COMMITMENT = date(2025, 1, 6)

# Who acts: the organisation's titular RGC, its deputy, its RSSI, France Travail's CSSI, an
# agent designated operator, the operator's command line.
ACTORS = ("titulaire", "suppleant", "rssi", "cssi", "operateur", "cli")
# Who is acted on: each kind of role holder, and an agent without a role.
TARGETS = ("titulaire", "suppleant", "rssi", "cssi", "operateur", "agent")
# The binding fields: who logs in with the account (e-mail, ProConnect ``sub``) and who the
# partner calls name (``identifiant``).
ACTIONS = ("revoquer", "bloquer", "supprimer", "statut_emploi", "email", "identifiant", "sub")
SECURITY = {"cssi", "operateur", "cli"}


def allowed(actor: str, target: str, action: str) -> bool:
    """The policy: a role holder's account is the CSSI's or the operator's (the CSSI deletes
    and edits only role holders: other accounts are their organisation's business)."""
    if target != "agent":
        return actor in SECURITY
    if action == "bloquer":
        return actor in SECURITY
    if action == "revoquer":
        return actor in {"titulaire", "suppleant", *SECURITY}
    return actor in {"titulaire", "suppleant", "operateur", "cli"}


@dataclass
class World:
    """A fresh CD organisation with its role holders, and a CSSI and an operator at FT-NAQ."""

    organisation_id: int
    people: dict[str, int]


def _organisation(session: Session, code: str) -> int:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).one()
    assert organisation.id is not None
    return organisation.id


def _person(session: Session, organisation_id: int, role: str | None, now: Any) -> int:
    agent = agents.create_agent(
        session,
        OPERATOR,
        organisation_id=organisation_id,
        identifiant=f"ROLE-{next(_SEQUENCE)}",
        nom="Integrite",
        email=f"role{next(_SEQUENCE)}@example.org",
        statut_emploi="fonctionnaire",
        now=now,
        recorder=RECORDER,
        request_id=request_id(),
    )
    assert agent.id is not None
    if role is not None:
        designations.designate(
            session,
            OPERATOR,
            organisation_id=organisation_id,
            agent_id=agent.id,
            role=role,
            acte_engagement_le=COMMITMENT if role in (RGC_TITULAIRE, RGC_SUPPLEANT) else None,
            now=now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    return agent.id


def make_world(hub: Hub) -> World:
    now = hub.clock.now
    with hub.services.database.transaction() as session:
        code = f"CDR{next(_SEQUENCE)}"
        organisation = Organisation(code=code, type="CD", libelle=f"Département {code}", territoire=[])
        session.add(organisation)
        session.flush()
        assert organisation.id is not None
        ft = _organisation(session, "FT-NAQ")
        people = {
            "titulaire": _person(session, organisation.id, RGC_TITULAIRE, now),
            "suppleant": _person(session, organisation.id, RGC_SUPPLEANT, now),
            "rssi": _person(session, organisation.id, RSSI, now),
            "agent": _person(session, organisation.id, None, now),
            "cssi": _person(session, ft, CSSI, now),
            "operateur": _person(session, ft, OPERATEUR, now),
            # The targets of those two roles, apart from the actors holding them.
            "cssi_cible": _person(session, ft, CSSI, now),
            "operateur_cible": _person(session, ft, OPERATEUR, now),
        }
        return World(organisation.id, people)


def _principal(hub: Hub, world: World, actor: str) -> Principal:
    if actor == "cli":
        return Principal.command_line()
    agent_id = world.people[actor]
    with hub.services.database.session() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        return Principal(
            agent_id=agent_id,
            organisation_id=agent.organisation_id,
            organisation=None,
            roles=current_roles(session, agent_id, hub.clock.now),
        )


def _act(hub: Hub, principal: Principal, action: str, agent_id: int) -> None:
    common: dict[str, Any] = {"now": hub.clock.now, "recorder": RECORDER, "request_id": request_id()}
    calls: dict[str, Callable[[Session], Any]] = {
        "revoquer": lambda s: agent_states.revoke_agent(s, principal, agent_id, motif="depart", **common),
        "bloquer": lambda s: agent_states.block_agent(s, principal, agent_id, motif="usage_suspect", **common),
        "supprimer": lambda s: agent_states.delete_agent(s, principal, agent_id, **common),
        "statut_emploi": lambda s: agents.update_agent(
            s, principal, agent_id, changes={"statut_emploi": "contractuel"}, **common
        ),
        "email": lambda s: agents.update_agent(
            s, principal, agent_id, changes={"email": "autre@example.org"}, **common
        ),
        "identifiant": lambda s: agents.update_agent(
            s, principal, agent_id, changes={"identifiant": f"RENOMME-{next(_SEQUENCE)}"}, **common
        ),
        "sub": lambda s: agents.update_agent(
            s, principal, agent_id, changes={"sub": f"sub-autre-{next(_SEQUENCE)}"}, **common
        ),
    }
    with hub.services.database.transaction() as session:
        calls[action](session)


def _state(hub: Hub, agent_id: int) -> tuple[str, str | None, str | None, int, str, str | None]:
    """What the action would change: state, status, e-mail, designations in force, identifiant,
    ProConnect ``sub``."""
    with hub.services.database.session() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        in_force = [
            d for d in session.exec(select(Designation).where(Designation.agent_id == agent_id)).all() if d.fin is None
        ]
        return agent.etat, agent.statut_emploi, agent.email, len(in_force), agent.identifiant, agent.sub


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_who_may_act_on_a_role_holder(hub: Hub, target: str, action: str) -> None:
    # A refusal changes nothing, so the refused actors share a world; each allowed one gets its own.
    shared = make_world(hub)
    for actor in ACTORS:
        world = make_world(hub) if allowed(actor, target, action) else shared
        target_id = world.people[{"cssi": "cssi_cible", "operateur": "operateur_cible"}.get(target, target)]
        before = _state(hub, target_id)
        principal = _principal(hub, world, actor)
        if allowed(actor, target, action):
            _act(hub, principal, action, target_id)
            after = _state(hub, target_id)
            expected_etat = {"revoquer": REVOQUE, "bloquer": BLOQUE, "supprimer": SUPPRIME}.get(action, ACTIF)
            assert after[0] == expected_etat, (actor, after)
            assert after != before, actor
        else:
            with pytest.raises(TransitionRefused) as refused:
                _act(hub, principal, action, target_id)
            # Acting on oneself may be refused first for the separation of duties.
            codes = {"role_insuffisant", "separation_des_roles"} if actor == target else {"role_insuffisant"}
            assert refused.value.code in codes, (actor, refused.value.code)
            # Nothing moved: the account, its binding, its status and its roles stay.
            assert _state(hub, target_id) == before, actor


@pytest.mark.parametrize("role", [RGC_TITULAIRE, RGC_SUPPLEANT])
@pytest.mark.parametrize("actor", ["cssi", "cli"])
def test_no_one_makes_an_rgc_ineligible(hub: Hub, role: str, actor: str) -> None:
    world = make_world(hub)
    target = world.people["titulaire" if role == RGC_TITULAIRE else "suppleant"]
    before = _state(hub, target)
    principal = _principal(hub, world, actor)
    for statut in ("prestataire", "interimaire", None):
        with pytest.raises(TransitionRefused) as refused, hub.services.database.transaction() as session:
            agents.update_agent(
                session,
                principal,
                target,
                changes={"statut_emploi": statut},
                now=hub.clock.now,
                recorder=RECORDER,
                request_id=request_id(),
            )
        assert refused.value.code == "statut_non_eligible"
    assert _state(hub, target) == before
    # An RSSI, a CSSI or an operator need no such status: the change goes through.
    rssi = world.people["rssi"]
    with hub.services.database.transaction() as session:
        agents.update_agent(
            session,
            principal,
            rssi,
            changes={"statut_emploi": "prestataire"},
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    assert _state(hub, rssi)[1] == "prestataire"


# Through the admin API, the two attacks as reported -----------------------------------------


@pytest.fixture
def api_staff(hub: Hub) -> Staff:
    return make_staff(hub)


def _in_force(staff: Staff, agent_id: int) -> list[str]:
    with staff.hub.services.database.session() as session:
        rows = session.exec(select(Designation).where(Designation.agent_id == agent_id)).all()
        return sorted(d.role for d in rows if d.fin is None)


def test_a_deputy_cannot_end_the_titular_or_the_rssi_by_revoking_them(api_staff: Staff) -> None:
    staff = api_staff
    for target in (staff.rgc33, staff.rssi33):
        response = staff.post(staff.deputy33, f"/agents/{target}/etat", {"action": "revoquer", "motif": "depart"})
        assert (response.status_code, error(response)) == (403, "ROLE_INSUFFISANT")
        deleted = staff.post(staff.deputy33, f"/agents/{target}/etat", {"action": "supprimer", "motif": "depart"})
        assert deleted.status_code == 403
    assert _in_force(staff, staff.rgc33) == [RGC_TITULAIRE]
    assert _in_force(staff, staff.rssi33) == [RSSI]
    # The RSSI still reads their organisation's audit trail.
    assert staff.get(staff.rssi33, "/organisations/CD33/agents").status_code == 200
    # The CSSI may: the revocation ends the designation.
    revoked = staff.post(staff.cssi, f"/agents/{staff.rssi33}/etat", {"action": "revoquer", "motif": "depart"})
    assert revoked.status_code == 200 and _in_force(staff, staff.rssi33) == []


def test_a_contractor_cannot_be_laundered_into_a_deputy(api_staff: Staff) -> None:
    staff = api_staff
    created = staff.post(
        staff.rgc33,
        "/organisations/CD33/agents",
        {"identifiant": "PRESTA-2", "nom": "Presta", "statutEmploi": "prestataire"},
    ).json()
    path = f"/relais/habilitations/v1/agents/{created['id']}"
    headers = staff.headers(staff.rgc33)
    promoted = staff.hub.client.patch(path, json={"statutEmploi": "fonctionnaire"}, headers=headers)
    assert promoted.status_code == 200
    designated = staff.post(
        staff.rgc33,
        "/organisations/CD33/designations",
        {"agentId": created["id"], "role": "rgc_suppleant", "acteEngagementLe": "2026-01-05"},
    )
    assert designated.status_code == 201

    back = staff.hub.client.patch(path, json={"statutEmploi": "prestataire"}, headers=headers)
    assert (back.status_code, error(back)) == (403, "ROLE_INSUFFISANT")
    by_cssi = staff.hub.client.patch(path, json={"statutEmploi": "prestataire"}, headers=staff.headers(staff.cssi))
    assert (by_cssi.status_code, error(by_cssi)) == (400, "STATUT_NON_ELIGIBLE")
    with staff.hub.services.database.session() as session:
        agent = session.get(Agent, created["id"])
        assert agent is not None and agent.statut_emploi == "fonctionnaire"
    assert _in_force(staff, created["id"]) == [RGC_SUPPLEANT]
