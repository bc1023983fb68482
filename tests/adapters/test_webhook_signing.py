"""The signature scheme an editor verifies, key rotation, and ``relais connecteurs test``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlmodel import select

from adapters.outbound import registry
from adapters.outbound.models import Connector, ConnectorKey
from adapters.outbound.port import Delivery, Target
from adapters.outbound.signing import signature_header, verify
from adapters.outbound.webhook import WebhookSender, retry_after_seconds
from adapters.outbound.worker import Worker
from audit.journal import JournalRecorder
from relais.cli.connecteurs import check_endpoint
from relais.core.db import Database
from tests.adapters.outbound_support import add_connector, editor, keyset, messages, publish, settings

BODY = b'{"id":"e1","type":"rendez_vous.pris"}'


def test_a_signature_verifies_with_its_key_only_and_not_once_stale() -> None:
    now = 1_795_424_400
    header = signature_header({"k1": b"secret-1"}, now, BODY)
    assert verify(header, str(now), BODY, {"k1": b"secret-1"}, now=now) == "k1"
    assert verify(header, str(now), BODY, {"k1": b"another"}, now=now) is None
    assert verify(header, str(now), BODY + b" ", {"k1": b"secret-1"}, now=now) is None  # body altered
    assert verify(header, str(now + 1), BODY, {"k1": b"secret-1"}, now=now) is None  # timestamp altered
    assert verify(header, str(now), BODY, {"k1": b"secret-1"}, now=now + 301) is None  # replayed later
    assert verify(None, str(now), BODY, {"k1": b"secret-1"}, now=now) is None


def test_during_a_rotation_an_editor_with_either_key_verifies(database: Database) -> None:
    keys = keyset()
    old = add_connector(database, keys, "https://solis.example.org/relais")
    now = datetime.now(UTC)
    with database.session() as session:
        connector = session.exec(select(Connector)).one()
        new_kid, new_secret = registry.rotate_key(session, keys, connector, now, overlap=timedelta(days=7))
        session.commit()
        during = registry.signing_secrets(session, keys, connector, now + timedelta(days=6))
        after = registry.signing_secrets(session, keys, connector, now + timedelta(days=8))
    assert list(during) == [new_kid, *old]  # newest first, both sign
    assert after == {new_kid: new_secret.encode()}
    header = signature_header(during, 1000, BODY)
    assert verify(header, "1000", BODY, old, now=1000) == next(iter(old))
    assert verify(header, "1000", BODY, {new_kid: new_secret.encode()}, now=1000) == new_kid
    # Secrets are stored sealed, never in clear.
    with database.session() as session:
        stored = [k.secret_sealed for k in session.exec(select(ConnectorKey))]
    assert new_secret not in "".join(stored)


def test_the_fake_editor_refuses_a_wrong_key_and_relais_keeps_the_event(database: Database, tmp_path: Path) -> None:
    keys = keyset()
    with editor({"autre": b"pas-la-bonne-cle"}) as fake:
        add_connector(database, keys, fake.url)
        publish(database, 1)
        runner = Worker(database, keys, settings(tmp_path), WebhookSender(), audit=JournalRecorder())
        runner.run_until_idle()
        assert fake.state.rejected == 1 and fake.state.received == []
    (message,) = messages(database)
    assert (message.status, message.last_error) == ("failed", "réponse HTTP 401")


def test_the_endpoint_check_reports_a_conforming_editor(tmp_path: Path) -> None:
    with editor({"k1": b"s3cret"}) as fake:
        report = check_endpoint(Target("solis-cd33", fake.url, {"k1": b"s3cret"}, 2.0), "CD33")
        assert fake.state.duplicates == 1 and fake.state.rejected == 1
    assert report.ok, report.lines
    assert report.lines[-1] == "Résultat : conforme"


def test_the_endpoint_check_flags_an_editor_that_accepts_anything() -> None:
    def anything(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"statut": "recu"})

    client = httpx.Client(transport=httpx.MockTransport(anything))
    report = check_endpoint(Target("naif", "https://naif.example.org/", {"k1": b"s"}, 2.0), "CD33", client)
    assert not report.ok
    assert "[ÉCHEC] signature invalide refusée (4xx) : HTTP 200" in report.lines


def test_the_endpoint_check_reports_an_unreachable_editor() -> None:
    with editor({}) as fake:
        url = fake.url
    report = check_endpoint(Target("parti", url, {"k1": b"s"}, 1.0), "CD33")
    assert not report.ok and report.lines[1] == "[ÉCHEC] joignable : connexion impossible"


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Mon, 23 Nov 2026 09:05:00 GMT", now=now) == 300.0
    assert retry_after_seconds("bientôt") is None
    assert retry_after_seconds(None) is None


def test_the_sent_body_is_what_is_signed(database: Database) -> None:
    seen: list[httpx.Request] = []

    def editor_(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sender = WebhookSender(httpx.Client(transport=httpx.MockTransport(editor_)))
    outcome = sender.send(
        Target("c", "https://e.example.org/", {"k1": b"s"}, 1.0),
        Delivery("abc", "rendez_vous.pris", {"id": "abc", "donnees": {"motif": "ACC", "é": "ü"}}),
    )
    assert outcome.delivered and outcome.http_status == 204
    (request,) = seen
    assert request.headers["Relais-Evenement-Id"] == "abc"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    kid = verify(
        request.headers["Relais-Signature"],
        request.headers["Relais-Timestamp"],
        request.content,
        {"k1": b"s"},
        now=time.time(),
    )
    assert kid == "k1"
