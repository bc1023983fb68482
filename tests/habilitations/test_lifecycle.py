"""The rules every lifecycle action obeys, whoever calls it (admin API, CLI, import, sweep)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import select

from api.refusals import status_of
from habilitations import agent_states, agents, designations, grants, models, overrides
from habilitations.models import ACTIF, BLOQUE, CSSI, RGC_SUPPLEANT, RSSI, Designation
from habilitations.refusals import TransitionRefused
from relais.core.outbox import OutboxMessage
from tests.habilitations.world import (
    API_SCOPES,
    INFOS_API,
    LOOKUP,
    OPERATOR,
    RECHERCHE_API,
    RECORDER,
    act,
    add_agent,
    add_rgc,
    agent_row,
    events,
    grant,
    last_seq,
    organisation_id,
    principal,
    request_id,
    search,
)
from tests.support.hub import Hub
from tests.support.people import GIRONDE


def refused(hub: Hub, function: Any, *args: Any, **kwargs: Any) -> TransitionRefused:
    """Run an action expected to be refused; check that it wrote nothing."""
    before = last_seq(hub)
    with pytest.raises(TransitionRefused) as caught:
        act(hub, function, *args, **kwargs)
    assert last_seq(hub) == before
    return caught.value


def outbox(hub: Hub, topic: str) -> list[OutboxMessage]:
    with hub.services.database.session() as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.topic == topic)).all())


def cssi(hub: Hub) -> Any:
    agent_id = add_agent(hub, "CSSI-1", "FT-NAQ", statut="fonctionnaire")
    with hub.services.database.transaction() as session:
        designations.designate(
            session,
            OPERATOR,
            organisation_id=organisation_id(session, "FT-NAQ"),
            agent_id=agent_id,
            role=CSSI,
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    return principal(hub, agent_id)


def test_an_rgc_never_grants_or_extends_their_own_habilitations_a_deputy_does(hub: Hub) -> None:
    titular_id = add_rgc(hub, "RGC-T")
    titular = principal(hub, titular_id)
    error = refused(hub, grants.grant_habilitation, **_grant_args(titular_id), actor=titular)
    assert (error.code, status_of(error)) == ("separation_des_roles", 403)

    deputy = principal(hub, add_rgc(hub, "RGC-S", role=RGC_SUPPLEANT))
    habilitation_id = grant(hub, titular_id, actor=deputy, date_fin=hub.clock.today() + timedelta(days=30))
    later = hub.clock.today() + timedelta(days=90)
    error = refused(hub, grants.set_habilitation_end, habilitation_id, date_fin=later, actor=titular)
    assert error.code == "separation_des_roles"
    act(hub, grants.set_habilitation_end, habilitation_id, date_fin=later, actor=deputy)
    # Giving up some of one's own access is always allowed.
    sooner = hub.clock.today() + timedelta(days=10)
    act(hub, grants.set_habilitation_end, habilitation_id, date_fin=sooner, actor=titular)


def test_only_the_organisations_rgc_or_the_operator_grants(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-200")
    rgc_93 = principal(hub, add_rgc(hub, "RGC-93", "CD93"))
    assert refused(hub, grants.grant_habilitation, **_grant_args(agent_id), actor=rgc_93).code == "role_insuffisant"
    rssi_id = add_agent(hub, "RSSI-33", statut="fonctionnaire")
    act(hub, _designate, rssi_id, RSSI)
    rssi = principal(hub, rssi_id)
    assert status_of(refused(hub, grants.grant_habilitation, **_grant_args(agent_id), actor=rssi)) == 403
    grant(hub, agent_id, actor=principal(hub, add_rgc(hub, "RGC-33")))


def test_grants_stay_within_the_subscription_and_the_clients_scopes(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-201")
    beyond = refused(hub, grants.grant_habilitation, **_grant_args(agent_id, scopes=["alimentationusager"]))
    assert (beyond.code, status_of(beyond)) == ("hors_souscription", 403)
    unsubscribed = refused(
        hub, grants.grant_habilitation, **_grant_args(agent_id, api="alimentation-v1", scopes=["alimentationusager"])
    )
    assert unsubscribed.code == "hors_souscription"
    identity = act(hub, agents.create_technical_identity, client_id="cd33-recherche", nom="Nuit")
    infos = ["api_informations-administrativesv1", "informationsadministrativesusager", "profil_accedant"]
    error = refused(hub, grants.grant_habilitation, **_grant_args(identity.id, api=INFOS_API, scopes=infos))
    assert error.code == "hors_client"


def test_only_an_active_agent_is_granted_and_once_per_api(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-202")
    grant(hub, agent_id)
    assert refused(hub, grants.grant_habilitation, **_grant_args(agent_id)).code == "habilitation_existante"
    act(hub, agent_states.revoke_agent, agent_id, motif="changement_fonction")
    assert refused(hub, grants.grant_habilitation, **_grant_args(agent_id, api=INFOS_API)).code == "agent_inactif"


def test_rgc_designation_rules(hub: Hub) -> None:
    contractor = add_agent(hub, "PRESTA-1", statut="prestataire")
    error = refused(hub, _designate, contractor, "rgc_titulaire", acte_engagement_le=date(2025, 1, 6))
    assert error.code == "statut_non_eligible"
    civil_servant = add_agent(hub, "FONC-1", statut="fonctionnaire")
    assert refused(hub, _designate, civil_servant, "rgc_titulaire").code == "acte_engagement_requis"
    titular = principal(hub, add_rgc(hub, "RGC-T2"))
    second = refused(hub, _designate, civil_servant, "rgc_titulaire", acte_engagement_le=date(2025, 1, 6))
    assert second.code == "titulaire_existant"
    # The titular names deputies, not another titular; never themselves.
    error = refused(hub, _designate, civil_servant, "rgc_titulaire", acte_engagement_le=date(2025, 1, 6), actor=titular)
    assert error.code == "role_insuffisant"
    act(hub, _designate, civil_servant, RGC_SUPPLEANT, acte_engagement_le=date(2025, 1, 6), actor=titular)
    assert refused(hub, _designate, civil_servant, CSSI).code == "cssi_hors_france_travail"


def test_a_security_override_blocks_notifies_the_rgc_and_is_flagged(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-203")
    rgc = principal(hub, add_rgc(hub, "RGC-33"))
    assert refused(hub, agent_states.block_agent, agent_id, motif="usage_suspect", actor=rgc).code == "role_insuffisant"
    officer = cssi(hub)
    assert refused(hub, agent_states.block_agent, agent_id, motif="", actor=officer).code == "motif_invalide"
    act(hub, agent_states.block_agent, agent_id, motif="usage_suspect", actor=officer)
    assert agent_row(hub, agent_id).etat == BLOQUE
    [notice] = outbox(hub, overrides.TOPIC_OVERRIDE)
    assert notice.recipient == "rgc:CD33" and notice.payload["motif"] == "usage_suspect"
    with hub.services.database.session() as session:
        [flag] = overrides.security_overrides(session, "CD33", None, lookup=LOOKUP)
    assert flag.target == f"agent:{agent_id}" and flag.details is not None and flag.details["override"] is True
    # Lifting the block is the security officers' decision, not the RGC's.
    assert refused(hub, agent_states.reactivate_agent, agent_id, actor=rgc).code == "role_insuffisant"
    act(hub, agent_states.reactivate_agent, agent_id, actor=officer)


def test_an_rgc_cannot_get_round_a_security_block(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-204")
    habilitation_id = grant(hub, agent_id)
    rgc = principal(hub, add_rgc(hub, "RGC-36"))
    officer = cssi(hub)
    act(hub, agent_states.block_agent, agent_id, motif="usage_suspect", actor=officer)
    # Revoking, deleting or renaming the blocked account would let the RGC reactivate it
    # (or recreate it) and grant again: all are the security officers' decision.
    assert refused(hub, agent_states.revoke_agent, agent_id, motif="depart", actor=rgc).code == "role_insuffisant"
    assert refused(hub, agent_states.delete_agent, agent_id, actor=rgc).code == "role_insuffisant"
    changes = {"identifiant": "AGT-204-BIS"}
    assert refused(hub, agents.update_agent, agent_id, changes=changes, actor=rgc).code == "role_insuffisant"
    assert agent_row(hub, agent_id).etat == BLOQUE
    assert search(hub, "AGT-204", GIRONDE).status_code == 403

    # A grant blocked on its own stays blocked too.
    other_id = add_agent(hub, "AGT-205")
    other_grant = grant(hub, other_id)
    act(hub, grants.block_habilitation, other_grant, motif="usage_suspect", actor=officer)
    assert refused(hub, grants.revoke_habilitation, other_grant, motif="campagne", actor=rgc).code == (
        "role_insuffisant"
    )
    assert habilitation_id != other_grant


def test_a_revocation_by_the_cssi_is_undone_only_by_the_security_officers(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-206")
    rgc = principal(hub, add_rgc(hub, "RGC-37"))
    officer = cssi(hub)
    act(hub, agent_states.revoke_agent, agent_id, motif="usage_suspect", actor=officer)
    assert refused(hub, agent_states.reactivate_agent, agent_id, actor=rgc).code == "role_insuffisant"
    act(hub, agent_states.reactivate_agent, agent_id, actor=officer)
    assert agent_row(hub, agent_id).etat == ACTIF
    # A departure recorded by the RGC is theirs to undo.
    act(hub, agent_states.revoke_agent, agent_id, motif="depart", actor=rgc)
    act(hub, agent_states.reactivate_agent, agent_id, actor=rgc)


def test_nobody_rebinds_their_own_identity_and_role_holders_are_rebound_by_security(hub: Hub) -> None:
    rgc_id = add_rgc(hub, "RGC-38")
    deputy_id = add_rgc(hub, "RGC-39", role=RGC_SUPPLEANT)
    rgc = principal(hub, rgc_id)
    own = {"email": "autre@example.org"}
    assert refused(hub, agents.update_agent, rgc_id, changes=own, actor=rgc).code == "separation_des_roles"
    # The deputy holds a role: binding their account (first login matches by e-mail) is not the RGC's call.
    other = {"email": "suppleant@example.org"}
    assert refused(hub, agents.update_agent, deputy_id, changes=other, actor=rgc).code == "role_insuffisant"
    act(hub, agents.update_agent, deputy_id, changes=other, actor=OPERATOR)
    # A plain agent's e-mail is the RGC's to correct.
    agent_id = add_agent(hub, "AGT-207")
    act(hub, agents.update_agent, agent_id, changes={"email": "agent207@example.org"}, actor=rgc)


def test_an_rgc_leaving_ends_everything_and_raises_the_cssi_notice_with_its_deadline(hub: Hub) -> None:
    rgc_id = add_rgc(hub, "RGC-34")
    grant(hub, rgc_id, actor=principal(hub, add_rgc(hub, "RGC-35", role=RGC_SUPPLEANT)))
    before = last_seq(hub)
    act(hub, agent_states.revoke_agent, rgc_id, motif="depart")
    assert [e.operation for e in events(hub, before)] == [
        "habilitations.agent.revoquer",
        "habilitations.habilitation.revoquer",
        "habilitations.designation.terminer",
    ]
    [notice] = outbox(hub, designations.TOPIC_RGC_NOTICE)
    assert notice.recipient == "cssi" and notice.payload["motif"] == "depart"
    assert notice.payload["a_signaler_avant"] == (hub.clock.today() + timedelta(days=8)).isoformat()
    with hub.services.database.session() as session:
        designation = session.exec(select(Designation).where(Designation.agent_id == rgc_id)).one()
        assert designation.fin is not None


def test_audit_details_name_fields_and_codes_never_values(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-204")
    changes = {"email": "claire.martin@gironde.fr", "nom": "Durand-Martin"}
    act(hub, agents.update_agent, agent_id, changes=changes)
    event = events(hub)[-1]
    assert event.operation == "habilitations.agent.modifier" and event.channel == "cli"
    assert event.details == {"acteur": "cli:operateur", "champs": ["email", "nom"]}
    dumped = str(event.model_dump())
    assert "gironde.fr" not in dumped and "Durand" not in dumped
    act(hub, agents.update_agent, agent_id, changes=changes)
    assert events(hub)[-1].seq == event.seq  # nothing changed, nothing written


def _grant_args(agent_id: int, api: str = RECHERCHE_API, scopes: list[str] | None = None) -> dict[str, Any]:
    return {"agent_id": agent_id, "api": api, "scopes": scopes or API_SCOPES[api], "finalite": "Accompagnement"}


def _designate(session: Any, actor: Any, agent_id: int, role: str, *, now: Any, **extra: Any) -> Designation:
    agent = session.get(models.Agent, agent_id)
    return designations.designate(
        session, actor, organisation_id=agent.organisation_id, agent_id=agent_id, role=role, now=now, **extra
    )
