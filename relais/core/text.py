"""Text that no database stores, refused wherever input enters Relais.

PostgreSQL text columns refuse NUL, and a lone UTF-16 surrogate cannot be encoded in UTF-8;
a JSON body or an import file may carry both as ``\\u`` escapes. SQLite would store them, so
refusing them at the door keeps both engines answering alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def champ_invalide(value: Any, chemin: str = "") -> str | None:
    """The path (``etatCivil.nom``) of the first text or key holding such a character, if any."""
    if isinstance(value, str):
        return chemin if _UNSTORABLE.search(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{chemin}.{key}" if chemin else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                return chemin or "(racine)"
            found = champ_invalide(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = champ_invalide(item, f"{chemin}[{index}]")
            if found is not None:
                return found
    return None
