"""What the read side needs of the event store and of the application, as small ports.

Projections read one ordered notification log and fold it; they never touch a recorder, a
driver or the library's internals. `dianabot.adapters.eventstore.log` implements `EventLog`
(and `adapters/eventstore/wakers.py` the `Waker`s) for PostgreSQL, SQLite and the in-memory
store; the composition root (`adapters/bootstrap.py`) builds one and hands it to `Projections`.
`tests/integration/test_eventlog_contract.py` runs every implementation against the same
expectations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from dianabot.application.clock import Clock
from dianabot.application.repairs import RepairCommands


class StoredRow(Protocol):
    """One event as stored: what `EventLog.decode` turns into a domain event."""

    @property
    def originator_id(self) -> UUID | str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


class LoggedRow(StoredRow, Protocol):
    """One notification: a stored event and its position in the log."""

    @property
    def id(self) -> int: ...


class EventLog(Protocol):
    """The application's notification log, read in pages and decoded once per event."""

    def head(self) -> int:
        """The last position in the log (0 when empty)."""
        ...

    def pages(self, after: int, upto: int, page_size: int) -> Iterator[Sequence[LoggedRow]]:
        """Notifications after `after` up to `upto` inclusive, at most `page_size` a page, in
        order. A short page means everything up to `upto` has been read (a position that was
        not returned does not exist: a rolled-back insert leaves a gap)."""
        ...

    def streams(self, originator_ids: Iterable[UUID], upto: int) -> list[LoggedRow]:
        """The notifications of these streams up to position `upto`, in log order."""
        ...

    def stream(self, originator_id: UUID) -> Sequence[StoredRow]:
        """Every stored event of one stream, in version order."""
        ...

    def stream_head(self, originator_id: UUID) -> int:
        """The last version of one stream (0 when it has none)."""
        ...

    def name_of(self, topic: str) -> str:
        """The event class's name for a topic: what projectors dispatch on (cached)."""
        ...

    def decode(self, row: StoredRow) -> Any:
        """The domain event a stored row holds (upcast to the current class version)."""
        ...

    def waker(self) -> Waker:
        """A new waker for this log (the caller closes it)."""
        ...


class Waker(Protocol):
    """Tells a waiting loop that new events may exist: pushed by the store where it can
    (PostgreSQL LISTEN/NOTIFY, the in-memory store's signal), by polling otherwise (SQLite)."""

    def wait(self, timeout: float) -> None:
        """Return when new events may exist, `wake()` was called, or after `timeout` s."""
        ...

    def wake(self) -> None:
        """Make the current or next `wait` return now (stop, or a nudge)."""
        ...

    def patience(self, poll_interval: float) -> float:
        """How long a wait may last when nothing else is due: long while pushes arrive (a
        safety poll), `poll_interval` when the store cannot push (or its push is down)."""
        ...

    def close(self) -> None:
        """Stop listening; a waiting `wait` returns."""
        ...


@runtime_checkable
class ReadSideApp(RepairCommands, Protocol):
    """What the read side needs of the application: its clock (reconciliation's `now`) and
    the repair commands reconciliation's `--fix` issues (`application.repairs`)."""

    @property
    def clock(self) -> Clock: ...
