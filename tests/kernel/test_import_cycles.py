"""No import cycle between any two modules of Relais (docs/architecture.md, rule 6).

``lint-imports``' contracts find cycles between sibling modules and between packages; this
test looks at every module of the root packages import-linter checks (``pyproject.toml``),
including a package's ``__init__`` and its own modules, which are not siblings, and names each
cycle with the line of every import in it.
"""

from __future__ import annotations

import tomllib
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import grimp

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def root_packages() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["root_packages"])


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """The groups of modules that import each other, directly or not (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.find_modules_directly_imported_by(successor)))))
                    break
                if successor in on_stack:
                    low[module] = min(low[module], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        groups.append(group)
    return groups


def shortest_cycle(graph: grimp.ImportGraph, group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module, as the list of modules in it."""
    start = min(group)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for successor in sorted(graph.find_modules_directly_imported_by(module) & group):
            if successor == start:
                chain = [module]
                while chain[-1] != start:
                    chain.append(previous[chain[-1]])
                return [*reversed(chain), start]
            if successor not in previous:
                previous[successor] = module
                queue.append(successor)
    raise AssertionError(f"{start} is in a cycle but no path leads back to it")


def describe(graph: grimp.ImportGraph, cycles: Iterable[list[str]]) -> str:
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle))
        for importer, imported in zip(cycle, cycle[1:], strict=False):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(f"line {detail['line_number']}" for detail in details) or "?"
            lines.append(f"    {importer} imports {imported} ({where})")
    return "\n".join(lines)


def cycles_of(graph: grimp.ImportGraph) -> list[list[str]]:
    return sorted(shortest_cycle(graph, group) for group in strongly_connected(graph))


def test_no_module_of_relais_is_in_an_import_cycle() -> None:
    graph = grimp.build_graph(*root_packages(), cache_dir=None)
    assert len(graph.modules) > 100, "the graph should hold every module of Relais"
    cycles = cycles_of(graph)
    assert not cycles, "import cycles between modules:\n" + describe(graph, cycles)


def test_a_cycle_is_found_and_named_by_its_chain() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b", line_number=3, line_contents="from pkg import b")
    graph.add_import(importer="pkg.b", imported="pkg.c", line_number=4, line_contents="from pkg import c")
    graph.add_import(importer="pkg.c", imported="pkg.a", line_number=5, line_contents="from pkg import a")
    # A package and its own module count as well (siblings-only checks miss this one).
    graph.add_import(importer="pkg", imported="pkg.d", line_number=1, line_contents="from pkg import d")
    graph.add_import(importer="pkg.d", imported="pkg", line_number=2, line_contents="import pkg")
    graph.add_import(importer="pkg.a", imported="pkg.d", line_number=6, line_contents="from pkg import d")

    cycles = cycles_of(graph)

    assert cycles == [["pkg", "pkg.d", "pkg"], ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    assert "pkg.c imports pkg.a (line 5)" in describe(graph, cycles)
