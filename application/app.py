"""The Diana application: one eventsourcing Application, one event store, one notification log.

Why one Application and not one per bounded context: every read model, policy, reconciliation and
audit works from one ordered history, so "the state at position P" means one thing. The bounded
contexts stay separate in code: their commands (`commands.py`) are handled per context
(`handlers/`), each handler shaped get -> decide -> save, and run by the one bus (`bus.py`).

The event store's machinery (recorders, the stored format, how a transaction is written) is not
here but behind the ports of `application.ports`, which the persistence factory named by
`PERSISTENCE_MODULE` provides (see that module for why and how).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from copy import deepcopy
from typing import Any
from uuid import UUID

from dianabot.application.breaker import StoreBreaker
from dianabot.application.bus import CommandBus
from dianabot.application.clock import Clock, SystemClock
from dianabot.application.commands import Command
from dianabot.application.corruption import CorruptHistory
from dianabot.application.group_commit import DirectWriter, GroupCommitWriter
from dianabot.application.plans import Handler
from dianabot.application.ports import (
    EventWriter,
    NotificationScanner,
    PersonalDataStore,
    StoreFactory,
    Write,
)
from dianabot.application.results import CONSOLE_ADMIN_ID
from dianabot.application.snapshotting import BackgroundSnapshots, InlineSnapshots
from dianabot.domain.badge import Badge, BadgeAward
from dianabot.domain.errors import UnknownBadge, UnknownPlayer
from dianabot.domain.ids import badge_award_id, badge_id, player_id
from dianabot.domain.incidents import Journal
from dianabot.domain.player import Player
from dianabot.domain.progress import StoryProgress
from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.domain import Aggregate, OriginatorIDError, OriginatorVersionError
from eventsourcing.persistence import (
    InfrastructureFactory,
    MapperDeserialisationError,
    Notification,
    Recording,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, TopicError

log = logging.getLogger(__name__)

__all__ = ["CONSOLE_ADMIN_ID", "CoreApplication"]


class CoreApplication(Application[UUID]):
    """Persistence, identity, loading and the writer; commands run on `self.bus` with the
    handlers the composed application names (`handlers`)."""

    handlers: Mapping[type[Command], Handler] = {}

    snapshotting_intervals = {Player: 20, StoryProgress: 100, Journal: 100}
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "10000",
        # Trust the cache: a stale copy (another process wrote) fails its save on the version
        # check, the command evicts it and retries, so correctness never depends on freshness.
        "AGGREGATE_CACHE_FASTFORWARD": "n",
    }

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock | None = None,
        admin_ids: Iterable[int] = (),
        group_commit: bool = False,
        max_batch: int = 32,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        self.admin_ids = frozenset(admin_ids)
        # With group commit, snapshots are written off the writer's critical path.
        self._snapshot_sink: InlineSnapshots | BackgroundSnapshots | None = None
        if self.snapshots is not None:
            put = self._put_snapshots
            self._snapshot_sink = BackgroundSnapshots(put) if group_commit else InlineSnapshots(put)
        # The store's writer writes each transaction; `_writer` decides when (group commit).
        events = self._store.event_writer(self.recorder, self.mapper, self._committed)
        self._event_writer: EventWriter = events
        self._notifications: NotificationScanner = self._store.notification_scanner(self.recorder)
        self._positions = self._store.subscriber_positions(self.recorder)
        # While the store is down, commands fail fast; its probe repairs the pool (`breaker`).
        self._breaker = StoreBreaker(events.replace_broken_connections)
        self._writer: DirectWriter | GroupCommitWriter = (
            GroupCommitWriter(self._record_guarded, max_batch, prepare=events.encode)
            if group_commit
            else DirectWriter(self._record_guarded, prepare=events.encode)
        )
        # A policy's command and its new position share a transaction of their own.
        self._tracked_writer = DirectWriter(self._record_guarded, prepare=events.encode)
        self.bus = CommandBus(self, self.handlers)

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        """The factory named by `PERSISTENCE_MODULE`, which must provide the event store's
        ports (`application.ports.StoreFactory`)."""
        factory = super().construct_factory(env)
        if not isinstance(factory, StoreFactory):
            factory.close()
            raise TypeError(
                f"PERSISTENCE_MODULE names {type(factory).__qualname__}, which does not provide "
                "the event store's ports: use a factory of dianabot.adapters.eventstore "
                "(dianabot.adapters.eventstore.database.database_from_url gives the environment)"
            )
        self._store: StoreFactory = factory
        return factory

    def construct_repository(self) -> Repository[UUID]:
        """The library's repository, configured from the environment as usual, made the event
        store's (which loads aggregates faster)."""
        return self._store.repository(super().construct_repository())

    def close(self) -> None:
        for part in (
            getattr(self, "_writer", None),
            getattr(self, "_snapshot_sink", None),
            getattr(self, "_breaker", None),
        ):
            if part is not None:
                part.close()
        super().close()

    @property
    def store_is_down(self) -> bool:
        """The store is known to be down (its breaker is open): refuse work at once."""
        return self._breaker.is_open

    def store_answers(self) -> bool:
        """Whether the event store can be written now: False while the breaker is open, or
        when its probe (which also replaces the pool's dead connections) fails. For callers
        that must not take work they could not record (the bot's long polling)."""
        if self._breaker.is_open:
            return False
        try:
            self._event_writer.replace_broken_connections()
        except Exception as error:
            log.info("event store does not answer: %s", error)
            return False
        return True

    def _put_snapshots(self, snapshots: Sequence[Any]) -> None:
        """Write snapshots, unless the store is known to be down (they are an optimisation:
        the next ones due will be taken)."""
        assert self.snapshots is not None
        if self._breaker.is_open:
            log.info("event store unavailable: %d snapshots not written", len(snapshots))
            return
        with self._breaker.guard():
            self.snapshots.put(snapshots)

    def flush_snapshots(self, timeout: float = 30.0) -> bool:
        """Wait until the snapshots due so far are written (they are written in the background
        with group commit); False on timeout."""
        return self._snapshot_sink is None or self._snapshot_sink.flush(timeout)

    # ----- writing: the one place events are written ----------------------------------------

    def record(self, write: Write) -> list[Recording[UUID]]:
        """Write one transaction's events (and its tracking record, if any), then the snapshots
        that became due (best effort)."""
        return self._event_writer.record(write)

    def _record_guarded(self, write: Write) -> list[Recording[UUID]]:
        """`record` for commands: refused at once while the store is known to be down, and a
        connection failure opens the breaker (so the writer's next batch does not wait too)."""
        with self._breaker.guard():
            return self._event_writer.record(write)

    # ----- subscribers' positions (policies): tracking records beside the events ----------------

    def subscriber_position(self, name: str) -> int:
        """The last notification the subscriber `name` has handled: its tracking record, which
        is written in the same transaction as the effects of its reactions (0 before any)."""
        recorder = self.recorder
        if not isinstance(recorder, TrackingRecorder):
            raise TypeError(f"{type(recorder).__name__} keeps no tracking records")
        with self._breaker.guard():
            return recorder.max_tracking_id(name) or 0

    def subscriber_positions(self, names: Sequence[str]) -> dict[str, int]:
        """Several subscribers' positions (`subscriber_position`), read together."""
        with self._breaker.guard():
            return self._positions.read(names)

    def advance_subscribers(self, positions: Mapping[str, int]) -> set[str]:
        """Several subscribers moved past notifications they had nothing to do for, each on its
        own (`advance_subscriber`), together; the names that moved."""
        with self._breaker.guard():
            return self._positions.advance(positions)

    def advance_subscriber(self, name: str, position: int) -> bool:
        """Move a subscriber past notifications it had nothing to do for (a transaction with
        no events). False if its position is already there (another process moved it)."""
        return name in self.advance_subscribers({name: position})

    def _committed(self, write: Write) -> None:
        """A transaction committed: cache the aggregates it saved (a stale copy of an aggregate
        another process wrote fails its next save on the version check), then snapshot those
        that became due."""
        cache = self.repository.cache
        if cache is not None and not self.repository.fastforward:
            for aggregate_id, aggregate in write.aggregates.items():
                cache.put(aggregate_id, aggregate)
        self._take_due_snapshots(write)

    def _take_due_snapshots(self, write: Write) -> None:
        """Snapshot every aggregate whose save crossed a multiple of its interval.

        A snapshot is taken from the aggregate just saved, whose state is exactly the replay of
        its committed events. (The library's own snapshotting re-reads up to `interval` events
        from the store for each one: milliseconds on the writer's critical path.) Readers follow
        the recorder's notification log, so the library's in-process notify hook is unused.
        """
        if self._snapshot_sink is None:
            return
        try:
            due: dict[UUID, Aggregate] = {}
            for event in write.events:
                aggregate = write.aggregates.get(event.originator_id)
                if aggregate is None:
                    continue
                interval = self.snapshotting_intervals.get(type(aggregate))
                if interval and event.originator_version % interval == 0:
                    due[event.originator_id] = aggregate
            if not due:
                return
            # The saved aggregates are never mutated again (the cache hands out copies), so a
            # snapshot taken now may be encoded and written later, on another thread.
            snapshots = []
            for aggregate in due.values():
                snapshot_class = getattr(type(aggregate), "Snapshot", self.snapshot_class)
                assert snapshot_class is not None  # a snapshot sink exists only with snapshots
                snapshots.append(snapshot_class.take(aggregate))
        except Exception:  # a snapshot is an optimisation; the events are already safe
            log.exception("snapshot failed after commit")
            return
        self._snapshot_sink.add(snapshots)

    def advance_cached(self, aggregate_id: UUID, version: int, event: Callable[[], Any]) -> None:
        """Bring the cached copy of an aggregate to `version`, the version of an event a reader
        of the log has just met (`event` decodes it, called only when needed): applied to a
        copy when the cached copy is the version just before, dropped when it is older still
        (loaded from the store next), left when it is as new or newer.

        The policies follow the log this way, so what they read of another process's streams
        stays cached and is never older than the event they react to, without a load per
        event. (A stale copy would not fail a save, since a policy's command saves other
        aggregates: it would decide wrongly.)"""
        cache = self.repository.cache
        if cache is None:
            return
        try:
            cached = cache.get(aggregate_id)
        except KeyError:
            return
        if cached.version >= version:
            return
        if cached.version == version - 1:
            try:  # a copy: the cached object may be in a snapshot still to be written
                cache.put(aggregate_id, event().mutate(deepcopy(cached)))
                return
            except Exception:  # noqa: BLE001 - loading it from the store decides instead
                log.debug("could not advance cached %s to v%s", aggregate_id, version)
        with contextlib.suppress(KeyError):
            cache.get(aggregate_id, evict=True)

    def evict_cached(self, aggregate_id: UUID) -> None:
        """Drop the cached copy of one aggregate, if any (it is loaded from the store next)."""
        cache = self.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def _forget(self, aggregates: Iterable[Aggregate]) -> None:
        """Drop cached copies that may be stale, so the retry loads from the store."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate in aggregates:
            with contextlib.suppress(KeyError):
                cache.get(aggregate.id, evict=True)

    @property
    def personal_data(self) -> PersonalDataStore:
        """The store's personal data keys and erasure (see `ports.PersonalDataStore`)."""
        found: PersonalDataStore | None = getattr(self, "_personal_data", None)
        if found is None:
            snapshots = self.snapshots.recorder if self.snapshots is not None else None
            found = self._personal_data = self._store.personal_data(snapshots)
        return found

    def is_admin(self, user_id: int) -> bool:
        """A configured admin (`DIANABOT_ADMIN_IDS`). The console's id 0 is not one: the
        console is trusted through its origin (`Origin.console`), not its number."""
        return user_id in self.admin_ids

    # ----- loading ----------------------------------------------------------------------------

    def scan_notifications(
        self, event_classes: Sequence[type], start: int = 1
    ) -> Iterator[Notification]:
        """The notifications of events of these classes from position `start` on, in order."""
        return self._notifications.scan(event_classes, start)

    def _load(self, aggregate_id: UUID) -> Any | None:
        """The aggregate, None if it has no events; `CorruptHistory` if its stored events
        cannot be replayed (undecodable, or a gap in its versions)."""
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        except _REPLAY_ERRORS as error:
            version, reason = self._first_unreadable(aggregate_id, error)
            raise CorruptHistory(aggregate_id, version, reason) from None

    def _first_unreadable(self, aggregate_id: UUID, error: Exception) -> tuple[int | None, str]:
        """Where a stream stops replaying (its first undecodable event, or the first version
        after a gap) and why: read again, event by event, only once loading has failed."""
        expected = 1
        try:
            for stored in self.recorder.select_events(aggregate_id):
                version = stored.originator_version
                try:
                    self.mapper.to_domain_event(stored)
                except Exception as undecodable:  # what loading met, now with its version
                    return version, f"undecodable event: {_first_line(undecodable)}"
                if version != expected:
                    return version, f"version {version} follows version {expected - 1}"
                expected += 1
        except Exception:  # the diagnosis is best effort: the error loading met says enough
            log.warning("could not locate the corruption in %s", aggregate_id, exc_info=True)
        return None, _first_line(error)

    def _player(self, telegram_id: int) -> Player:
        player: Player | None = (
            self._load(player_id(telegram_id)) if _is_telegram_id(telegram_id) else None
        )
        if player is None:
            raise UnknownPlayer(f"unknown user {telegram_id!r}", telegram_id=telegram_id)
        return player

    def _badge(self, slug: str) -> Badge:
        badge: Badge | None = self._load(badge_id(slug)) if isinstance(slug, str) else None
        if badge is None:
            raise UnknownBadge(f"unknown badge {slug!r}", slug=slug)
        return badge

    def get_player(self, telegram_id: int) -> Player | None:
        """The current Player aggregate (for callers of commands and tests; screens read models)."""
        return self._load(player_id(telegram_id)) if _is_telegram_id(telegram_id) else None

    def get_badge(self, slug: str) -> Badge | None:
        return self._load(badge_id(slug))

    def get_award(self, slug: str, telegram_id: int) -> BadgeAward | None:
        return self._load(badge_award_id(slug, telegram_id))

    def get_award_by_id(self, award_id: UUID) -> BadgeAward | None:
        return self._load(award_id)


_REPLAY_ERRORS = (MapperDeserialisationError, OriginatorVersionError, OriginatorIDError, TopicError)
"""What the library raises loading a stream whose stored history is corrupt."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_telegram_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
