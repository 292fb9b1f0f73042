"""What every projector is: a fold of decoded domain events into rows of its own tables.

Why folds into cached rows rather than SQL per event: a projector reads its rows once, changes
them in memory for a whole batch of events, and the runner writes every changed row with one
set-based upsert per table, in the same transaction as the projector's new position. That is
what makes a rebuild of a million events take seconds, and a batch idempotent: rows and position
commit together or not at all.

Projectors dispatch on the event class's *name* (`on_PointsAwarded`), the contract of the
history (DOMAIN.md section 3), so they do not depend on which module defines an event.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, ClassVar
from uuid import UUID

from dianabot.projections.schema import TABLES, TableSet
from sqlalchemy import Connection, Table, Uuid, select, tuple_

Row = dict[str, Any]
Handler = Callable[[Any, int], None]
Loader = Callable[[Table, tuple[str, ...], list[tuple[Any, ...]]], list[Row]]

MAX_KEYS_PER_SELECT = 500
_UNKNOWN: Any = object()


class Rows:
    """The rows of one table a projector works on: cached by key, changed in place, flushed.

    `complete` means the cache knows every row of the table (it started empty, at position 0),
    so a key not in the cache is a row that does not exist and nothing needs reading.
    """

    def __init__(self, base: str, table: Table, loader: Loader | None) -> None:
        self.base = base
        self.table = table
        self.key_columns: tuple[str, ...] = TABLES[base].key
        # Cache keys use `uuid.int` for UUID columns: hashing a UUID object runs Python code, an
        # int hashes in C, and a rebuild looks rows up millions of times.
        self._uuid_parts = tuple(isinstance(table.c[c].type, Uuid) for c in self.key_columns)
        self._loader = loader
        self._rows: dict[Hashable, Row | None] = {}
        self._dirty: set[Hashable] = set()
        self._new: set[Hashable] = set()
        """Dirty keys known not to be in the database: plain inserts, no conflict handling."""
        self.complete = loader is None

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: Hashable) -> Row | None:
        """The row (a dict to change in place, then `touch`), or None if there is none.

        Keys are cache keys: the primary key's value, a UUID as its `.int` (a tuple for a
        composite key: `("all", player.int)`).
        """
        row: Row | None = self._rows.get(key, _UNKNOWN)
        if row is not _UNKNOWN:
            return row
        if self.complete or self._loader is None:
            return None
        self.load([key])
        return self._rows.get(key)

    def put(self, key: Hashable, row: Row) -> Row:
        """Set the whole row of this key (created, or replaced)."""
        known = self._rows.get(key, _UNKNOWN)
        if known is None or (known is _UNKNOWN and self.complete):
            self._new.add(key)
        self._rows[key] = row
        self._dirty.add(key)
        return row

    def touch(self, key: Hashable) -> None:
        self._dirty.add(key)

    def load(self, keys: Iterable[Hashable]) -> None:
        """Read the rows of these keys that are not cached yet (absent ones are remembered)."""
        if self.complete or self._loader is None:
            return
        missing = [k for k in set(keys) if k not in self._rows]
        for start in range(0, len(missing), MAX_KEYS_PER_SELECT):
            chunk = missing[start : start + MAX_KEYS_PER_SELECT]
            wanted = [self._db_key(k) for k in chunk]
            found = {
                self.key_of(row): row for row in self._loader(self.table, self.key_columns, wanted)
            }
            for key in chunk:
                self._rows[key] = found.get(key)

    def key_of(self, row: Row) -> Hashable:
        """The cache key of a row."""
        parts = tuple(
            row[c].int if is_uuid else row[c]
            for c, is_uuid in zip(self.key_columns, self._uuid_parts, strict=True)
        )
        return parts[0] if len(parts) == 1 else parts

    def _db_key(self, key: Hashable) -> tuple[Any, ...]:
        parts = key if isinstance(key, tuple) else (key,)
        return tuple(
            UUID(int=p) if is_uuid else p
            for p, is_uuid in zip(parts, self._uuid_parts, strict=True)
        )

    def changed(self) -> tuple[list[Row], list[Row]]:
        """Rows changed since the last flush: (new rows to insert, others to upsert)."""
        rows, new = self._rows, self._new
        inserts = [rows[k] for k in self._dirty if k in new]
        upserts = [rows[k] for k in self._dirty if k not in new]
        return [r for r in inserts if r is not None], [r for r in upserts if r is not None]

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def flushed(self) -> None:
        self._dirty.clear()
        self._new.clear()

    def reset(self, *, complete: bool = False) -> None:
        """Forget everything (after a failed write, or when someone else changed the table)."""
        self._rows.clear()
        self._dirty.clear()
        self._new.clear()
        self.complete = complete or self._loader is None

    def trim(self, max_rows: int) -> None:
        """Bound memory: drop the cache when it grew too big (it is reloaded on demand)."""
        if len(self._rows) > max_rows and not self._dirty:
            self._rows.clear()
            self.complete = self._loader is None

    def snapshot(self) -> dict[Hashable, Row]:
        """Every cached row that exists, keyed like `rows_by_key` (for in-memory replays, where
        the cache is the table)."""
        return rows_by_key((v for v in self._rows.values() if v is not None), self.key_columns)


class Projector:
    """Base of the read models. Subclasses set `name`, `tables`, and write `on_<Event>` methods.

    Handlers take the decoded event and its position in the notification log. They only change
    rows through `self.rows[base]` (get / put / touch), never the database: the runner decides
    when rows are written. Handlers must not fail on any history the domain can produce; when
    one does raise, the runner stops this projector at that event and reports it.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    version: ClassVar[int] = 1
    """Bump when the tables' shape or meaning changes: a rebuild is then needed."""

    _handler_names: ClassVar[dict[str, str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handler_names = {
            attr[3:]: attr for attr in dir(cls) if attr.startswith("on_") and attr[3:4].isupper()
        }

    def __init__(self, tables: TableSet, loader: Loader | None = None) -> None:
        self.tableset = tables
        self.rows: dict[str, Rows] = {
            base: Rows(base, tables[base], loader) for base in self.tables
        }
        self.handlers: dict[str, Handler] = {
            event_name: getattr(self, attr) for event_name, attr in self._handler_names.items()
        }

    @classmethod
    def event_names(cls) -> frozenset[str]:
        return frozenset(cls._handler_names)

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        """Load, in a few queries, the rows this page of events will touch (optional)."""

    def reset(self, *, complete: bool = False) -> None:
        for rows in self.rows.values():
            rows.reset(complete=complete)

    def trim(self, max_rows: int) -> None:
        for rows in self.rows.values():
            rows.trim(max_rows)

    def changed_rows(self) -> dict[str, tuple[list[Row], list[Row]]]:
        """Per table: (new rows, changed existing rows) since the last flush."""
        return {base: rows.changed() for base, rows in self.rows.items()}

    def dirty(self) -> int:
        return sum(rows.dirty for rows in self.rows.values())

    def flushed(self) -> None:
        for rows in self.rows.values():
            rows.flushed()


def sql_loader(connection_factory: Callable[[], Connection]) -> Loader:
    """A loader reading rows by key through whatever connection the runner currently holds."""

    def load(table: Table, key: tuple[str, ...], keys: list[tuple[Any, ...]]) -> list[Row]:
        conn = connection_factory()
        if len(key) == 1:
            statement = select(table).where(table.c[key[0]].in_([k[0] for k in keys]))
        else:
            statement = select(table).where(tuple_(*(table.c[k] for k in key)).in_(keys))
        return [dict(row) for row in conn.execute(statement).mappings()]

    return load


class PerPlayerProjector(Projector):
    """A read model with one row per originator (a player) in its first table, keyed by the
    originator id, created from `new_row` at the first event that touches it."""

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        rows = self.rows[self.tables[0]]
        if not rows.complete:
            rows.load(originator_keys(events, self.handlers))

    def new_row(self, originator_id: UUID) -> dict[str, Any]:
        raise NotImplementedError

    def _row(self, event: Any) -> Row:
        rows = self.rows[self.tables[0]]
        key = event.originator_id.int
        row = rows.get(key)
        if row is None:
            return rows.put(key, self.new_row(event.originator_id))
        rows.touch(key)
        return row


def originator_keys(events: list[tuple[int, str, Any]], names: Iterable[str]) -> set[Hashable]:
    """Cache keys (`uuid.int`) of the originators of the events with these names (most tables
    are keyed by the stream their events come from)."""
    wanted = set(names)
    return {event.originator_id.int for _, name, event in events if name in wanted}


def rows_by_key(rows: Iterable[Mapping[Any, Any]], key: tuple[str, ...]) -> dict[Hashable, Row]:
    if len(key) == 1:
        return {row[key[0]]: dict(row) for row in rows}
    return {tuple(row[k] for k in key): dict(row) for row in rows}
