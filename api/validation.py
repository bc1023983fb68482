"""Request body validation beyond the schemas: text no database can store is a 400.

Registered for every JSON body of every spec (``api.app``), so no handler has to think of
it. The problem's detail ends like jsonschema's (`` - 'path'``) so that ``api.errors`` names
the field, never its value, in the called API's error format.
"""

from __future__ import annotations

from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator

from relais.core.text import champ_invalide

UNSTORABLE_DETAIL = "caractère non autorisé (nul ou UTF-16 isolé)"


class StorableJSONBodyValidator(JSONRequestBodyValidator):
    def _validate(self, body: Any) -> dict[Any, Any] | None:
        validated = super()._validate(body)
        champ = champ_invalide(body)
        if champ is not None:
            raise BadRequestProblem(detail=f"{UNSTORABLE_DETAIL} - '{champ[:64]}'")
        return validated


def validator_map() -> dict[str, Any]:
    body = MediaTypeDict(dict(VALIDATOR_MAP["body"]))
    body["*/*json"] = StorableJSONBodyValidator
    return {**VALIDATOR_MAP, "body": body}
