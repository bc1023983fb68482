"""API profiles from the specs, and the refusal of a grant that opens no operation."""

from __future__ import annotations

import pytest
from sqlmodel import select

from habilitations import grants
from habilitations.models import Habilitation
from habilitations.profiles import api_profiles, is_useless, operation_labels
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from tests.console.test_console import agent_named
from tests.support.hub import Hub
from tests.support.scopes import RECHERCHE_SCOPES

RECHERCHE = RECHERCHE_SCOPES.split()


def test_a_profile_lists_each_operation_with_every_scope_it_needs() -> None:
    recherche = api_profiles()["rechercher-usager-v2"]
    by_id = {op.operation_id: op for op in recherche.operations}
    assert sorted(by_id["RechercherUsagerParNumeroFranceTravail"].scopes) == sorted(RECHERCHE)
    assert recherche.scopes_for(["RechercherUsagerParNumeroFranceTravail"]) == sorted(RECHERCHE)
    assert is_useless("rechercher-usager-v2", ["rechercheusager"])
    assert not is_useless("rechercher-usager-v2", RECHERCHE)
    assert operation_labels()["recupererDonneesParIdRci"] == "Récupérer les informations administratives de l'usager"


def test_a_grant_that_opens_no_operation_is_refused_when_usefulness_is_required(console: Hub) -> None:
    worker = agent_named(console, "CD33", "AGT-7")
    with console.services.database.session() as session:
        for grant in session.exec(select(Habilitation).where(Habilitation.agent_id == worker)).all():
            grant.etat = "revoque"
            session.add(grant)
        session.commit()
        with pytest.raises(TransitionRefused) as refused:
            grants.grant_habilitation(
                session,
                Principal.command_line(),
                agent_id=worker,
                api="rechercher-usager-v2",
                scopes=["rechercheusager"],
                finalite="Instruction RSA",
                now=console.clock.now,
                recorder=console.services.audit_recorder,
                request_id="test-profiles",
                require_useful=True,
            )
        assert refused.value.code == "habilitation_inutile" and "aucune opération" in refused.value.message
        session.rollback()
        useful = grants.grant_habilitation(
            session,
            Principal.command_line(),
            agent_id=worker,
            api="rechercher-usager-v2",
            scopes=RECHERCHE,
            finalite="Instruction RSA",
            now=console.clock.now,
            recorder=console.services.audit_recorder,
            request_id="test-profiles",
            require_useful=True,
        )
        assert sorted(useful.scopes) == sorted(RECHERCHE)
