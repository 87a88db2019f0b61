"""Loads the SQL kept in storage/sql/<dialect>/: named queries and numbered migrations."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
# A :name parameter, not the second colon of a ::cast.
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_MIGRATION = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def record(self) -> dict[str, Any]:
        """The row that says this migration was applied (and the fields its log line carries)."""
        return {
            "version": self.version,
            "migration": self.name,
            "name": self.name,
            "now": time.time(),
        }


@cache
def queries(dialect: str) -> dict[str, str]:
    """The portable queries (sql/queries.sql) and the dialect's own (sql/<dialect>/queries.sql)."""
    folder = resources.files("storage") / "sql"
    portable = _named(folder / "queries.sql")
    own = _named(folder / dialect / "queries.sql")
    if both := sorted(portable.keys() & own.keys()):
        raise ValueError(f"queries defined twice for {dialect}: {both}")
    return portable | own


def _named(path: Traversable) -> dict[str, str]:
    parts = _NAME.split(path.read_text())
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    folder = resources.files("storage") / "sql" / dialect / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return tuple(sorted(found, key=lambda migration: migration.version))


@cache
def positional(query: str) -> tuple[str, tuple[str, ...]]:
    """The query with :name parameters numbered $1, $2 … (for asyncpg), and the names in order;
    a name used twice gets one number."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAMETER.sub(number, query), tuple(names)
