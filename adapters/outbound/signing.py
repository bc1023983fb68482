"""The signature of the editor-facing contract (specs/editor-webhook-v1.yaml).

Each delivery carries ``Relais-Timestamp`` (Unix seconds) and ``Relais-Signature``: one
``v1=<kid>:<base64 HMAC-SHA256>`` entry per valid key, separated by spaces, over the bytes
``<timestamp>.<body>``. During a rotation two keys are valid, so an editor that knows either
verifies the call. The timestamp is signed too, so an editor refuses a replayed old call.
The HMAC comes from the standard library; comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "Relais-Signature"
TIMESTAMP_HEADER = "Relais-Timestamp"
EVENT_ID_HEADER = "Relais-Evenement-Id"
EVENT_TYPE_HEADER = "Relais-Evenement-Type"
SCHEME = "v1"
# An editor should refuse a call whose timestamp is further than this from its clock.
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def signature_header(keys: Mapping[str, bytes], timestamp: int, body: bytes) -> str:
    """``v1=<kid>:<signature>`` for every key (newest first), space separated."""
    return " ".join(f"{SCHEME}={kid}:{signature(secret, timestamp, body)}" for kid, secret in keys.items())


def verify(
    header: str | None,
    timestamp: str | None,
    body: bytes,
    keys: Mapping[str, bytes],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> str | None:
    """The kid of a valid signature, or None. What an editor does with each call."""
    if not header or not timestamp or not timestamp.isdigit():
        return None
    if abs(now - int(timestamp)) > tolerance:
        return None
    for entry in header.split():
        scheme, _, value = entry.partition("=")
        kid, _, given = value.partition(":")
        secret = keys.get(kid)
        if scheme != SCHEME or secret is None:
            continue
        if hmac.compare_digest(given.encode("ascii", "replace"), signature(secret, int(timestamp), body).encode()):
            return kid
    return None
