"""One call to France Travail: token, agent headers, 429 retries, UTF-8 decoding, audit facts.

Every answer is decoded as UTF-8 whatever charset it declares (RDVI was broken by an
unannounced encoding change, contract §0.4). A 429 is retried after its ``Retry-After``, a
bounded number of times and never for longer than configured; then it is passed on. A 401
means the cached access token was revoked: it is renewed once. A timeout or an unreachable
platform is ``UpstreamUnavailable`` (the contract's 503). Each call writes in the audit draft
it is given that the data came from France Travail, with France Travail's request id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from adapters.france_travail.credentials import TokenProviders
from adapters.france_travail.errors import UpstreamUnavailable
from adapters.france_travail.tokens import Scopes
from parcours.ports import Caller
from relais.core import agent_headers
from relais.core.auditing import AuditDraft
from relais.core.jeton import JETON_HEADER

DATA_ORIGIN = "france-travail"
# Where France Travail's gateway may put its own id of the request (first one present wins).
UPSTREAM_REQUEST_ID_HEADERS = ("x-request-id", "x-correlation-id", "x-b3-traceid", "x-amzn-trace-id")
_DEFAULT_RETRY_AFTER = 1.0
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# Upstream headers worth passing on: what a client needs to wait before calling again.
FORWARDED_HEADERS = (
    "retry-after",
    "x-ratelimit-burst-capacity-clientidlimiter",
    "x-ratelimit-remaining-clientidlimiter",
)


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    # Decoded JSON; a str when the body is not JSON; None when empty.
    body: Any
    headers: dict[str, str]


class FranceTravailClient:
    def __init__(
        self,
        http: httpx.Client,
        tokens: TokenProviders,
        *,
        api_url: str,
        max_retries: int,
        max_retry_wait: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._api_url = api_url.rstrip("/")
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep

    def call(
        self,
        method: str,
        path: str,
        *,
        scopes: Scopes,
        caller: Caller,
        audit: AuditDraft | None,
        jeton: str | None = None,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """``path`` from the host on, e.g. ``/partenaire/contrat-usager/v2/contrat``.

        ``audit`` is the draft of the audited call being served (None outside one): it says
        the data came from France Travail even when France Travail does not answer.
        """
        if audit is not None:
            audit.data_origin = DATA_ORIGIN
        # The caller's organisation's own France Travail application (credentials.py).
        tokens = self._tokens.for_organisation(caller.organisation)
        renewed = False
        retries = 0
        while True:
            access_token = tokens.token(scopes)
            response = self._send(method, path, access_token, caller, jeton, body, params)
            if audit is not None:
                audit.upstream_request_id = upstream_request_id(response) or audit.upstream_request_id
            if response.status_code == 401 and not renewed:
                tokens.invalidate(scopes, access_token)
                renewed = True
                continue
            if response.status_code == 429 and retries < self._max_retries:
                wait = retry_after_seconds(response.headers.get("retry-after"))
                if wait <= self._max_retry_wait:
                    retries += 1
                    self._sleep(wait)
                    continue
            return _decoded(response)

    def _send(
        self,
        method: str,
        path: str,
        access_token: str,
        caller: Caller,
        jeton: str | None,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        # Built from scratch: only what the contract names, never a header of the caller's.
        headers = {
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json",
            agent_headers.NOM: caller.agent_nom,
            agent_headers.PRENOM: caller.agent_prenom,
            agent_headers.IDENTIFIANT: caller.agent_identifiant,
        }
        if jeton is not None:
            headers[JETON_HEADER] = jeton
        content = None
        if body is not None:
            # Without its Content-Type a JSON body is refused (or misread) by the platform.
            headers["Content-Type"] = JSON_CONTENT_TYPE
            content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            response = self._http.request(
                method, self._api_url + path, headers=headers, params=dict(params or {}), content=content
            )
        except httpx.TimeoutException:
            raise UpstreamUnavailable("timeout") from None
        except httpx.HTTPError:
            raise UpstreamUnavailable("unreachable") from None
        return response


def retry_after_seconds(value: str | None) -> float:
    """``Retry-After`` in seconds (delta or HTTP date); 1 s when absent or unreadable."""
    if not value:
        return _DEFAULT_RETRY_AFTER
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_AFTER
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _decoded(response: httpx.Response) -> UpstreamResponse:
    headers = {name: response.headers[name] for name in FORWARDED_HEADERS if name in response.headers}
    raw = response.content
    if not raw.strip():
        return UpstreamResponse(response.status_code, None, headers)
    # UTF-8 whatever the declared charset; a stray byte does not lose the whole answer.
    text = raw.decode("utf-8-sig", errors="replace")
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return UpstreamResponse(response.status_code, body, headers)


def upstream_request_id(response: httpx.Response) -> str | None:
    """France Travail's own id of the request, from the first header that carries one."""
    for name in UPSTREAM_REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return value[:128]
    return None
