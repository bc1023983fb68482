"""A fake ProConnect: an OpenID Connect provider that signs its own tokens, for tests and trials.

It serves what Relais uses of ProConnect (discovery, JWKS, authorize, token, userinfo as a
signed JWT, end session), with ProConnect's rules where they catch client mistakes: ``state``
and ``nonce`` of at least 32 characters, no unknown authorize parameter, exact redirect URI,
single-use codes valid 60 seconds, and PKCE checked. Its signing key is generated at start.

The authorize endpoint approves at once ``user`` with ``acr``; the knobs below let a test
make the provider misbehave (forged signature, unsigned token or userinfo, other claims).

Tests plug ``handle`` into pytest-httpx (``install``) and play the browser with
``authorize``. Developers can run it for local trials (see ``main``):

    .venv/bin/python -m tests.fakes.proconnect --port 9000
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

ISSUER = "https://fake-proconnect.test/api/v2"
# What ProConnect's authorize accepts; anything else is its error Y000400.
AUTHORIZE_PARAMETERS = {
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "claims",
    "prompt",
    "idp_hint",
    "login_hint",
    "siret_hint",
    "acr_values",
    "code_challenge",
    "code_challenge_method",
}
CODE_TTL_SECONDS = 60


@dataclass
class FakeUser:
    sub: str = "b3a5f7e0c1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff0011"
    email: str = "claire.martin@gironde.fr"
    given_name: str = "Claire"
    usual_name: str = "Martin"
    siret: str = "22330001300016"
    uid: str = "4242"

    def claims(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "email": self.email,
            "given_name": self.given_name,
            "usual_name": self.usual_name,
            "siret": self.siret,
            "uid": self.uid,
            "idp_id": "fake-idp",
            "organizational_unit": "Direction de l'insertion",
        }


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str | None
    user: FakeUser
    acr: str
    issued_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` (RFC 7519 §6), which a relying party must never accept."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


@dataclass
class FakeProConnect:
    client_id: str = "relais-test"
    client_secret: str = "fake-proconnect-client-secret-0123456789"
    redirect_uris: tuple[str, ...] = ("https://relais.test/relais/connexion/v1/retour",)
    issuer: str = ISSUER
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    user: FakeUser = field(default_factory=FakeUser)
    acr: str = "eidas2"
    # Knobs for adversarial tests.
    # "provider" (its published key), "intruder" (a key of the same kid, not published), "none".
    id_token_signer: str = "provider"
    userinfo_signer: str = "provider"
    # "jwt" as ProConnect answers when a signing algorithm is registered, or "json".
    userinfo_format: str = "jwt"
    # Claims replaced (or removed with None) in the next ID tokens / userinfo answers.
    id_token_changes: dict[str, Any] = field(default_factory=dict)
    userinfo_changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kid = secrets.token_hex(8)
        self.key = ECKey.generate_key("P-256", parameters={"kid": self.kid, "use": "sig", "alg": "ES256"}, private=True)
        self.intruder_key = ECKey.generate_key(
            "P-256", parameters={"kid": self.kid, "use": "sig", "alg": "ES256"}, private=True
        )
        self._codes: dict[str, _Grant] = {}
        self._access_tokens: dict[str, _Grant] = {}
        self.token_requests = 0
        self.ended_sessions: list[dict[str, str]] = []

    # Endpoints ---------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/session/end",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "scopes_supported": ["openid", "email", "given_name", "usual_name", "siret", "uid"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "userinfo_signing_alg_values_supported": ["ES256", "RS256"],
            "acr_values_supported": ["eidas1", "eidas1-mfa", "eidas2", "eidas3"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one back-channel request (what Relais' server sends)."""
        path = request.url.path
        base = urlsplit(self.issuer).path
        route = path[len(base) :] if path.startswith(base) else path
        if request.method == "GET" and route == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery())
        if request.method == "GET" and route == "/jwks":
            return httpx.Response(200, json={"keys": [self.key.as_dict(private=False)]})
        if request.method == "POST" and route == "/token":
            return self._token(dict(parse_qsl(request.content.decode())))
        if request.method == "GET" and route == "/userinfo":
            return self._userinfo(request.headers.get("authorization", ""))
        if request.method == "GET" and route == "/authorize":
            return self._authorize(dict(request.url.params), list(request.url.params.keys()))
        if request.method == "GET" and route == "/session/end":
            return self._end_session(dict(request.url.params))
        return httpx.Response(404, json={"error": "not_found"})

    def authorize(self, url: str) -> str:
        """Play the browser at the authorization URL: the callback URL it is sent back to."""
        response = self.handle(httpx.Request("GET", url))
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def _authorize(self, params: dict[str, str], names: list[str]) -> httpx.Response:
        unknown = set(names) - AUTHORIZE_PARAMETERS
        if unknown or len(names) != len(set(names)):
            return httpx.Response(400, json={"error": "Y000400", "parameters": sorted(unknown)})
        if params.get("client_id") != self.client_id or params.get("response_type") != "code":
            return httpx.Response(400, json={"error": "invalid_client"})
        if params.get("redirect_uri") not in self.redirect_uris:
            return httpx.Response(400, json={"error": "redirect_uri_mismatch"})
        if len(params.get("state", "")) < 32 or len(params.get("nonce", "")) < 32:
            return httpx.Response(400, json={"error": "invalid_request", "detail": "state/nonce < 32"})
        if "openid" not in params.get("scope", "").split():
            return httpx.Response(400, json={"error": "invalid_scope"})
        challenge = params.get("code_challenge")
        if challenge is not None and params.get("code_challenge_method") != "S256":
            return httpx.Response(400, json={"error": "invalid_request", "detail": "S256 only"})
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Grant(
            client_id=self.client_id,
            redirect_uri=params["redirect_uri"],
            nonce=params["nonce"],
            code_challenge=challenge,
            user=self.user,
            acr=self.acr,
            issued_at=self._now(),
        )
        query = urlencode({"code": code, "state": params["state"], "iss": self.issuer})
        return httpx.Response(302, headers={"Location": f"{params['redirect_uri']}?{query}"})

    def _token(self, form: dict[str, str]) -> httpx.Response:
        self.token_requests += 1
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return httpx.Response(401, json={"error": "invalid_client"})
        if form.get("grant_type") != "authorization_code":
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or self._now() > grant.issued_at + CODE_TTL_SECONDS:
            return httpx.Response(400, json={"error": "invalid_grant"})
        if form.get("redirect_uri") != grant.redirect_uri:
            return httpx.Response(400, json={"error": "invalid_grant", "detail": "redirect_uri"})
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            computed = _b64(hashlib.sha256(verifier.encode()).digest())
            if not verifier or computed != grant.code_challenge:
                return httpx.Response(400, json={"error": "invalid_grant", "detail": "pkce"})
        access_token = secrets.token_urlsafe(32)
        self._access_tokens[access_token] = grant
        now = self._now()
        id_claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.user.sub,
            "aud": grant.client_id,
            "exp": now + 60,
            "iat": now,
            "auth_time": now,
            "nonce": grant.nonce,
            "acr": grant.acr,
            "amr": ["pwd", "totp"],
            "idp_id": "fake-idp",
            "sid": secrets.token_hex(8),
        }
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 60,
            "id_token": self._sign(_changed(id_claims, self.id_token_changes), self.id_token_signer),
            "scope": "openid email given_name usual_name siret uid",
        }
        return httpx.Response(200, json=body)

    def _userinfo(self, authorization: str) -> httpx.Response:
        token = authorization.removeprefix("Bearer ").strip()
        grant = self._access_tokens.get(token)
        if grant is None:
            return httpx.Response(401, json={"error": "invalid_token"})
        now = self._now()
        claims = _changed(
            {**grant.user.claims(), "iss": self.issuer, "aud": grant.client_id, "iat": now, "exp": now + 60},
            self.userinfo_changes,
        )
        if self.userinfo_format == "json":
            return httpx.Response(200, json=claims)
        return httpx.Response(
            200,
            content=self._sign(claims, self.userinfo_signer).encode(),
            headers={"Content-Type": "application/jwt; charset=utf-8"},
        )

    def _end_session(self, params: dict[str, str]) -> httpx.Response:
        self.ended_sessions.append(params)
        target = params.get("post_logout_redirect_uri")
        if target:
            return httpx.Response(
                302, headers={"Location": f"{target}?{urlencode({'state': params.get('state', '')})}"}
            )
        return httpx.Response(200, text="Vous êtes déconnecté de ProConnect (faux fournisseur).")

    # Helpers -----------------------------------------------------------------------------

    def _sign(self, claims: dict[str, Any], signer: str) -> str:
        if signer == "none":
            return unsigned_jwt(claims)
        key = self.intruder_key if signer == "intruder" else self.key
        return jwt.encode({"alg": "ES256", "kid": self.kid}, claims, key)

    def _now(self) -> int:
        return int(self.clock().timestamp())

    def install(self, httpx_mock: Any) -> None:
        """Route every httpx call to the issuer's host to this fake (pytest-httpx)."""
        host = re.escape(f"{urlsplit(self.issuer).scheme}://{urlsplit(self.issuer).netloc}/")
        httpx_mock.add_callback(self.handle, url=re.compile(f"^{host}"), is_reusable=True, is_optional=True)


