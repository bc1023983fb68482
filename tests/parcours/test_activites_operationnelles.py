"""Gestion des activités opérationnelles v1 and v2: a structure's own open activities, paged."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlmodel import select

import api.partner.activites_operationnelles
from parcours import activites as activites_domain
from parcours.tables import Usager
from relais.core.tables import Organisation
from tests.parcours.test_orientation_usager import (  # noqa: F401  (the module's shared hub fixtures)
    ACCEPTEE,
    DECISION,
    call,
    hub_fixture,
    preconiser,
    shared_hub_fixture,
    token,
)
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT, SEINE_SAINT_DENIS, Person
from tests.support.scopes import ACTIVITES_V1_SCOPES, ACTIVITES_V2_SCOPES, ORIENTATION_SCOPES

V1 = "/partenaire/activites-operationnelles/v1/activites/chercher"
V2 = "/partenaire/activites-operationnelles/v2/activites/chercher"
SCOPES = {V1: ACTIVITES_V1_SCOPES, V2: ACTIVITES_V2_SCOPES}


def get(hub: Hub, url: str, client: str = "cd33", scope: str | None = None, **params: str) -> httpx.Response:
    return hub.client.get(url, headers=hub.headers(token(hub, client, scope or SCOPES[url])), params=params)


def ouvrir(hub: Hub, person: Person, code: str, *, days: int = 0, organisation: str = "CD33", **attributs: str) -> str:
    """Open an activity as the domain does, ``days`` after the hub's clock (its due date moves)."""
    with hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one()
        org = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        assert org.id is not None
        activite = activites_domain.ouvrir(
            session,
            code=code,
            organisation_id=org.id,
            usager_id=usager.id,
            sujet=f"test:{code}:{days}:{len(attributs)}:{person.numero}",
            now=hub.clock.now + timedelta(days=days),
            attributs=list(attributs.items()),
        )
        return activite.id


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["identifiantActivite"] for item in items]


class TestShapes:
    def test_v1_is_a_bare_array_and_v2_an_object(self, hub: Hub) -> None:
        ouvrir(hub, GIRONDE, "ACT380", motif="ACC")
        v1 = get(hub, V1)
        v2 = get(hub, V2)
        assert v1.status_code == v2.status_code == 200
        assert isinstance(v1.json(), list)
        assert set(v2.json()) == {"activites"}  # one page: no cursor
        assert v1.json() == v2.json()["activites"]
        activite = v1.json()[0]
        assert activite["codeActivite"] == "ACT380"
        assert activite["usager"] == {"identifiant": GIRONDE.numero, "typeIdentifiant": "numeroFranceTravail"}
        assert activite["attributsSpecifiques"] == [{"nom": "motif", "valeur": "ACC"}]
        today = hub.clock.today()
        # Instants as FT's demo client (Activite: java.time.Instant) parses them.
        assert activite["dateEcheance"] == f"{(today + timedelta(days=15)).isoformat()}T00:00:00Z"
        assert activite["dateEcheanceProche"] == f"{(today + timedelta(days=12)).isoformat()}T00:00:00Z"
        # An instant, in UTC: its date is UTC's.
        assert re.fullmatch(rf"{hub.clock.now.date().isoformat()}T\d{{2}}:\d{{2}}:\d{{2}}Z", activite["dateCreation"])

    def test_sanction_attribute_is_renamed_in_v1(self, hub: Hub) -> None:
        ouvrir(hub, GIRONDE, "ACT366", identifiantConsequenceSanction="c0ffee")
        [v1] = get(hub, V1).json()
        [v2] = get(hub, V2).json()["activites"]
        assert v1["attributsSpecifiques"] == [{"nom": "idConsequenceSanction", "valeur": "c0ffee"}]
        assert v2["attributsSpecifiques"] == [{"nom": "identifiantConsequenceSanction", "valeur": "c0ffee"}]

    @pytest.mark.parametrize("url", [V1, V2])
    def test_204_when_none(self, hub: Hub, url: str) -> None:
        response = get(hub, url)
        assert response.status_code == 204
        assert response.content == b""


