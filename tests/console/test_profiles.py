"""API profiles from the specs, and the grant traps refused by the domain for every caller.

A grant or a reduction that opens no operation, an unknown API name and a second grant for
the same API are refused with a message saying what to do: through the domain as through
the admin API (the console's own pages are in ``test_console.py`` and ``test_rgc_pages.py``).
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from habilitations import grants
from habilitations.models import Habilitation
from habilitations.profiles import api_profiles, is_useless, operation_labels
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from tests.console.test_console import agent_named, login
from tests.support.hub import Hub
from tests.support.scopes import RECHERCHE_SCOPES

RECHERCHE = RECHERCHE_SCOPES.split()
API = "/relais/habilitations/v1"


def test_a_profile_lists_each_operation_with_every_scope_it_needs() -> None:
    recherche = api_profiles()["rechercher-usager-v2"]
    by_id = {op.operation_id: op for op in recherche.operations}
    assert sorted(by_id["RechercherUsagerParNumeroFranceTravail"].scopes) == sorted(RECHERCHE)
    assert recherche.scopes_for(["RechercherUsagerParNumeroFranceTravail"]) == sorted(RECHERCHE)
    assert is_useless("rechercher-usager-v2", ["rechercheusager"])
    assert not is_useless("rechercher-usager-v2", RECHERCHE)
    assert operation_labels()["recupererDonneesParIdRci"] == "Récupérer les informations administratives de l'usager"


def test_a_grant_that_opens_no_operation_is_refused_by_the_domain(console: Hub) -> None:
    worker = agent_named(console, "CD33", "AGT-7")
    with console.services.database.session() as session:
        for grant in session.exec(select(Habilitation).where(Habilitation.agent_id == worker)).all():
            grant.etat = "revoque"
            session.add(grant)
        session.commit()

        def give(scopes: list[str]) -> Habilitation:
            return grants.grant_habilitation(
                session,
                Principal.command_line(),
                agent_id=worker,
                api="rechercher-usager-v2",
                scopes=scopes,
                finalite="Instruction RSA",
                now=console.clock.now,
                recorder=console.services.audit_recorder,
                request_id="test-profiles",
            )

        with pytest.raises(TransitionRefused) as refused:
            give(["rechercheusager"])
        assert refused.value.code == "habilitation_inutile"
        # The message names what is missing, not only that something is.
        assert "api_rechercher-usagerv2, profil_accedant" in refused.value.message
        session.rollback()
        assert sorted(give(RECHERCHE).scopes) == sorted(RECHERCHE)


def test_the_admin_api_refuses_the_grant_traps_with_what_to_do(console: Hub) -> None:
    login(console, "rgc-cd33")  # provisions the RGC persona and its role
    rgc = agent_named(console, "CD33", "RGC-CD33")
    worker = agent_named(console, "CD33", "AGT-7")
    headers = {"Authorization": f"Bearer {console.admin_token(rgc)}"}

    def grant(api: str, scopes: list[str]) -> tuple[int, dict[str, str]]:
        answer = console.client.post(
            f"{API}/agents/{worker}/habilitations",
            json={"api": api, "scopes": scopes, "finalite": "Instruction RSA"},
            headers=headers,
        )
        return answer.status_code, answer.json()

    status, body = grant("rechercher-usager-v3", RECHERCHE)
    assert (status, body["codeErreur"]) == (400, "API_INCONNUE") and "API inconnue" in body["message"]

    # Already granted (the dataset's grant): say how to change it rather than a bare conflict.
    status, body = grant("rechercher-usager-v2", RECHERCHE)
    assert (status, body["codeErreur"]) == (409, "HABILITATION_EXISTANTE")
    assert "prolongez-la ou réduisez-la" in body["message"] and "révoquez-la puis" in body["message"]

    with console.services.database.transaction() as session:
        held = session.exec(
            select(Habilitation).where(Habilitation.agent_id == worker, Habilitation.api == "rechercher-usager-v2")
        ).one()
        held.etat = "revoque"
        session.add(held)
    status, body = grant("rechercher-usager-v2", ["rechercheusager"])
    assert (status, body["codeErreur"]) == (400, "HABILITATION_INUTILE")
    assert "aucune opération" in body["message"]
    status, body = grant("rechercher-usager-v2", RECHERCHE)
    assert status == 201 and sorted(body["scopes"]) == sorted(RECHERCHE)

    reduced = console.client.post(
        f"{API}/habilitations/{body['id']}/reduction", json={"scopes": ["rechercheusager"]}, headers=headers
    )
    assert reduced.status_code == 400 and reduced.json()["codeErreur"] == "HABILITATION_INUTILE"
