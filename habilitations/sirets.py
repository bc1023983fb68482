"""The SIRET directory: which organisation each establishment belongs to.

An agent's first ProConnect login is matched by e-mail among the agents of the organisation
that owns the SIRET ProConnect sends (``habilitations.login``): this directory says which
organisation that is. A SIRET identifies an establishment, not a person.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session, col, select

from habilitations.login_models import OrganisationSiret
from habilitations.refusals import HabilitationRefused
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

SIRET_PATTERN = re.compile(r"^\d{14}$")


def add_siret(session: Session, organisation_code: str, siret: str, now: datetime) -> bool:
    """Attach an establishment to an organisation; False when it already was (idempotent)."""
    if not SIRET_PATTERN.match(siret):
        raise HabilitationRefused(RefusalKind.INVALID, "SIRET_INVALIDE", "SIRET invalide : 14 chiffres attendus")
    organisation = session.exec(select(Organisation).where(Organisation.code == organisation_code)).first()
    if organisation is None or organisation.id is None:
        raise HabilitationRefused(
            RefusalKind.UNKNOWN, "ORGANISATION_INCONNUE", f"organisation inconnue : {organisation_code}"
        )
    existing = session.get(OrganisationSiret, siret)
    if existing is not None:
        if existing.organisation_id != organisation.id:
            raise HabilitationRefused(
                RefusalKind.CONFLICT, "SIRET_DEJA_RATTACHE", "ce SIRET est déjà rattaché à une autre organisation"
            )
        return False
    session.add(OrganisationSiret(siret=siret, organisation_id=organisation.id, created_at=now))
    session.flush()
    return True


def remove_siret(session: Session, siret: str) -> bool:
    row = session.get(OrganisationSiret, siret)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def directory(session: Session, organisation_code: str | None = None) -> list[tuple[str, str]]:
    """(SIRET, organisation code) pairs of the directory, by organisation then SIRET."""
    query = select(OrganisationSiret.siret, Organisation.code).join(
        Organisation, col(Organisation.id) == col(OrganisationSiret.organisation_id)
    )
    if organisation_code is not None:
        query = query.where(Organisation.code == organisation_code)
    rows = session.exec(query).all()
    return sorted(((siret, code) for siret, code in rows), key=lambda row: (row[1], row[0]))
