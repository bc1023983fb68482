"""OpenAPI contracts served by Relais, and the JSON Schema of the ``relais import`` format.

The YAML documents mirror France Travail's partner API contracts; ``common.yaml`` holds the
components they share (referenced as ``common.yaml#/components/...``). Code that reads a
contract (the web shell's security check, the habilitations policy, the CLI banner) goes
through ``load_document``: each file is parsed once per process.
"""

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

SPECS_DIR = Path(__file__).parent
# Shared components, referenced by the others; it declares no route.
# libyaml's safe loader when PyYAML was built with it (about 8x faster), else the pure-Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
COMMON_SPEC = "common.yaml"
# Mounted at the root: connexion's docs router for a root API would shadow every other
# API, so this one is served without Swagger UI (its spec file is here all the same).
OPS_SPEC = "relais-ops-v1.yaml"
_VERSION = re.compile(r"/(v\d+)$")


@lru_cache(maxsize=64)
def load_document(name: str) -> dict[str, Any]:
    """The parsed YAML document ``name`` (a file name in ``specs/``), parsed once per process.

    The same dict is handed to every caller: read it, never change it.
    """
    document = yaml.load((SPECS_DIR / name).read_text(encoding="utf-8"), Loader=_SAFE_LOADER)  # noqa: S506
    if not isinstance(document, dict):
        raise ValueError(f"{name} : document OpenAPI attendu")
    return document


def api_specs() -> list[str]:
    """Every API document served by the app, each under its own base path."""
    return [name for name, _, _ in served_documents()]


def served_documents() -> list[tuple[str, str, str]]:
    """(file name, title with version, base path) of every API document Relais serves.

    Every ``*.yaml`` here but the shared components, the root ops API (served without
    Swagger UI) and the contracts Relais documents without serving them (marked
    ``x-relais-served: false``, e.g. the webhook editors implement) is an API of its own,
    mounted at its ``servers[0].url``.
    """
    found = []
    for path in sorted(SPECS_DIR.glob("*.yaml")):
        if path.name in (COMMON_SPEC, OPS_SPEC):
            continue
        document = load_document(path.name)
        if document.get("x-relais-served", True) is False:
            continue
        base = document["servers"][0]["url"]
        version = _VERSION.search(base)
        title = f"{document['info']['title']} {version[1]}" if version else document["info"]["title"]
        found.append((path.name, title, base))
    return found
