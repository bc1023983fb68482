"""Which usagers an organisation may act on, shared by every reference store backend.

An organisation reaches an usager who lives in its territory (the département of the
usager's first address), who is explicitly attached to it, or whose open orientation was
decided for one of its structures (``structure_decision.code_aurore``).
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlmodel import Session, col, select

from parcours.ports import Caller, Perimetre, UsagerNotAttached
from parcours.tables import Orientation, Usager, UsagerOrganisation
from relais.core.tables import Organisation


class UsagerLieu(Protocol):
    """What the perimeter reads of an usager: a full ``Usager`` row, or only these columns."""

    @property
    def id(self) -> str: ...

    @property
    def adresses(self) -> list[dict[str, Any]]: ...


def caller_organisation(session: Session, caller: Caller) -> Organisation | None:
    return session.exec(select(Organisation).where(Organisation.code == caller.organisation)).first()


def perimetre_of(organisation: Organisation | None) -> Perimetre | None:
    if organisation is None:
        return None
    assert organisation.id is not None
    return Perimetre(
        organisation_id=organisation.id,
        territoire=frozenset(organisation.territoire or ()),
        code_aurore=organisation.code_aurore,
    )


def caller_perimetre(session: Session, caller: Caller) -> Perimetre | None:
    """The caller's perimeter: the one the security check read with the call's rights, or the
    organisation's row when the caller carries none."""
    if caller.perimetre is not None:
        return caller.perimetre
    return perimetre_of(caller_organisation(session, caller))


def is_attached(session: Session, organisation: Organisation | Perimetre | None, usager: UsagerLieu) -> bool:
    perimetre = (
        organisation if organisation is None or isinstance(organisation, Perimetre) else perimetre_of(organisation)
    )
    if perimetre is None:
        return False
    if departement_of(usager) in perimetre.territoire:
        return True
    if session.get(UsagerOrganisation, (usager.id, perimetre.organisation_id)) is not None:
        return True
    if perimetre.code_aurore:
        open_orientations = session.exec(
            select(Orientation).where(Orientation.usager_id == usager.id, Orientation.etat == "OUVERT")
        )
        for orientation in open_orientations:
            if (orientation.structure_decision or {}).get("code_aurore") == perimetre.code_aurore:
                return True
    return False


def attached_usager(session: Session, caller: Caller, ref: str) -> Usager | None:
    """The usager a jeton designates, None if it no longer exists.

    The jeton was issued within the caller's perimeter; this checks it still holds and
    raises ``UsagerNotAttached`` otherwise.
    """
    usager = session.get(Usager, ref)
    if usager is None:
        return None
    if not is_attached(session, caller_perimetre(session, caller), usager):
        raise UsagerNotAttached
    return usager


def departement_of(usager: UsagerLieu) -> str | None:
    """The département of the usager's first address, from its INSEE code or postcode."""
    for adresse in usager.adresses:
        code = adresse.get("codeInseeCommune") or ""
        if len(code) == 5:
            return code[:3] if code.startswith("97") else code[:2]
        postcode = adresse.get("codePostal") or ""
        if len(postcode) == 5 and postcode.isdigit():
            if postcode.startswith("20"):
                # Corsica's postcodes are 20xxx for both départements: 200-201 is Corse-du-Sud.
                return "2A" if postcode[2] in "01" else "2B"
            return postcode[:3] if postcode.startswith("97") else postcode[:2]
    return None


def organisation_for(session: Session, usager: Usager, type_: str) -> Organisation | None:
    """The organisation of type ``type_`` (CD, FT...) whose territory covers the usager, if any.

    The département's council is who decides the usager's orientation and sanctions; it is
    the organisation whose activity list shows the decisions to take.
    """
    departement = departement_of(usager)
    if departement is None:
        return None
    candidates = session.exec(select(Organisation).where(Organisation.type == type_).order_by(col(Organisation.id)))
    for organisation in candidates:
        if departement in organisation.territoire:
            return organisation
    return None
