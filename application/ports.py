"""What the application needs of its event store, as small ports (typing protocols).

The application speaks the eventsourcing library's *public* API (Application, Aggregate,
Recording, Notification, the repository and the event stores) and these ports; everything that
depends on the library's internals, its recorders or a database driver lives in
`dianabot.adapters.eventstore`, which implements them. So an upgrade of the library, or a new
store, touches that package alone.

How the application gets them: the library already picks the persistence factory named by the
`PERSISTENCE_MODULE` environment variable when an `Application` is constructed, and the
composition root (`adapters/bootstrap.py`, through `adapters/eventstore/database.py`) names one
of the event store package's factories there. Those factories also implement `StoreFactory`
below, so `DianaApplication(env)` keeps working wherever `env` comes from a `Database`, without
the application importing anything of the adapters. A factory that does not implement it (the
library's own `eventsourcing.popo`, say) is refused with a message naming the right ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    Mapper,
    Notification,
    Recording,
    StoredEvent,
    Tracking,
)


class Write:
    """One transaction: the events of one or more aggregates, those aggregates (cached and
    snapshotted once the transaction commits), an optional tracking record written with them,
    and, once encoded, the store's rows (`stored_events`, so the writer thread need not encode).
    """

    __slots__ = ("events", "aggregates", "tracking", "stored_events")

    def __init__(self, tracking: Tracking | None = None) -> None:
        self.events: list[Any] = []
        self.aggregates: dict[UUID, Any] = {}
        self.tracking = tracking
        self.stored_events: list[StoredEvent] | None = None


"""Waits for a transaction begun earlier; returns its recordings or raises what failed it."""

AfterCommit = Callable[[Write], None]
"""Told every transaction that committed, before its recordings are handed out."""


class EventWriter(Protocol):
    """Writes transactions: the one way events reach the store."""

    def encode(self, write: Write) -> None:
        """Turn the write's events into the store's rows now (in the commanding thread)."""

    def record(self, write: Write) -> list[Recording[UUID]]:
        """Write the events and the tracking record (if any) in one transaction, atomically:
        a version conflict raises `IntegrityError` and writes nothing. Returns one recording
        per event, with gap-free increasing positions in the order of `write.events`."""
        ...

    def replace_broken_connections(self) -> None:
        """Test pooled connections and replace the dead ones (a no-op without a pool)."""


class NotificationScanner(Protocol):
    """Reads the notification log for a use case that needs every event of some kinds."""

    def scan(self, event_classes: Sequence[type], start: int = 1) -> Iterator[Notification]:
        """The notifications of events of these classes from position `start` on, in order
        (including those stored under older topics of the same classes)."""
        ...


class SubscriberPositions(Protocol):
    """Several subscribers' positions (their tracking records) at once: the policies read and
    move all of theirs at every step."""

    def read(self, names: Sequence[str]) -> dict[str, int]:
        """Their positions (0 before any)."""
        ...

    def advance(self, positions: Mapping[str, int]) -> set[str]:
        """Move each to its position, each on its own (a position can only grow); the names
        that moved (the others were there or past it already)."""
        ...


@runtime_checkable
class StoreFactory(Protocol):
    """What the persistence factory named by `PERSISTENCE_MODULE` provides besides the
    library's recorders (see the module docstring)."""

    def repository(self, built: Repository[UUID]) -> Repository[UUID]:
        """The repository the application loads aggregates with, given the library's."""
        ...

    def event_writer(
        self, recorder: ApplicationRecorder, mapper: Mapper[UUID], after_commit: AfterCommit
    ) -> EventWriter:
        """The writer of the application's transactions into `recorder`."""
        ...

    def notification_scanner(self, recorder: ApplicationRecorder) -> NotificationScanner:
        """The reader of `recorder`'s notification log by event class."""
        ...

    def subscriber_positions(self, recorder: ApplicationRecorder) -> SubscriberPositions:
        """Several subscribers' positions (tracking records in `recorder`), read and moved at
        once."""
        ...

    def personal_data(self, snapshots: AggregateRecorder | None) -> PersonalDataStore:
        """The store's personal data keys, given the snapshot recorder (None: no snapshots)."""
        ...


class PersonalDataStore(Protocol):
    """Where personal data is kept encrypted (`adapters/eventstore/personal.py`): forgetting a
    user destroys their key, so every stored copy of their personal data reads as erased."""

    def erase(self, subject: str, aggregate_ids: Sequence[UUID]) -> Any:
        """Destroy `subject`'s keys, remember the subject as forgotten (its legacy plain text
        is masked when read), and delete the stored snapshots of `aggregate_ids` (they are
        replayed from the events). Idempotent. Returns a report (`keys_deleted`,
        `snapshots_deleted`)."""
        ...


class IncidentLog(Protocol):
    """What the system has recorded about its own trouble, as the read side keeps it: events
    the policies parked, and the outcome of the last full reconciliation. The coordinator's
    `health()` reads it; `projections` implements it (a read model of those events)."""

    def parked_counts(self) -> dict[str, int]:
        """Parked events not resolved yet, by policy name (policies with none are absent)."""
        ...

    def last_reconciliation(self) -> dict[str, Any] | None:
        """The last full reconciliation's summary (None if none ran): `at` (ISO time),
        `position`, `consistent`, `differences`, `checks` ({check name: count})."""
        ...


@dataclass(frozen=True)
class ConsistencyOutcome:
    """One user's read models compared with a replay of their history (`ConsistencyChecker`)."""

    telegram_id: int
    consistent: bool
    differences: int
    """How many problems the comparison found (0 when consistent)."""
    position: int
    """The log position the comparison was made at."""
    problems: tuple[str, ...] = ()
    """A few of the problems, one line each (check, read model, row: detail)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "telegram_id": self.telegram_id,
            "consistent": self.consistent,
            "differences": self.differences,
            "position": self.position,
            "problems": list(self.problems),
        }


class ConsistencyChecker(Protocol):
    """Checks one user's read models against a replay of their history (the per-user
    reconciliation of the read side, which implements it). Reads only: repairs are
    `dianabot reconcile --user ID --fix`."""

    def check(self, telegram_id: int) -> ConsistencyOutcome:
        """The comparison's outcome for this user (consistent with 0 differences for a user
        without history)."""
        ...
