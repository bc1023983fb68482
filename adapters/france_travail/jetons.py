"""Map France Travail's ``jetonUsager`` to the one Relais hands out, server-side.

The upstream jeton is valid for whoever holds Relais' France Travail credentials, that is for
every client of this Relais: handing it out would let one client's jeton serve another. So
it stays here, encrypted, bound to the client that searched, and the client gets a Relais
jeton naming only the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, delete

from adapters.france_travail.models import GatewayJeton
from relais.core.keys import KeySet
from relais.core.personal_data import decrypt_field, encrypt_field

JETON_CONTEXT = "gateway_jeton.jeton"


class JetonInconnu(Exception):
    """No upstream jeton for this client under this reference (expired and purged, or foreign)."""


def remember(
    session: Session,
    keys: KeySet,
    *,
    client_id: str,
    upstream_jeton: str,
    nir_index: str | None,
    now: datetime,
    ttl: timedelta,
) -> str:
    """Store the upstream jeton for ``client_id``; return the reference to put in Relais' jeton."""
    # Expired rows are of no use to anyone: each search sweeps them (indexed, usually none).
    session.exec(delete(GatewayJeton).where(col(GatewayJeton.expires_at) <= now))
    row = GatewayJeton(
        client_id=client_id,
        jeton_chiffre=encrypt_field(keys, upstream_jeton, context=JETON_CONTEXT),
        nir_index=nir_index,
        expires_at=now + ttl,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def recall(session: Session, keys: KeySet, *, client_id: str, ref: str, now: datetime) -> GatewayJeton:
    """The row behind ``ref`` for this client, its jeton still encrypted; raise JetonInconnu."""
    row = session.get(GatewayJeton, ref)
    # Relais' own jeton already binds the client; checked again so a leak of the mapping alone
    # (a reference in an audit export) can never serve another client.
    if row is None or row.client_id != client_id or row.expires_at <= now:
        raise JetonInconnu
    return row


def upstream_jeton(keys: KeySet, row: GatewayJeton) -> str:
    return decrypt_field(keys, row.jeton_chiffre, context=JETON_CONTEXT)
