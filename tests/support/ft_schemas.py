"""France Travail's strict response schemas (``tests/api/ft_schemas/``), for any test that
reads a partner answer: what FT's own typed client would refuse, as a list of errors.

``OPERATIONS`` names, for every operation of every partner spec (``specs/*`` served under
``/partenaire/``), the schema its success answer must pass, or ``None`` for an answer FT
documents without a body. ``partner_operations()`` reads the specs, so an operation added to a
spec without an entry here fails ``tests/api/test_ft_contract_strict.py``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from specs import load_document, served_documents

SCHEMAS = Path(__file__).resolve().parent.parent / "api" / "ft_schemas"
PARTNER_BASE = "/partenaire/"

# operationId -> schema file (without ``.json``), or None: FT's status with an empty body.
OPERATIONS: dict[str, str | None] = {
    "RechercherUsagerParDateNaissanceEtNir": "resultat_recherche",
    "RechercherUsagerParNumeroFranceTravail": "resultat_recherche",
    "recupererDonneesParIdRci": "informations_administratives",
    "recupererContratV2": "statut_usager",
    "chercherActivites": "activites_v1",
    "chercherActivitesV2": "activites_v2",
    "lectureOrientation": "orientations",
    "calculOrientation": "orientation",
    "decisionOrientation": "orientation",
    "orientation": "orientation",
    "creerRendezVous": "rendez_vous",
    "modifierRendezVous": "rendez_vous",
    "supprimerRendezVous": None,
    "consulterRendezVousUsager": "rendez_vous_liste",
    "lireContratEngagement": "contrat_engagement",
    "signerPremierContratEngagement": "contrat_engagement",
    "signerContratEngagement": "contrat_engagement",
    "refuserPremierContratEngagement": "contrat_engagement",
    "refuserContratEngagement": "contrat_engagement",
    "lireDetailSanctionRsa": "detail_manquement",
    "traiterSanctionRsa": "resultat_sanction",
    "traiterDecisionSanctionRSA": "resultat_sanction",
    "demandeRadiation": "resultat_sanction",
    "recupererDiagnostics": "diagnostics",
    "creerDiagnostic": "diagnostic",
    "supprimerDiagnostic": None,
}


def partner_operations() -> dict[str, str]:
    """operationId -> spec file, for every operation of every spec served under ``/partenaire/``."""
    found: dict[str, str] = {}
    for name, _, base in served_documents():
        if not base.startswith(PARTNER_BASE):
            continue
        for item in load_document(name)["paths"].values():
            for operation in item.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    found[operation["operationId"]] = name
    return found


def _load(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@cache
def _registry() -> Registry:
    # Schemas refer to each other by file name (``{"$ref": "rendez_vous.json"}``).
    return Registry().with_resources(
        (path.name, Resource.from_contents(_load(path), default_specification=DRAFT202012))
        for path in sorted(SCHEMAS.glob("*.json"))
    )


@cache
def validator(name: str) -> Draft202012Validator:
    schema = _load(SCHEMAS / f"{name}.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def ft_errors(name: str, body: Any) -> list[str]:
    """Where ``body`` breaks FT's schema ``name`` (empty when FT's client parses it)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(body)]


def assert_ft_shape(name: str, response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    errors = ft_errors(name, body)
    assert errors == [], errors
    return body


def assert_ft_operation(operation_id: str, response: httpx.Response, status: int = 200) -> Any:
    """``response`` is the answer FT documents for ``operation_id``: its status, its schema (or no body)."""
    name = OPERATIONS[operation_id]
    if name is None:
        assert response.status_code == status, response.text
        assert response.content == b"", response.text
        return None
    return assert_ft_shape(name, response, status)
