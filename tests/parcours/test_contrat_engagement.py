"""Contrat d'engagement v1: read, sign, refuse; the lifecycle (suspension, reprise, clôture,
re-orientation) driven by the domain events; every refusal.

The app is shared by the module (see ``test_rendez_vous_partenaire``'s ``shared_hub``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import select

from parcours import contrat as contrat_domain
from parcours.ports import Refused
from parcours.tables import ContratEngagement, UsagerOrganisation
from tests.parcours.test_rendez_vous_partenaire import (  # noqa: F401 - fixtures
    Api,
    conforms,
    hub,
    organisation_id,
    shared_hub,
    usager_id,
)
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT, RATTACHE_EXPLICITE, Person
from tests.support.scopes import CONTRAT_ENGAGEMENT_SCOPES, RDV_SCOPES

BASE = "/partenaire/contrat-engagement/v1"
LECTURE = f"{BASE}/lecture"
SIGNER = f"{BASE}/signer"
REFUSER = f"{BASE}/refuser"
AGENT = {"nom": "Martin", "prenom": "Claire", "identifiant": "AGT-0042"}


class Contrat(Api):
    def __init__(self, hub: Hub, client: str = "cd33", scope: str = CONTRAT_ENGAGEMENT_SCOPES) -> None:  # noqa: F811
        super().__init__(hub, client, scope)

    def call(self, method: str, url: str, person: Person = GIRONDE, /, **json: Any) -> httpx.Response:
        return self.hub.client.request(method, url, json=json or None, headers=self.headers(person))

    def lire(self, person: Person = GIRONDE) -> dict[str, Any] | None:
        response = self.call("GET", LECTURE, person)
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())

    def iso(self, delta: timedelta = timedelta(hours=1)) -> str:
        """A moment before the app's now, as a client sends it."""
        return (self.hub.clock.now - delta).isoformat()


@pytest.fixture
def api(hub: Hub) -> Contrat:  # noqa: F811
    return Contrat(hub)


def event(hub: Hub, function: Any, person: Person = GIRONDE) -> None:  # noqa: F811
    """A domain event (producer feed, orientation rules) on the usager's contract, committed."""
    uid = usager_id(hub, person)
    with hub.services.database.transaction() as session:
        function(session, uid, now=hub.clock.now)


def row(hub: Hub, person: Person = GIRONDE) -> ContratEngagement | None:  # noqa: F811
    uid = usager_id(hub, person)
    with hub.services.database.session() as session:
        return session.exec(select(ContratEngagement).where(ContratEngagement.usager_id == uid)).first()


def move(hub: Hub, delta: timedelta) -> Contrat:  # noqa: F811
    """Move the app's clock; a new client session (tokens and jetons expire)."""
    hub.clock.now += delta
    return Contrat(hub)


