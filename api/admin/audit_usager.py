"""Which keys the journal knows an usager by, resolved from a NIR or a numéro France Travail.

The audit domain searches by internal usager ids and NIR blind indexes (``UsagerCible``); it
does not read the parcours tables. The shell resolves what a security officer (audit API) or
the operator (``relais audit search``) gave, here, once for both.
"""

from __future__ import annotations

from sqlmodel import Session, select

from audit.refusals import AuditRefused, RefusalKind
from audit.search import UsagerCible
from parcours.tables import Usager
from relais.core.keys import KeySet
from relais.core.personal_data import blind_index


def resolve_usager(session: Session, keys: KeySet, *, nir: str | None, numero: str | None) -> UsagerCible:
    """Resolve a NIR (raises ``NirError``) or a numéro France Travail to the journal's keys.

    A NIR Relais does not know still gives its blind index: the journal may hold searches for it.
    """
    if nir is not None:
        index = blind_index(keys, nir)
        ids = session.exec(select(Usager.id).where(Usager.nir_index == index)).all()
        return UsagerCible(tuple(ids), (index,))
    if numero is not None:
        rows = session.exec(select(Usager.id, Usager.nir_index).where(Usager.numero_france_travail == numero)).all()
        return UsagerCible(tuple(row[0] for row in rows), tuple(row[1] for row in rows if row[1]))
    raise AuditRefused(RefusalKind.INVALID, "USAGER_ABSENT", "usager : donner nir ou numeroFranceTravail")
