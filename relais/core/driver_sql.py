"""A compiled statement as its database driver takes it: the SQL text and the binding of values.

Where SQLAlchemy's execution of a statement costs more than the statement itself (the hottest
reads, done on the event loop, ``relais.core.loop_reads``; the journal's inserts,
``audit.journal``), the statement is compiled once and run by the driver. Its values are still
converted as SQLAlchemy would: by the bind processor of each parameter's type for that dialect
(dates as SQLite's text, JSON serialised, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class DriverStatement:
    sql: str
    # The parameters' names: in their order for a positional dialect (SQLite's ``?``).
    names: tuple[str, ...]
    positional: bool
    # Each parameter's conversion, where its type has one for the dialect.
    binders: Mapping[str, Processor]

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for ``values`` (by name: every parameter's value)."""
        binders = self.binders
        if self.positional:
            return tuple(binders[name](values[name]) if name in binders else values[name] for name in self.names)
        return {name: binders[name](values[name]) if name in binders else values[name] for name in self.names}


def driver_statement(compiled: SQLCompiler, dialect: Dialect) -> DriverStatement:
    # By the names the SQL text uses (an anonymous parameter's differs from its key).
    rendered = compiled.bind_names
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(dict.fromkeys(rendered.values()))
    binders = {}
    for bind, name in rendered.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binders[name] = process
    return DriverStatement(compiled.string, names, bool(compiled.positional), binders)