class TestSignerEtLire:
    def test_no_contract_is_204(self, api: Contrat) -> None:
        response = api.call("GET", LECTURE)
        assert response.status_code == 204
        assert response.content == b""

    def test_post_signer_creates_a_signed_contract(self, api: Contrat) -> None:
        response = api.call(
            "POST",
            SIGNER,
            dateSignature="2026-03-01T10:30:00.000+01:00",
            engagements=[{"code": "RECHERCHE_EMPLOI", "libelle": "Rechercher activement un emploi"}],
            planAction=[{"libelle": "Atelier CV", "dateEcheance": "2026-03-15"}, {"libelle": "Visite médicale"}],
            intensiteHebdomadaire=15,
        )
        assert response.status_code == 200, response.text
        contrat = response.json()
        assert contrat["etat"] == "SIGNE"
        assert contrat["dateSignature"] == "2026-03-01T10:30:00.000+01:00"
        assert contrat["agentSignature"] == AGENT
        assert contrat["agentRefus"] is None
        assert contrat["organisme"] == "CD"
        assert contrat["engagements"] == [{"code": "RECHERCHE_EMPLOI", "libelle": "Rechercher activement un emploi"}]
        assert contrat["planAction"] == [
            {"code": None, "libelle": "Atelier CV", "dateEcheance": "2026-03-15"},
            {"code": None, "libelle": "Visite médicale", "dateEcheance": None},
        ]
        assert contrat["intensiteHebdomadaire"] == 15
        assert contrat["dateSuspension"] is None and contrat["dateCloture"] is None
        assert api.lire() == contrat

    def test_post_signer_when_a_contract_exists_is_409_and_changes_nothing(self, api: Contrat) -> None:
        first = api.call("POST", SIGNER, dateSignature=api.iso(), intensiteHebdomadaire=10).json()
        response = api.call("POST", SIGNER, dateSignature=api.iso(), intensiteHebdomadaire=20)
        assert response.status_code == 409
        assert response.json()["codeErreur"] == "CONTRAT_EXISTANT"
        assert api.lire() == first

    def test_post_refuser_creates_a_refused_contract(self, api: Contrat) -> None:
        response = api.call("POST", REFUSER, dateRefus=api.iso(), engagements=[{"libelle": "Se présenter aux RDV"}])
        assert response.status_code == 200, response.text
        assert response.json()["etat"] == "REFUSE"
        assert response.json()["agentRefus"] == AGENT
        assert api.call("POST", REFUSER, dateRefus=api.iso()).json()["codeErreur"] == "CONTRAT_EXISTANT"
        # A refused contract can then be signed; the refusal stays on record.
        signed = api.call("PATCH", SIGNER, dateSignature=api.iso(timedelta(minutes=1))).json()
        assert signed["etat"] == "SIGNE"
        assert signed["dateRefus"] is not None
        assert signed["agentRefus"] == AGENT
        assert signed["engagements"] == [{"code": None, "libelle": "Se présenter aux RDV"}]

    def test_contracts_are_per_usager(self, api: Contrat) -> None:
        api.call("POST", SIGNER, dateSignature=api.iso())
        assert api.lire(GIRONDE_SANS_CONTRAT) is None

    @pytest.mark.parametrize(
        ("payload", "code", "field"),
        [
            ({}, "REQUETE_INVALIDE", "dateSignature"),
            ({"dateSignature": "hier"}, "REQUETE_INVALIDE", "dateSignature"),
            ({"dateSignature": "2099-01-01T00:00:00Z"}, "CONTRAT_INVALIDE", "futur"),
            ({"dateSignature": "1850-01-01T00:00:00Z"}, "REQUETE_INVALIDE", "dateSignature"),
            ({"dateSignature": "2026-01-01T00:00:00Z", "intensiteHebdomadaire": 200}, "REQUETE_INVALIDE", "intensite"),
            ({"dateSignature": "2026-01-01T00:00:00Z", "engagements": [{"code": "X"}]}, "REQUETE_INVALIDE", "libelle"),
            (
                {"dateSignature": "2026-01-01T00:00:00Z", "engagements": [{"libelle": "a\x00"}]},
                "REQUETE_INVALIDE",
                "engagements[0].libelle",
            ),
        ],
    )
    def test_bad_bodies_are_400_and_nothing_is_written(
        self, api: Contrat, payload: dict[str, Any], code: str, field: str
    ) -> None:
        response = api.hub.client.post(SIGNER, json=payload, headers=api.headers(GIRONDE))
        assert response.status_code == 400, response.text
        assert response.json()["codeErreur"] == code
        if field != "x":
            assert field in response.json()["message"]
        assert api.lire() is None