class TestSelection:
    def test_sorted_by_due_date_then_id(self, hub: Hub) -> None:
        late = ouvrir(hub, GIRONDE, "ACT382", days=5)
        soon = ouvrir(hub, GIRONDE, "ACT380", days=-10)
        same_day = sorted([ouvrir(hub, GIRONDE, "ACT366", days=1), ouvrir(hub, GIRONDE_SANS_CONTRAT, "ACT367", days=1)])
        # ACT382 is due in 30 days, the sanctions in 15, ACT380 in 15.
        assert ids(get(hub, V2).json()["activites"]) == [soon, *same_day, late]

    @pytest.mark.parametrize(
        ("params", "codes"),
        [
            ({"codeActivite": "ACT382"}, ["ACT382"]),
            ({"codeFamille": "GLI100"}, ["ACT366", "ACT370"]),
            ({"codeDomaine": "ACC"}, ["ACT380"]),
            ({"codeFamille": "GLI100", "codeActivite": "ACT370"}, ["ACT370"]),
        ],
    )
    def test_filters(self, hub: Hub, params: dict[str, str], codes: list[str]) -> None:
        for days, code in enumerate(("ACT382", "ACT380", "ACT366", "ACT370")):
            ouvrir(hub, GIRONDE, code, days=days * 40)
        for url in (V1, V2):
            body = get(hub, url, **params).json()
            items = body if url == V1 else body["activites"]
            assert [item["codeActivite"] for item in items] == codes

    def test_each_structure_sees_only_its_own(self, hub: Hub) -> None:
        mine = ouvrir(hub, GIRONDE, "ACT382")
        theirs = ouvrir(hub, SEINE_SAINT_DENIS, "ACT382", organisation="CD93")
        for url in (V1, V2):
            cd33 = get(hub, url).json()
            cd93 = get(hub, url, "cd93").json()
            assert ids(cd33 if url == V1 else cd33["activites"]) == [mine]
            assert ids(cd93 if url == V1 else cd93["activites"]) == [theirs]
        # FT-NAQ serves Gironde too, but the département's list is not its list.
        assert get(hub, V2, "ft-naq").status_code == 204

    def test_closed_activities_disappear(self, hub: Hub) -> None:
        ouvrir(hub, GIRONDE, "ACT380")
        with hub.services.database.transaction() as session:
            activites_domain.fermer(session, sujet=f"test:ACT380:0:0:{GIRONDE.numero}", par="test", now=hub.clock.now)
        assert get(hub, V1).status_code == 204

    def test_decision_replaces_act382_by_act380(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        assert [item["codeActivite"] for item in get(hub, V1).json()] == ["ACT382"]
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201
        assert [item["codeActivite"] for item in get(hub, V1).json()] == ["ACT380"]


class TestPaging:
    def test_cursor_walks_the_whole_list_once(self, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
        expected = [ouvrir(hub, GIRONDE, "ACT380", days=-day) for day in range(5)][::-1]
        monkeypatch.setattr(api.partner.activites_operationnelles, "PAGE_SIZE", 2)
        pages: list[list[str]] = []
        params: dict[str, str] = {}
        while True:
            response = get(hub, V2, **params)
            assert response.status_code == 200
            body = response.json()
            pages.append(ids(body["activites"]))
            if "cursor" not in body:
                break
            params = {"cursor": body["cursor"]}
        assert pages == [expected[:2], expected[2:4], expected[4:]]

    def test_v1_returns_the_first_page_only(self, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
        expected = sorted([ouvrir(hub, GIRONDE, "ACT380", days=-day) for day in range(3)])
        monkeypatch.setattr(api.partner.activites_operationnelles, "PAGE_SIZE", 2)
        assert len(get(hub, V1).json()) == 2
        assert set(ids(get(hub, V1).json())) < set(expected)

    def test_cursor_keeps_its_place_when_activities_close(self, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
        first, second, third = [ouvrir(hub, GIRONDE, "ACT380", days=day) for day in range(3)]
        monkeypatch.setattr(api.partner.activites_operationnelles, "PAGE_SIZE", 1)
        body = get(hub, V2).json()
        assert ids(body["activites"]) == [first]
        with hub.services.database.transaction() as session:
            activites_domain.fermer(session, sujet=f"test:ACT380:1:0:{GIRONDE.numero}", par="test", now=hub.clock.now)
        body = get(hub, V2, cursor=body["cursor"]).json()
        assert ids(body["activites"]) == [third]
        assert "cursor" not in body
        assert second not in ids(body["activites"])

    def test_cursor_with_filters(self, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
        wanted = [ouvrir(hub, GIRONDE, "ACT382", days=day) for day in range(3)]
        ouvrir(hub, GIRONDE, "ACT380", days=1)
        monkeypatch.setattr(api.partner.activites_operationnelles, "PAGE_SIZE", 2)
        body = get(hub, V2, codeActivite="ACT382").json()
        rest = get(hub, V2, codeActivite="ACT382", cursor=body["cursor"]).json()
        assert ids(body["activites"]) + ids(rest["activites"]) == wanted

    @pytest.mark.parametrize(
        "cursor",
        [
            "abc",
            base64.urlsafe_b64encode(b"not json").decode().rstrip("="),
            base64.urlsafe_b64encode(b'["2026-13-01","abc"]').decode().rstrip("="),
            base64.urlsafe_b64encode(b'{"a":1}').decode().rstrip("="),
            base64.urlsafe_b64encode(b'["2026-01-01","a b"]').decode().rstrip("="),
        ],
    )
    def test_bad_cursor_is_400_in_the_activites_format(self, hub: Hub, cursor: str) -> None:
        response = get(hub, V2, cursor=cursor)
        assert response.status_code == 400
        [erreur] = response.json()
        assert erreur["code"] == "CURSEUR_INVALIDE"
        assert erreur["message"].startswith("Curseur invalide")

    def test_malformed_cursor_is_400(self, hub: Hub) -> None:
        response = get(hub, V2, cursor="a=b")
        assert response.status_code == 400
        assert response.json()[0]["code"] == "REQUETE_INVALIDE"


@pytest.mark.parametrize("url", [V1, V2])
class TestRefusals:
    @pytest.mark.parametrize(
        "params",
        [{"codeDomaine": "ORIX"}, {"codeDomaine": "ori"}, {"codeActivite": "act382"}, {"codeFamille": "GLI-100"}],
    )
    def test_bad_filters_are_400_arrays(self, hub: Hub, url: str, params: dict[str, str]) -> None:
        response = get(hub, url, **params)
        assert response.status_code == 400
        [erreur] = response.json()
        assert set(erreur) == {"code", "message", "details"}
        assert erreur["code"] == "REQUETE_INVALIDE"
        for value in params.values():
            assert value not in str(erreur)

    def test_unknown_parameter_is_400(self, hub: Hub, url: str) -> None:
        response = get(hub, url, codeStructure="X")
        assert response.status_code == 400
        assert response.json()[0]["code"] == "REQUETE_INVALIDE"

    def test_v1_has_no_cursor(self, hub: Hub, url: str) -> None:
        response = get(hub, url, cursor="abc")
        assert response.status_code == 400
        assert response.json()[0]["code"] == ("REQUETE_INVALIDE" if url == V1 else "CURSEUR_INVALIDE")

    def test_agent_header_required(self, hub: Hub, url: str) -> None:
        headers = hub.headers(token(hub, "cd33", SCOPES[url]))
        del headers["pa-prenom-agent"]
        response = hub.client.get(url, headers=headers)
        assert response.status_code == 400
        assert "pa-prenom-agent" in response.json()[0]["details"]

    def test_other_version_scopes_are_403(self, hub: Hub, url: str) -> None:
        other = ACTIVITES_V2_SCOPES if url == V1 else ACTIVITES_V1_SCOPES
        response = get(hub, url, scope=other)
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
        assert get(hub, url, scope=ORIENTATION_SCOPES).status_code == 403

    def test_no_access_token_is_401(self, hub: Hub, url: str) -> None:
        response = hub.client.get(
            url, headers={"pa-nom-agent": "A", "pa-prenom-agent": "B", "pa-identifiant-agent": "C"}
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"

    def test_no_jeton_usager_needed(self, hub: Hub, url: str) -> None:
        ouvrir(hub, GIRONDE, "ACT382")
        assert get(hub, url).status_code == 200


@pytest.mark.parametrize("url", [V1, V2])
def test_conformance_with_full_rights(hub: Hub, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """schemathesis with the version's own scopes, over a list long enough to page."""
    for day in range(3):
        ouvrir(hub, GIRONDE, "ACT382", days=day)
        ouvrir(hub, GIRONDE, "ACT366", days=day, identifiantConsequenceSanction=f"c{day}")
    monkeypatch.setattr(api.partner.activites_operationnelles, "PAGE_SIZE", 2)
    headers = {"Authorization": f"Bearer {token(hub, 'cd33', SCOPES[url])}"}
    schema = schemathesis.openapi.from_asgi(url.replace("/activites/chercher", "/openapi.json"), hub.client.app)
    [result] = list(schema.get_all_operations())
    operation = result.ok()  # type: ignore[union-attr]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()
