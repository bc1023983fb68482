"""The token endpoint and every way an access token can be refused."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest

from relais.core.keys import rotate_signing_key
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import RECHERCHE, RECHERCHE_SCOPES, SECRET, TOKEN_URL


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": "cd33",
        "client_secret": SECRET,
        "scope": RECHERCHE_SCOPES,
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value != "<absent>"}


def _search(hub: Hub, token: str) -> int:
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=hub.headers(token),
    )
    return response.status_code


class TestTokenEndpoint:
    def test_issues_a_france_travail_shaped_token(self, hub: Hub) -> None:
        response = hub.client.post(TOKEN_URL, data=_form())
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 1499
        assert body["scope"] == RECHERCHE_SCOPES
        assert response.headers["cache-control"] == "no-store"
        header = jwt.get_unverified_header(body["access_token"])
        assert header["alg"] == "ES256" and header["kid"]
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "cd33" and claims["org"] == "CD33"
        assert {"iss", "aud", "exp", "iat", "jti"} <= set(claims)

    def test_url_encoded_realm_is_accepted(self, hub: Hub) -> None:
        response = hub.client.post("/connexion/oauth2/access_token?realm=%2Fagent", data=_form())
        assert response.status_code == 200

    @pytest.mark.parametrize(
        ("url", "form", "error"),
        [
            ("/connexion/oauth2/access_token", _form(), "invalid_request"),
            ("/connexion/oauth2/access_token?realm=/partenaire", _form(), "invalid_request"),
            (TOKEN_URL, _form(grant_type="authorization_code"), "unsupported_grant_type"),
            (TOKEN_URL, _form(grant_type="<absent>"), "invalid_request"),
            (TOKEN_URL, _form(client_secret="wrong-secret-wrong-secret"), "invalid_client"),
            (TOKEN_URL, _form(client_id="inconnu"), "invalid_client"),
            (TOKEN_URL, _form(client_id="cd33-off"), "invalid_client"),
            (TOKEN_URL, _form(client_secret="<absent>"), "invalid_request"),
            (TOKEN_URL, _form(scope="<absent>"), "invalid_scope"),
        ],
    )
    def test_refusals_are_oauth_errors(self, hub: Hub, url: str, form: dict[str, str], error: str) -> None:
        response = hub.client.post(url, data=form)
        assert response.status_code == 400
        assert response.json()["error"] == error
        assert response.json()["error_description"]

    def test_one_unheld_scope_fails_the_whole_request(self, hub: Hub) -> None:
        response = hub.client.post(
            TOKEN_URL,
            data=_form(client_id="cd33-recherche", scope=f"{RECHERCHE_SCOPES} api_contrat-usagerv2"),
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_scope",
            "error_description": "Unknown/invalid scope(s): [api_contrat-usagerv2]",
        }

    def test_legacy_application_scope_prefix_is_accepted(self, hub: Hub) -> None:
        response = hub.client.post(TOKEN_URL, data=_form(scope=f"application_cd33 {RECHERCHE_SCOPES}"))
        assert response.status_code == 200
        assert _search(hub, response.json()["access_token"]) == 200
        other = hub.client.post(TOKEN_URL, data=_form(scope=f"application_cd93 {RECHERCHE_SCOPES}"))
        assert other.json()["error"] == "invalid_scope"

    def test_http_basic_client_authentication(self, hub: Hub) -> None:
        basic = base64.b64encode(f"cd33:{SECRET}".encode()).decode()
        response = hub.client.post(
            TOKEN_URL,
            data={"grant_type": "client_credentials", "scope": RECHERCHE_SCOPES},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert response.status_code == 200

    def test_secret_is_never_echoed(self, hub: Hub) -> None:
        response = hub.client.post(TOKEN_URL, data=_form(client_secret="wrong-secret-wrong-secret"))
        assert "wrong-secret" not in response.text


class TestTokenVerification:
    def test_valid_token_is_accepted(self, hub: Hub) -> None:
        assert _search(hub, hub.token()) == 200

    def test_missing_token_is_401_with_www_authenticate(self, hub: Hub) -> None:
        response = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": GIRONDE.numero},
            headers={key: value for key, value in hub.headers("x").items() if key != "Authorization"},
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_expired_token_is_401(self, hub: Hub) -> None:
        token = hub.token()
        hub.clock.now += timedelta(seconds=1499 + 31)
        assert _search(hub, token) == 401

    def test_token_still_valid_just_before_expiry(self, hub: Hub) -> None:
        token = hub.token()
        hub.clock.now += timedelta(seconds=1400)
        assert _search(hub, token) == 200

    def test_alg_none_token_is_401(self, hub: Hub) -> None:
        claims = jwt.decode(hub.token(), options={"verify_signature": False})
        header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        assert _search(hub, f"{header.decode()}.{payload.decode()}.") == 401

    def test_tampered_token_is_401(self, hub: Hub) -> None:
        header, payload, signature = hub.token().split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["org"] = "CD93"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        assert _search(hub, f"{header}.{forged}.{signature}") == 401

    def test_wrong_audience_is_401(self, hub: Hub) -> None:
        key = hub.services.keys.current_signing_key
        claims = jwt.decode(hub.token(), options={"verify_signature": False})
        claims["aud"] = "another-api"
        forged = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"})
        assert _search(hub, forged) == 401

    def test_unknown_kid_is_401(self, hub: Hub) -> None:
        key = hub.services.keys.current_signing_key
        claims = jwt.decode(hub.token(), options={"verify_signature": False})
        forged = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": "nope", "typ": "at+jwt"})
        assert _search(hub, forged) == 401

    def test_disabled_client_token_stops_working_at_once(self, hub: Hub) -> None:
        from sqlmodel import select

        from relais.core.tables import Client

        token = hub.token()
        with hub.services.database.transaction() as session:
            client = session.exec(select(Client).where(Client.client_id == "cd33")).one()
            client.enabled = False
            session.add(client)
        assert _search(hub, token) == 401


class TestKeyRotation:
    def test_old_key_verifies_until_its_tokens_expire(self, hub: Hub) -> None:
        from relais.core.keys import load_keyset

        settings = hub.services.settings
        old_token = hub.token()
        rotate_signing_key(settings.resolved_keys_file, hub.clock.now)
        hub.services.keys = load_keyset(settings.resolved_keys_file)
        new_token = hub.token()
        assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
        jwks = hub.client.get("/.well-known/jwks.json").json()
        assert {key["kid"] for key in jwks["keys"]} >= {
            jwt.get_unverified_header(old_token)["kid"],
            jwt.get_unverified_header(new_token)["kid"],
        }
        assert _search(hub, old_token) == 200
        assert _search(hub, new_token) == 200
        hub.clock.now += timedelta(seconds=1499 + 120)
        assert _search(hub, old_token) == 401
        assert _search(hub, hub.token()) == 200


class TestScopes:
    def test_operation_without_its_scopes_is_403(self, hub: Hub) -> None:
        token = hub.token(scope="api_contrat-usagerv2 statutcontratusager profil_accedant")
        response = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": GIRONDE.numero},
            headers=hub.headers(token),
        )
        assert response.status_code == 403
        assert response.json()["codeRetour"] == "R001"
