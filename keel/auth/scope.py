"""`Scope`: which rows of one resource a caller may touch, as SQL every read path ANDs in."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from keel.auth.filters import Filter, filter_sql, matches
from keel.storage.queries.base import Dialect

if TYPE_CHECKING:
    from keel.storage.tx import Tx


@dataclasses.dataclass(frozen=True)
class Scope:
    """An organisation boundary and the metadata filters of the caller's handlers (ANDed).

    `bound`: organisations are on (built-in auth); a row is visible only when its `org` column
    equals `org` (NULL when the caller has no organisation). `shared`: rows without an org
    (system assistants) are visible too. `filters`: what `@auth.on` handlers returned."""

    bound: bool = False
    org: str | None = None
    filters: tuple[Filter, ...] = ()
    shared: bool = False

    @property
    def unrestricted(self) -> bool:
        return not self.bound and not self.filters

    def narrowed(self, *filters: Filter) -> Scope:
        return dataclasses.replace(self, filters=(*self.filters, *filters))

    def where(self, dialect: Dialect, table: str = "") -> tuple[str, list[Any]]:
        """SQL (and its parameters) true for the rows in scope; `table` qualifies the columns."""
        prefix = f"{table}." if table else ""
        clauses: list[str] = []
        params: list[Any] = []
        if self.bound:
            shared = f" OR {prefix}org IS NULL" if self.shared else ""
            if self.org is None:
                clauses.append(f"{prefix}org IS NULL")
            else:
                clauses.append(f"({prefix}org = ?{shared})")
                params.append(self.org)
        for filt in self.filters:
            sql, p = filter_sql(dialect, f"{prefix}metadata", filt)
            clauses.append(sql)
            params.extend(p)
        return (" AND ".join(clauses) or "1=1"), params

    async def covers(self, tx: Tx, table: str, ident: str) -> bool:
        """Whether row `ident` of `table` is in scope: always when unrestricted (nothing is
        read), else when it exists and satisfies `where` (one query)."""
        return self.unrestricted or await tx.in_scope(table, ident, *self.where(tx.dialect))

    def admits(self, row: dict[str, Any]) -> bool:
        """The same test in Python, for a row already read (`org` and `metadata` columns)."""
        if self.bound:
            org = row.get("org")
            if org != self.org and not (self.shared and org is None):
                return False
        return all(matches(row.get("metadata") or {}, f) for f in self.filters)


EVERYTHING = Scope()
