"""A JSON partner operation called as a département's software would, but with its body not
declared as JSON (issue 15): refused in the API's format, audited, never a 5xx, never handed
to a store, never forwarded to France Travail.

``tests/api/test_hardening_input.py`` sends ``{}`` without credentials to every JSON operation of
every API; here each partner operation gets the complete call it serves (a client holding every
scope, the agent's headers, the usager's jeton, a body valid for its schema), in reference mode
and in gateway mode, so that only the ``Content-Type`` is wrong. That is how the 500 of the
issue was met: an authorised call whose body nothing had parsed.
"""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import col, select

from audit.models import AuditEvent
from specs import load_document, served_documents
from tests.adapters.gateway_fixtures import PARTNER_BASE, Gateway, gateway
from tests.adapters.test_gateway import PAR_NUMERO, s001
from tests.adapters.test_gateway_request_shape import OPERATIONS
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import ALL_SCOPES, RECHERCHE

# Declared as something else than JSON: each is a 415.
NOT_JSON = [
    None,
    "text/plain",
    "text/plain; charset=utf-8",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "application/octet-stream",
    "application/jsonx",
    "json",
]


def _json_partner_operations() -> list[str]:
    """operationId of every partner operation whose contract has a JSON body."""
    found = []
    for name, _, base in served_documents():
        if not base.startswith(PARTNER_BASE):
            continue
        for item in load_document(name)["paths"].values():
            for operation in item.values():
                content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
                if any("json" in media for media in content):
                    found.append(operation["operationId"])
    return sorted(found)


JSON_PARTNER_OPERATIONS = _json_partner_operations()


def test_every_json_partner_operation_has_a_valid_body_to_send() -> None:
    # 15 today; the bodies come from the gateway's request-shape table, which must know them all.
    assert len(JSON_PARTNER_OPERATIONS) >= 15
    assert all(OPERATIONS[name].body is not None for name in JSON_PARTNER_OPERATIONS)


def _headers(hub: Hub, per_usager: bool) -> dict[str, str]:
    token = hub.token(scope=" ".join(ALL_SCOPES))
    headers = hub.headers(token)
    if per_usager:
        found = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": GIRONDE.numero}, headers=headers
        )
        assert found.json()["codeRetour"] == "S001", found.text
        headers["ft-jeton-usager"] = found.json()["jetonUsager"]
    return headers


def _events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def _assert_refused(path: str, response: Any, statuses: tuple[int, ...]) -> None:
    """One of ``statuses``, in the error format of the API that was called."""
    assert response.status_code in statuses, (path, response.status_code, response.text)
    body = response.json()
    if path.startswith(RECHERCHE):
        assert (body["codeRetour"], body["jetonUsager"]) == ("R997", "null"), body
    else:
        assert body["codeErreur"] == "REQUETE_INVALIDE", body
        assert body["codeHttp"] == response.status_code


def _check_every_wrong_content_type(hub: Hub, name: str) -> None:
    operation = OPERATIONS[name]
    headers = _headers(hub, operation.per_usager)
    body = json.dumps(operation.body).encode("utf-8")
    send = hub.client.request
    for content_type in NOT_JSON:
        sent = headers if content_type is None else {**headers, "Content-Type": content_type}
        before = len(_events(hub))
        response = send(operation.method, operation.path, params=operation.params, content=body, headers=sent)
        _assert_refused(operation.path, response, (415,))
        # Refused like any refusal of a known operation: audited, as denied, before it is answered.
        (event,) = _events(hub)[before:]
        assert (event.decision, event.http_status) == ("denied", 415), content_type
    # No body at all and no Content-Type: the contract's required body is missing (400), no 5xx.
    response = send(operation.method, operation.path, params=operation.params, headers=headers)
    _assert_refused(operation.path, response, (400, 415))
    # The same bytes declared as JSON are past the guard (the call itself is the store's business).
    declared = send(
        operation.method,
        operation.path,
        params=operation.params,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert declared.status_code not in (415, 500), declared.text


@pytest.mark.parametrize("name", JSON_PARTNER_OPERATIONS)
def test_a_body_not_declared_as_json_is_415_in_reference_mode(hub: Hub, name: str) -> None:
    _check_every_wrong_content_type(hub, name)


@pytest.mark.parametrize("name", JSON_PARTNER_OPERATIONS)
def test_a_body_not_declared_as_json_is_415_in_gateway_mode_and_never_forwarded(gateway: Gateway, name: str) -> None:
    gateway.upstream.on("POST", PAR_NUMERO, s001())
    operation = OPERATIONS[name]
    headers = _headers(gateway.hub, operation.per_usager)
    gateway.upstream.requests.clear()
    body = json.dumps(operation.body).encode("utf-8")
    for content_type in NOT_JSON:
        sent = headers if content_type is None else {**headers, "Content-Type": content_type}
        response = gateway.hub.client.request(
            operation.method, operation.path, params=operation.params, content=body, headers=sent
        )
        _assert_refused(operation.path, response, (415,))
    # Nothing of it reached France Travail.
    assert gateway.upstream.requests == []
