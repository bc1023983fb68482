"""Malformed input is refused before any handler, in the called API's error format (issue 14
findings 2 and 6, issue 15's Content-Type item): never a 5xx, never an ambiguous header."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlmodel import col, select

from api.validation import MAX_JSON_DEPTH
from audit.models import AuditEvent
from parcours import sanctions
from parcours.tables import ConsequenceSanction, Usager
from specs import api_specs, load_document
from tests.audit.audit_api_support import rssi
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import INFOS, RECHERCHE, RECHERCHE_SCOPES, SANCTIONS_SCOPES, TOKEN_URL


def _json_operations() -> list[tuple[str, str]]:
    """(method, URL) of every served JSON operation, path parameters filled with a dummy."""
    found = []
    for name in api_specs():
        document = load_document(name)
        base = document["servers"][0]["url"]
        for path, item in document["paths"].items():
            for method in ("post", "put", "patch", "delete"):
                content = item.get(method, {}).get("requestBody", {}).get("content", {})
                if any("json" in media for media in content):
                    found.append((method.upper(), base + re.sub(r"\{[^}]+\}", "1", path)))
    return found


JSON_OPERATIONS = _json_operations()


def _events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def _assert_api_format(url: str, response: Any, status: int) -> None:
    """The status, and the error shape of the API that was called (never connexion's problem)."""
    assert response.status_code == status, (url, response.status_code, response.text)
    body = response.json()
    if url.startswith(RECHERCHE):
        assert body["codeRetour"] == "R997"
    elif url.startswith("/partenaire/activites-operationnelles/"):
        assert body[0]["code"] == "REQUETE_INVALIDE"
    elif url.startswith("/connexion/"):
        assert body["error"] == "invalid_request"
    else:
        assert body["codeErreur"] == "REQUETE_INVALIDE"


def test_there_are_json_operations_to_check() -> None:
    # Guards the parametrisation below against a change of the specs' layout.
    assert len(JSON_OPERATIONS) >= 30


@pytest.mark.parametrize(("method", "url"), JSON_OPERATIONS)
def test_every_json_operation_refuses_bad_bodies_before_any_handler(hub: Hub, method: str, url: str) -> None:
    send = hub.client.request
    # Issue 15: a body without Content-Type, or declared as something else than JSON.
    _assert_api_format(url, send(method, url, content=b"{}"), 415)
    _assert_api_format(url, send(method, url, content=b"{}", headers={"Content-Type": "text/plain"}), 415)
    as_json = {"Content-Type": "application/json"}
    # Issue 14 finding 6: bytes that are not UTF-8, UTF-16, a non-UTF-8 charset, deep nesting.
    _assert_api_format(url, send(method, url, content=b'{"a": "\xff\xfe"}', headers=as_json), 400)
    _assert_api_format(url, send(method, url, content='{"a": 1}'.encode("utf-16"), headers=as_json), 400)
    utf16 = {"Content-Type": "application/json; charset=utf-16"}
    _assert_api_format(url, send(method, url, content='{"a": 1}'.encode("utf-16-le"), headers=utf16), 400)
    _assert_api_format(url, send(method, url, content=b"[" * 1000 + b"]" * 1000, headers=as_json), 400)
    _assert_api_format(url, send(method, url, content=b"{" * 5000, headers=as_json), 400)


def test_nesting_within_the_limit_reaches_the_schema_checks(hub: Hub) -> None:
    body = b'{"numeroFranceTravail": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        content=body,
        headers={**hub.headers(hub.token()), "Content-Type": "application/json"},
    )
    # Past the guard: the schema check names the field (a nested array is no numéro).
    assert response.status_code == 400
    assert "numeroFranceTravail" in response.json()["message"]


