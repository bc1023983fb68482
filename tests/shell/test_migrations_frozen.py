"""Revisions are frozen: none imports the application, so later changes cannot rewrite history.

A revision runs against the schema of its own time, possibly years later. Code it imported
from the domains (models, lifecycle rules, hashing) would by then describe another schema and
other rules: each revision declares its own table snapshots and frozen copies instead.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "relais" / "migrations" / "versions"
VERSIONS_PACKAGE = "relais.migrations.versions"
# Helpers shipped with the migrations themselves are part of the frozen history.
ALLOWED = "relais.migrations"


def _relais_packages() -> tuple[str, ...]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return tuple(config["tool"]["importlinter"]["root_packages"])


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an import statement (at any depth) or a dynamic import names."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # ``from a import b`` may import the module a.b: name it whole.
            parts = VERSIONS_PACKAGE.split(".")[: len(VERSIONS_PACKAGE.split(".")) + 1 - node.level]
            module = ".".join([*parts, node.module] if node.module else parts) if node.level else node.module or ""
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
            if name in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return sorted(found)


def _is_relais(module: str, packages: tuple[str, ...]) -> bool:
    if module == ALLOWED or module.startswith(f"{ALLOWED}."):
        return False
    return module.split(".")[0] in packages


REVISIONS = sorted(VERSIONS.glob("*.py"))


def test_there_are_revisions_to_check() -> None:
    assert len([path for path in REVISIONS if path.name != "__init__.py"]) >= 10


@pytest.mark.parametrize("path", REVISIONS, ids=lambda path: path.name)
def test_a_revision_imports_no_relais_package(path: Path) -> None:
    packages = _relais_packages()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    offending = [f"line {line}: {module}" for line, module in _imported_modules(tree) if _is_relais(module, packages)]
    # Declare sa.table()/sa.column() snapshots and copy the constants and functions needed,
    # frozen, into the revision itself.
    assert offending == [], f"{path.name} imports the application: {offending}"


def test_the_check_sees_imports_at_any_depth() -> None:
    source = (
        "import json\n"
        "from alembic import op\n"
        "from relais.migrations import helpers\n"
        "def upgrade():\n"
        "    from audit.journal import event_leaf_hash\n"
        "    import habilitations.lifecycle\n"
        "    importlib.import_module('parcours.tables')\n"
        "    from ... import core\n"
    )
    packages = _relais_packages()
    offending = [module for _, module in _imported_modules(ast.parse(source)) if _is_relais(module, packages)]
    assert offending == [
        "audit.journal.event_leaf_hash",
        "habilitations.lifecycle",
        "parcours.tables",
        "relais.core",
    ]