def _changed(claims: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = dict(claims)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def main() -> None:  # pragma: no cover - a developer's tool
    """Serve the fake over HTTP for local trials of the login with ``relais serve``."""
    import argparse

    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--client-id", default="relais-local")
    parser.add_argument("--client-secret", default="relais-local-secret-0123456789abcdef")
    parser.add_argument("--redirect-uri", default="http://127.0.0.1:8000/relais/connexion/v1/retour")
    parser.add_argument("--acr", default="eidas2")
    parser.add_argument("--email", default=FakeUser.email)
    parser.add_argument("--siret", default=FakeUser.siret)
    arguments = parser.parse_args()
    fake = FakeProConnect(
        client_id=arguments.client_id,
        client_secret=arguments.client_secret,
        redirect_uris=(arguments.redirect_uri,),
        issuer=f"http://127.0.0.1:{arguments.port}/api/v2",
        acr=arguments.acr,
        user=FakeUser(email=arguments.email, siret=arguments.siret),
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        answer = fake.handle(httpx.Request(request.method, str(request.url), headers=request.headers.raw, content=body))
        response = Response(answer.content, status_code=answer.status_code, headers=dict(answer.headers))
        await response(scope, receive, send)

    print(f"Fake ProConnect on {fake.issuer} (client {fake.client_id}, user {fake.user.email}, acr {fake.acr})")
    uvicorn.run(app, host="127.0.0.1", port=arguments.port)


if __name__ == "__main__":  # pragma: no cover
    main()
