"""A small editor server: receives Relais' events, verifies them, acknowledges, dedups.

For editors trying Relais and for Relais' own tests. It behaves as the contract asks an editor
to (specs/editor-webhook-v1.yaml): refuse a bad or stale signature (401), acknowledge with a
2xx, and treat an event id already received as acknowledged without processing it again.
Switches make it misbehave on purpose: fail (500), answer 429 with Retry-After, wait before
answering (delay), or lose its acknowledgement (process the event, then answer 500, so that
Relais sends it again: a duplicate).

    python -m adapters.outbound.fake_editor --port 8900 --key KID=SECRET

Endpoints: ``POST /evenements`` (any path but ``/_fake/...``), ``GET /_fake/evenements`` (what
was received, in order, duplicates excluded), ``GET``/``POST /_fake/reglages`` (the switches,
as JSON). It keeps everything in memory.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from adapters.outbound.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)

MAX_BODY = 1_000_000


@dataclass
class Switches:
    fail: int = 0  # answer 500 to the next N events
    rate_limit: int = 0  # answer 429 to the next N events...
    retry_after: int = 1  # ...with this Retry-After (seconds)
    lose_ack: int = 0  # record the next N events, then answer 500 (Relais will send them again)
    delay: float = 0.0  # wait this long before answering every event


@dataclass
class FakeEditorState:
    keys: dict[str, bytes]
    switches: Switches = field(default_factory=Switches)
    received: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    duplicates: int = 0
    rejected: int = 0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [str(event["id"]) for event in self.received]

    def types(self) -> list[str]:
        with self.lock:
            return [str(event["type"]) for event in self.received]


class FakeEditor:
    """The server in a background thread: ``with FakeEditor({"kid": b"secret"}) as editor:``."""

    def __init__(
        self,
        keys: dict[str, bytes],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        wall_clock: Callable[[], float] = time.time,
        tolerance: float = DEFAULT_TOLERANCE_SECONDS,
        state: FakeEditorState | None = None,
    ) -> None:
        # ``state``: what an editor restarted on the same port still remembers.
        self.state = state or FakeEditorState(keys=dict(keys))
        handler = _handler(self.state, wall_clock, tolerance)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/evenements"

    @property
    def switches(self) -> Switches:
        return self.state.switches

    def start(self) -> FakeEditor:
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-editor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeEditor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(state: FakeEditorState, wall_clock: Callable[[], float], tolerance: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "RelaisFakeEditor/1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: events are listed at /_fake/evenements

        def do_GET(self) -> None:
            if self.path == "/_fake/evenements":
                with state.lock:
                    body = {"evenements": list(state.received), "doublons": state.duplicates, "refuses": state.rejected}
                self._json(200, body)
            elif self.path == "/_fake/reglages":
                self._json(200, asdict(state.switches))
            else:
                self._json(200, {"statut": "pret"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"erreur": "corps trop volumineux"})
                return
            body = self.rfile.read(length)
            if self.path == "/_fake/reglages":
                self._settings(body)
                return
            self._event(body)

        def _settings(self, body: bytes) -> None:
            try:
                changes = json.loads(body or b"{}")
                with state.lock:
                    for name, value in changes.items():
                        if not hasattr(state.switches, name):
                            raise ValueError(name)
                        setattr(state.switches, name, type(getattr(state.switches, name))(value))
            except (ValueError, TypeError, AttributeError):
                self._json(400, {"erreur": "réglage inconnu ou invalide"})
                return
            self._json(200, asdict(state.switches))

        def _event(self, body: bytes) -> None:
            with state.lock:
                state.calls += 1
                delay = state.switches.delay
            if delay:
                time.sleep(delay)
            kid = verify(
                self.headers.get(SIGNATURE_HEADER),
                self.headers.get(TIMESTAMP_HEADER),
                body,
                state.keys,
                now=wall_clock(),
                tolerance=tolerance,
            )
            if kid is None:
                with state.lock:
                    state.rejected += 1
                self._json(401, {"erreur": "signature invalide"})
                return
            try:
                event = json.loads(body)
                event_id = str(event["id"])
            except (ValueError, KeyError, TypeError):
                self._json(400, {"erreur": "document invalide"})
                return
            if self.headers.get(EVENT_ID_HEADER) != event_id:
                self._json(400, {"erreur": "identifiant d'événement incohérent"})
                return
            with state.lock:
                switches = state.switches
                if switches.fail > 0:
                    switches.fail -= 1
                    answer: tuple[int, dict[str, Any], dict[str, str]] = (500, {"erreur": "panne simulée"}, {})
                elif switches.rate_limit > 0:
                    switches.rate_limit -= 1
                    answer = (429, {"erreur": "trop de requêtes"}, {"Retry-After": str(switches.retry_after)})
                elif event_id in state.seen:
                    state.duplicates += 1
                    answer = (200, {"statut": "deja_recu"}, {})
                else:
                    state.seen.add(event_id)
                    state.received.append(event)
                    if switches.lose_ack > 0:
                        switches.lose_ack -= 1
                        answer = (500, {"erreur": "accusé de réception perdu (simulé)"}, {})
                    else:
                        answer = (200, {"statut": "recu"}, {})
            self._json(*answer)

        def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def parse_key(value: str) -> tuple[str, bytes]:
    kid, sep, secret = value.partition("=")
    if not sep or not kid or not secret:
        raise argparse.ArgumentTypeError("KID=SECRET attendu")
    return kid, secret.encode("utf-8")


def serve(host: str, port: int, keys: dict[str, bytes]) -> None:
    editor = FakeEditor(keys, host=host, port=port)
    print(f"Éditeur factice : {editor.url} (clés : {', '.join(keys) or 'aucune'})", flush=True)
    print(f"Événements reçus : http://{host}:{editor.server.server_address[1]}/_fake/evenements", flush=True)
    try:
        editor.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        editor.server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Éditeur factice recevant les événements de Relais.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--key", action="append", type=parse_key, default=[], help="KID=SECRET (répétable)")
    args = parser.parse_args(argv)
    serve(args.host, args.port, dict(args.key))


if __name__ == "__main__":
    main()
