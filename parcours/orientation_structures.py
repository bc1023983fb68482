"""Which structure serves an usager for an organisme: the one covering the département of the
criteria's address, else the organisation of that type covering the usager (``perimeter``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from parcours.perimeter import organisation_for
from parcours.tables import Usager
from relais.core.tables import Organisation


def structure_for(
    session: Session, usager: Usager, organisme: str, criteres: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The structure of ``organisme`` serving the usager: the criteria's address first."""
    if organisme == "IND":
        return None
    departement = departement_of_criteres(criteres)
    organisation = None
    if departement is not None:
        candidates = session.exec(
            select(Organisation).where(Organisation.type == organisme).order_by(col(Organisation.id))
        )
        organisation = next((o for o in candidates if departement in o.territoire), None)
    if organisation is None:
        organisation = organisation_for(session, usager, organisme)
    if organisation is None:
        return None
    return {
        "code_aurore": organisation.code_aurore,
        "code_safir": organisation.code_safir,
        "libelle_structure": organisation.libelle,
    }


def departement_of_criteres(criteres: Mapping[str, Any]) -> str | None:
    adresse = criteres.get("adresse") or {}
    code = str(adresse.get("code_commune") or "")
    if len(code) == 5:
        return code[:3] if code.startswith("97") else code[:2]
    postcode = str(adresse.get("code_postal") or "")
    if len(postcode) == 5 and postcode.isdigit():
        if postcode.startswith("20"):
            return "2A" if postcode[2] in "01" else "2B"
        return postcode[:3] if postcode.startswith("97") else postcode[:2]
    return None