def test_a_charset_utf8_body_is_served(hub: Hub) -> None:
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        content=b'{"numeroFranceTravail": "%s"}' % GIRONDE.numero.encode(),
        headers={**hub.headers(hub.token()), "Content-Type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 200
    assert response.json()["codeRetour"] == "S001"


def test_oversized_bodies_get_413_before_any_parser(hub: Hub) -> None:
    big = b"x" * (1024 * 1024 + 1)
    # The token endpoint's form: a multipart field over 1 MiB made the form parser fail (500).
    multipart = b'--b\r\nContent-Disposition: form-data; name="client_secret"\r\n\r\n' + big + b"\r\n--b--\r\n"
    token = hub.client.post(TOKEN_URL, content=multipart, headers={"Content-Type": "multipart/form-data; boundary=b"})
    _assert_api_format(TOKEN_URL, token, 413)
    form = hub.client.post(
        TOKEN_URL, content=b"client_id=" + big, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _assert_api_format(TOKEN_URL, form, 413)
    url = f"{RECHERCHE}/par-numero-francetravail"
    search = hub.client.post(url, content=b'{"a": "' + big + b'"}', headers={"Content-Type": "application/json"})
    _assert_api_format(url, search, 413)


def test_a_multipart_token_request_within_the_limit_is_no_5xx(hub: Hub) -> None:
    fields = b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(1200))
    response = hub.client.post(
        TOKEN_URL, content=fields + b"--b--\r\n", headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"]


DUPLICABLE = ["pa-nom-agent", "pa-prenom-agent", "pa-identifiant-agent", "Authorization"]


@pytest.mark.parametrize("header", DUPLICABLE)
def test_a_duplicated_header_on_rechercher_usager_is_r997(hub: Hub, header: str) -> None:
    token = hub.token()
    headers = [*hub.headers(token).items(), (header, "GHOST" if header != "Authorization" else f"Bearer {token}")]
    before = len(_events(hub))
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": GIRONDE.numero}, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["codeRetour"] == "R997"
    assert response.json()["jetonUsager"] == "null"
    # Refused and audited as such, never served under either copy.
    event = _events(hub)[before:][-1]
    assert (event.decision, event.http_status) == ("denied", 400)
    assert event.reason == f"header_duplicated:{header.lower()}"


@pytest.mark.parametrize("header", [*DUPLICABLE, "ft-jeton-usager"])
def test_a_duplicated_header_on_a_per_usager_api_is_400(hub: Hub, header: str) -> None:
    token = hub.token()
    jeton = hub.jeton(GIRONDE)
    single = hub.headers(token, **{"ft-jeton-usager": jeton})
    extra = {"Authorization": f"Bearer {token}", "ft-jeton-usager": jeton}.get(header, "GHOST-AGENT")
    response = hub.client.get(INFOS, headers=[*single.items(), (header, extra)])
    assert response.status_code == 400, response.text
    assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
    assert header.lower() in response.json()["message"]
    # The same headers, once each, are served.
    assert hub.client.get(INFOS, headers=single).status_code == 200


def test_a_duplicated_authorization_on_an_admin_api_is_400(hub: Hub) -> None:
    """The admin APIs read the same header: two bearers (whose agent would act?) are refused."""
    headers = rssi(hub)
    url = f"{AUDIT}/evenements/recherche"
    assert hub.client.post(url, json={}, headers=headers).status_code == 200
    before = len(_events(hub))
    twice = [*headers.items(), ("Authorization", headers["Authorization"])]
    response = hub.client.post(url, json={}, headers=twice)
    _assert_api_format(url, response, 400)
    assert "authorization" in response.json()["message"]
    event = _events(hub)[before:][-1]
    assert (event.decision, event.http_status, event.reason) == ("denied", 400, "header_duplicated:authorization")


SANCTION_EVENT = "/partenaire/gestion-sanctions-rsa/v1/evenementSanctionRSA"


def _proposed_consequence(hub: Hub) -> str:
    """A consequence France Travail proposed for GIRONDE, ready for the CD's SAISIE_SANCTION."""
    with hub.services.database.session() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
        payload = {
            "typeConsequenceSanction": "SUSP_RSA",
            "modaliteProposee": "P",
            "montantPropose": 50,
            "dureeProposee": 2,
            "natureManquement": "N65",
            "rangManquement": "R1",
            "dateManquement": "2026-01-15",
        }
        consequence = sanctions.proposer_consequence(session, usager, payload, now=hub.clock.now)
        session.commit()
        return consequence.id


def _historique(hub: Hub, identifiant: str) -> list[dict[str, Any]]:
    with hub.services.database.session() as session:
        consequence = session.get(ConsequenceSanction, identifiant)
        assert consequence is not None
        return list(consequence.historique)


@pytest.mark.parametrize("order", [("AGT-0042", "GHOST-AGENT"), ("GHOST-AGENT", "AGT-0042")])
def test_a_ghost_agent_cannot_sign_a_sanction_history(hub: Hub, order: tuple[str, str]) -> None:
    """Finding 2 as reported: a valid SAISIE_SANCTION with pa-identifiant-agent sent twice was
    served, the second copy in the consequence's history and in the audit event; in the other
    order the refusal was attributed to the wrong agent. Now: refused, nothing recorded, and
    the refusal attributed to neither copy."""
    identifiant = _proposed_consequence(hub)
    token = hub.token(scope=f"{SANCTIONS_SCOPES} {RECHERCHE_SCOPES}")
    single = hub.headers(token, **{"ft-jeton-usager": hub.jeton(GIRONDE)})
    headers = [(name, value) for name, value in single.items() if name != "pa-identifiant-agent"]
    headers += [("pa-identifiant-agent", agent) for agent in order]
    body = {
        "identifiantConsequenceSanction": identifiant,
        "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": hub.clock.today().isoformat()},
        "typeConsequenceSanctionValide": "SUSP_RSA",
    }
    history = _historique(hub, identifiant)
    before = len(_events(hub))
    response = hub.client.post(SANCTION_EVENT, json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
    assert "GHOST-AGENT" not in response.text
    assert _historique(hub, identifiant) == history
    events = _events(hub)[before:]
    assert [(e.decision, e.http_status, e.reason) for e in events] == [
        ("denied", 400, "header_duplicated:pa-identifiant-agent")
    ]
    assert (events[0].agent_identifiant, events[0].agent_id) == (None, None)
    # The same call with the header once is served and signed by that agent.
    served = hub.client.post(SANCTION_EVENT, json=body, headers=single)
    assert served.status_code == 200, served.text
    assert _historique(hub, identifiant)[-1]["agent"] == single["pa-identifiant-agent"]


OUT_OF_RANGE = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
AUDIT = "/relais/audit/v1"


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_out_of_range_dates_are_400_on_every_audit_query(hub: Hub, moment: str) -> None:
    headers = rssi(hub)
    queries: list[tuple[str, dict[str, Any]]] = [
        ("evenements/recherche", {}),
        ("usagers/acces", {"usager": {"numeroFranceTravail": GIRONDE.numero}}),
        ("evenements/export", {"format": "csv"}),
        ("evenements/export", {"format": "jsonl"}),
    ]
    for route, body in queries:
        for period in ({"debut": moment}, {"fin": moment}):
            before = len(_events(hub))
            response = hub.client.post(f"{AUDIT}/{route}", json={**body, **period}, headers=headers)
            # Refused before any stream starts: an error body, never a 200 cut short.
            assert response.status_code == 400, (route, period, response.text)
            assert response.json()["codeErreur"] == "PERIODE_INVALIDE"
            event = _events(hub)[before:][-1]
            assert (event.decision, event.http_status) == ("denied", 400)


def test_an_export_whose_first_query_fails_answers_an_error_not_a_cut_200(hub: Hub) -> None:
    engine = hub.services.database.engine
    headers = rssi(hub)

    def refuse(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The export's read of the journal (in id order, from the start), nothing else.
        if (
            "FROM audit_event" in statement
            and "audit_event.id >" in statement
            and "ORDER BY audit_event.id" in statement
        ):
            raise RuntimeError("disk error")

    before = len(_events(hub))
    event.listen(engine, "before_cursor_execute", refuse)
    try:
        response = hub.client.post(f"{AUDIT}/evenements/export", json={"format": "csv"}, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert response.status_code == 500
    assert response.json()["codeErreur"] == "ERREUR_INTERNE"
    audited = _events(hub)[before:][-1]
    assert (audited.operation, audited.http_status) == ("exporterEvenements", 500)


_NESTED = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)
_BODIES = (
    st.binary(max_size=64)
    | st.builds(lambda value: json.dumps(value).encode(), _NESTED)
    | st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth)
    | st.text(max_size=20).map(lambda text: json.dumps({"t": text}).encode("utf-16"))
)
_CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-16", "text/plain", "application/x-www-form-urlencoded"]
)


def _fuzz(hub: Hub, method: str, url: str, headers: dict[str, str]) -> None:
    @settings(max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(body=_BODIES, content_type=_CONTENT_TYPES)
    def check(body: bytes, content_type: str) -> None:
        response = hub.client.request(method, url, content=body, headers={**headers, "Content-Type": content_type})
        assert response.status_code < 500, (method, url, body[:80], content_type, response.text[:200])

    check()


def test_random_bytes_and_deep_nesting_never_get_a_5xx(hub: Hub) -> None:
    """A bounded fuzz of every JSON operation (8 bodies each), with a valid token, jeton and
    agent headers so that well-formed bodies reach the schema checks and the handlers."""
    headers = {**hub.headers(hub.token()), "ft-jeton-usager": hub.jeton(GIRONDE)}
    for method, url in JSON_OPERATIONS:
        _fuzz(hub, method, url, headers)