class TestTransitions:
    def test_patch_without_contract_is_409(self, api: Contrat) -> None:
        for url, field in ((SIGNER, "dateSignature"), (REFUSER, "dateRefus")):
            response = api.call("PATCH", url, **{field: api.iso()})
            assert response.status_code == 409
            assert response.json()["codeErreur"] == "CONTRAT_INEXISTANT"
        assert api.lire() is None

    def test_a_signed_contract_is_neither_signed_again_nor_refused(self, api: Contrat) -> None:
        signed = api.call("POST", SIGNER, dateSignature=api.iso()).json()
        for url, field in ((SIGNER, "dateSignature"), (REFUSER, "dateRefus")):
            response = api.call("PATCH", url, **{field: api.iso()})
            assert response.status_code == 409
            assert response.json()["codeErreur"] == "ETAT_CONTRAT_INCOMPATIBLE"
            assert "SIGNE" in response.json()["message"]
        assert api.lire() == signed

    def test_reorientation_then_refusal_then_signature(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        api.call("POST", SIGNER, dateSignature=api.iso(), intensiteHebdomadaire=12)
        event(hub, contrat_domain.remettre_a_signer)
        a_signer = api.lire()
        assert a_signer is not None
        assert a_signer["etat"] == "A_SIGNER"
        assert a_signer["dateSignature"] is None and a_signer["agentSignature"] is None
        # The content stays, to be signed again.
        assert a_signer["intensiteHebdomadaire"] == 12

        refused = api.call("PATCH", REFUSER, dateRefus=api.iso())
        assert refused.status_code == 200, refused.text
        assert refused.json()["etat"] == "REFUSE"
        assert refused.json()["agentRefus"] == AGENT
        again = api.call("PATCH", REFUSER, dateRefus=api.iso())
        assert again.status_code == 409
        assert again.json()["codeErreur"] == "ETAT_CONTRAT_INCOMPATIBLE"

        other_agent = api.hub.headers(api.token, **{"ft-jeton-usager": api.jeton(GIRONDE)})
        other_agent.update({"pa-nom-agent": "Durand", "pa-prenom-agent": "Paul", "pa-identifiant-agent": "AGT-7"})
        signed = api.hub.client.patch(
            SIGNER, json={"dateSignature": api.iso(), "intensiteHebdomadaire": 20}, headers=other_agent
        )
        assert signed.status_code == 200, signed.text
        assert signed.json()["etat"] == "SIGNE"
        assert signed.json()["agentSignature"] == {"nom": "Durand", "prenom": "Paul", "identifiant": "AGT-7"}
        assert signed.json()["agentRefus"] == AGENT
        assert signed.json()["intensiteHebdomadaire"] == 20

    def test_reorientation_of_a_refused_contract_and_a_to_sign_contract_signed(
        self,
        hub: Hub,  # noqa: F811
        api: Contrat,
    ) -> None:
        api.call("POST", REFUSER, dateRefus=api.iso())
        event(hub, contrat_domain.remettre_a_signer)
        assert (api.lire() or {})["etat"] == "A_SIGNER"
        # Re-orientation again: still to sign.
        event(hub, contrat_domain.remettre_a_signer)
        assert (api.lire() or {})["etat"] == "A_SIGNER"
        assert api.call("PATCH", SIGNER, dateSignature=api.iso()).json()["etat"] == "SIGNE"

    def test_every_transition_bumps_the_version(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        api.call("POST", SIGNER, dateSignature=api.iso())
        first = row(hub)
        event(hub, contrat_domain.remettre_a_signer)
        second = row(hub)
        assert first is not None and second is not None
        assert second.version == first.version + 1


class TestSuspensionEtCloture:
    def test_cessation_suspends_and_reinscription_resumes(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        signed = api.call("POST", SIGNER, dateSignature=api.iso()).json()
        event(hub, contrat_domain.suspendre_sur_cessation)
        suspended = api.lire()
        assert suspended is not None
        today = hub.clock.today()
        assert suspended["etat"] == "SUSPENDU"
        assert suspended["etatAvantSuspension"] == "SIGNE"
        assert suspended["dateSuspension"] == today.isoformat()
        assert suspended["dateCloturePrevue"] == today.replace(year=today.year + 1).isoformat()
        # A suspended contract is neither signed nor refused.
        for url, field in ((SIGNER, "dateSignature"), (REFUSER, "dateRefus")):
            assert api.call("PATCH", url, **{field: api.iso()}).json()["codeErreur"] == "ETAT_CONTRAT_INCOMPATIBLE"
        # Re-orientation leaves a suspended contract alone.
        event(hub, contrat_domain.remettre_a_signer)
        assert (api.lire() or {})["etat"] == "SUSPENDU"

        api = move(hub, timedelta(days=200))
        event(hub, contrat_domain.reprendre_sur_reinscription)
        resumed = api.lire()
        assert resumed is not None
        assert resumed["etat"] == "SIGNE"
        assert resumed["dateSignature"] == signed["dateSignature"]
        assert resumed["etatAvantSuspension"] is None and resumed["dateSuspension"] is None

    def test_only_a_signed_contract_is_suspended(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        api.call("POST", REFUSER, dateRefus=api.iso())
        event(hub, contrat_domain.suspendre_sur_cessation)
        assert (api.lire() or {})["etat"] == "REFUSE"
        # No contract: nothing happens.
        event(hub, contrat_domain.suspendre_sur_cessation, GIRONDE_SANS_CONTRAT)
        event(hub, contrat_domain.reprendre_sur_reinscription, GIRONDE_SANS_CONTRAT)
        event(hub, contrat_domain.remettre_a_signer, GIRONDE_SANS_CONTRAT)
        assert api.lire(GIRONDE_SANS_CONTRAT) is None

    def test_twelve_months_suspended_closes_on_read(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        api.call("POST", SIGNER, dateSignature=api.iso())
        event(hub, contrat_domain.suspendre_sur_cessation)
        suspended_on = hub.clock.today()
        due = suspended_on.replace(year=suspended_on.year + 1)

        api = move(hub, timedelta(days=364))
        assert (api.lire() or {})["etat"] == "SUSPENDU"

        # Twelve months later, no batch has run: the read closes it, dated on the due day.
        api = move(hub, timedelta(days=30))
        closed = api.lire()
        assert closed is not None
        assert closed["etat"] == "CLOTURE"
        assert closed["dateCloture"] == due.isoformat()
        assert closed["etatAvantSuspension"] is None
        stored = row(hub)
        assert stored is not None and stored.etat == "CLOTURE" and stored.date_cloture == due

        # Registering again does not reopen a closed contract; a new one can be signed.
        event(hub, contrat_domain.reprendre_sur_reinscription)
        assert (api.lire() or {})["etat"] == "CLOTURE"
        new = api.call("POST", SIGNER, dateSignature=api.iso())
        assert new.status_code == 200, new.text
        assert new.json()["etat"] == "SIGNE"
        assert new.json()["identifiant"] != closed["identifiant"]
        assert new.json()["dateCloture"] is None

    def test_a_late_reinscription_finds_the_contract_closed(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        api.call("POST", SIGNER, dateSignature=api.iso())
        event(hub, contrat_domain.suspendre_sur_cessation)
        move(hub, timedelta(days=400))
        event(hub, contrat_domain.reprendre_sur_reinscription)
        stored = row(hub)
        assert stored is not None and stored.etat == "CLOTURE"

    def test_the_batch_closes_what_is_due(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        api.call("POST", SIGNER, dateSignature=api.iso())
        api.call("POST", SIGNER, GIRONDE_SANS_CONTRAT, dateSignature=api.iso())
        event(hub, contrat_domain.suspendre_sur_cessation)
        move(hub, timedelta(days=100))
        event(hub, contrat_domain.suspendre_sur_cessation, GIRONDE_SANS_CONTRAT)
        with hub.services.database.transaction() as session:
            assert contrat_domain.cloturer_suspensions_echues(session, now=hub.clock.now) == 0
        move(hub, timedelta(days=300))
        with hub.services.database.transaction() as session:
            assert contrat_domain.cloturer_suspensions_echues(session, now=hub.clock.now) == 1
        assert (row(hub) or ContratEngagement(etat="?", usager_id="")).etat == "CLOTURE"
        assert (row(hub, GIRONDE_SANS_CONTRAT) or ContratEngagement(etat="?", usager_id="")).etat == "SUSPENDU"
        with hub.services.database.transaction() as session:
            assert contrat_domain.cloturer_suspensions_echues(session, now=hub.clock.now) == 0


class TestRefusals:
    def test_scopes_are_required(self, hub: Hub) -> None:  # noqa: F811
        api = Contrat(hub, scope=RDV_SCOPES)
        for response in (api.call("GET", LECTURE), api.call("POST", SIGNER, dateSignature=api.iso())):
            assert response.status_code == 403
            assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"

    def test_jeton_is_required(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        headers = hub.headers(api.token)
        response = hub.client.patch(SIGNER, json={"dateSignature": api.iso()}, headers=headers)
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_ABSENT"
        response = hub.client.get(LECTURE, headers={**headers, "ft-jeton-usager": "abc"})
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_INVALIDE"

    def test_jeton_of_another_client_is_403(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        jeton = Contrat(hub, "cd93").jeton(RATTACHE_EXPLICITE)
        response = hub.client.get(LECTURE, headers=hub.headers(api.token, **{"ft-jeton-usager": jeton}))
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "JETON_USAGER_NON_AUTORISE"

    def test_usager_no_longer_attached_is_403(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        api.jeton(RATTACHE_EXPLICITE)
        key = (usager_id(hub, RATTACHE_EXPLICITE), organisation_id(hub, "CD33"))
        with hub.services.database.transaction() as session:
            session.delete(session.get(UsagerOrganisation, key))
        for response in (
            api.call("GET", LECTURE, RATTACHE_EXPLICITE),
            api.call("POST", SIGNER, RATTACHE_EXPLICITE, dateSignature=api.iso()),
        ):
            assert response.status_code == 403
            assert response.json()["codeErreur"] == "USAGER_NON_RATTACHE"
        assert row(hub, RATTACHE_EXPLICITE) is None


class TestImport:
    """``relais import`` records contracts through ``enregistrer_contrat``, their state kept."""

    def _enregistrer(self, hub: Hub, payload: dict[str, Any]) -> None:  # noqa: F811
        uid = usager_id(hub, GIRONDE)
        with hub.services.database.transaction() as session:
            contrat_domain.enregistrer_contrat(session, uid, payload, now=hub.clock.now)

    def test_states_are_kept_and_a_rerun_replaces(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        suspended_on = (hub.clock.now - timedelta(days=30)).date()
        self._enregistrer(
            hub,
            {
                "etat": "SUSPENDU",
                "etatAvantSuspension": "SIGNE",
                "dateSignature": "2025-01-10T10:00:00",
                "dateSuspension": suspended_on.isoformat(),
                "organisme": "CD",
                "engagements": [{"libelle": "Rechercher un emploi"}],
                "intensiteHebdomadaire": 15,
                "agentSignature": AGENT,
            },
        )
        contrat = api.lire()
        assert contrat is not None
        assert contrat["etat"] == "SUSPENDU"
        assert contrat["dateSignature"] == "2025-01-10T10:00:00.000+01:00"
        assert contrat["agentSignature"] == AGENT
        event(hub, contrat_domain.reprendre_sur_reinscription)
        assert (api.lire() or {})["etat"] == "SIGNE"
        self._enregistrer(hub, {"etat": "A_SIGNER"})
        again = api.lire()
        assert again is not None and again["etat"] == "A_SIGNER" and again["engagements"] == []

    def test_a_suspension_older_than_twelve_months_is_recorded_closed(self, hub: Hub, api: Contrat) -> None:  # noqa: F811
        self._enregistrer(
            hub, {"etat": "SUSPENDU", "dateSignature": "2024-01-10T10:00:00Z", "dateSuspension": "2025-01-05"}
        )
        contrat = api.lire()
        assert contrat is not None
        assert contrat["etat"] == "CLOTURE"
        assert contrat["dateCloture"] == date(2026, 1, 5).isoformat()

    @pytest.mark.parametrize(
        "payload",
        [
            {"etat": "PERDU"},
            {"etat": "SIGNE"},
            {"etat": "SUSPENDU", "dateSignature": "2025-01-10T10:00:00Z"},
            {"etat": "SUSPENDU", "dateSuspension": "2025-01-05", "etatAvantSuspension": "CLOTURE"},
            {"etat": "A_SIGNER", "intensiteHebdomadaire": "beaucoup"},
            {"etat": "A_SIGNER", "agentSignature": {"nom": "X"}},
        ],
    )
    def test_inconsistent_payloads_are_refused(self, hub: Hub, payload: dict[str, Any]) -> None:  # noqa: F811
        with pytest.raises(Refused) as refused:
            self._enregistrer(hub, payload)
        assert refused.value.code == "CONTRAT_INVALIDE"
        assert row(hub) is None


def test_conformance_with_a_valid_jeton(hub: Hub, api: Contrat) -> None:  # noqa: F811
    uid = usager_id(hub, GIRONDE)
    dates = {"dateSignature": "2025-01-10T10:00:00Z", "dateRefus": "2025-01-11T10:00:00Z"}

    def in_a_state_that_allows_it(case: Any) -> None:
        # No contract before a POST, one to sign (or refused) before a PATCH: the calls succeed
        # unless their body is refused.
        etat = {"/refuser": "A_SIGNER", "/signer": "REFUSE"}.get(case.path) if case.method == "PATCH" else None
        with hub.services.database.transaction() as session:
            session.exec(delete(ContratEngagement))
            if etat is not None:
                contrat_domain.enregistrer_contrat(session, uid, {**dates, "etat": etat}, now=hub.clock.now)

    conforms(hub, f"{BASE}/openapi.json", api, GIRONDE, in_a_state_that_allows_it, max_examples=25)
    # Whatever was generated, the contract read answers in the contract's shape.
    assert api.call("GET", LECTURE).status_code in (200, 204)
