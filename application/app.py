"""The Diana application: one eventsourcing Application, one event store, one notification log.

Why one Application and not one per bounded context: every read model, policy, reconciliation and
audit works from one ordered history, so "the state at position P" means one thing. The bounded
contexts stay separate in code: their commands (`commands.py`) are handled per context
(`handlers/`), each handler shaped get -> decide -> save, and run by the one bus (`bus.py`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

from dianabot.application.bus import CommandBus
from dianabot.application.clock import Clock, SystemClock
from dianabot.application.commands import Command
from dianabot.application.group_commit import DirectWriter, GroupCommitWriter, Write, recording_now
from dianabot.application.plans import Handler
from dianabot.application.snapshotting import BackgroundSnapshots, InlineSnapshots
from dianabot.application.transcoding import (
    FlatJSONTranscoder,
    GrowSetPacked,
    RecentKeysAsList,
    SetAsList,
)
from dianabot.domain.badge import Badge, BadgeAward
from dianabot.domain.errors import NotAuthorized, UnknownBadge, UnknownPlayer
from dianabot.domain.ids import badge_award_id, badge_id, player_id
from dianabot.domain.player import Player
from dianabot.domain.progress import StoryProgress
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    Notification,
    PersistenceError,
    Recording,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import TopicError, register_topic

log = logging.getLogger(__name__)

CONSOLE_ADMIN_ID = 0
"""The operator at the server's console (`dianabot admin ...`): trusted like a configured admin."""

NOTIFICATION_PAGE = 500


def _replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its per-event `isinstance` check against a
    runtime protocol, which costs ~15 µs an event on Python 3.11 (a third of a snapshot load)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class LeanRepository(Repository[UUID]):
    """The library's repository, replaying with `_replay` unless told otherwise."""

    def get(self, aggregate_id: UUID, **kwargs: Any) -> Any:
        kwargs.setdefault("projector_func", _replay)
        return super().get(aggregate_id, **kwargs)


class CoreApplication(Application[UUID]):
    """Persistence, identity, loading and the writer; commands run on `self.bus` with the
    handlers the composed application names (`handlers`)."""

    handlers: Mapping[type[Command], Handler] = {}

    snapshotting_intervals: dict[type[Any], int] = {Player: 20, StoryProgress: 100}
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
        self._writer: DirectWriter | GroupCommitWriter = (
            GroupCommitWriter(self.record, max_batch, prepare=self.encode, begin=self.begin_record)
            if group_commit
            else DirectWriter(self.record, prepare=self.encode)
        )
        self.bus = CommandBus(self, self.handlers)

    def construct_repository(self) -> Repository[UUID]:
        """The library's repository, configured from the environment as usual, as a
        `LeanRepository`."""
        repository = super().construct_repository()
        repository.__class__ = LeanRepository
        return repository

    def construct_transcoder(self) -> Transcoder:
        transcoder = super().construct_transcoder()
        if type(transcoder) is JSONTranscoder:  # the default: same output, faster when flat
            transcoder = FlatJSONTranscoder()
            self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(SetAsList())
        transcoder.register(GrowSetPacked())
        transcoder.register(RecentKeysAsList())

    def close(self) -> None:
        for part in (getattr(self, "_writer", None), getattr(self, "_snapshot_sink", None)):
            if part is not None:
                part.close()
        super().close()

    def _put_snapshots(self, snapshots: Sequence[Any]) -> None:
        assert self.snapshots is not None
        self.snapshots.put(snapshots)

    def flush_snapshots(self, timeout: float = 30.0) -> bool:
        """Wait until the snapshots due so far are written (they are written in the background
        with group commit); False on timeout."""
        return self._snapshot_sink is None or self._snapshot_sink.flush(timeout)

    # ----- writing: the one place events are written ----------------------------------------

    def record(self, processing: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Write one transaction's events, then the snapshots that became due (best effort)."""
        recordings = self._record_events(processing)
        self._take_due_snapshots(processing)
        return recordings

    def begin_record(self, write: Write) -> Callable[[], list[Recording[UUID]]]:
        """Start writing a transaction; the returned function waits for it and then does what
        `record` does after the insert (cache, snapshots), returning the recordings.

        With PostgreSQL the rows are sent without waiting, so the group-commit writer decides
        its next batch while the database commits this one. Elsewhere the write happens now."""
        stored = write.stored_events
        begin = getattr(self.recorder, "begin_insert_events", None)
        if stored is None or begin is None or write.tracking is not None:
            return recording_now(self.record)(write)
        positions_when_done = begin(stored)

        def outcome() -> list[Recording[UUID]]:
            recordings = self._recorded(write, stored, positions_when_done())
            self._take_due_snapshots(write)
            return recordings

        return outcome

    def encode(self, write: Write) -> None:
        """Turn a write's events into stored rows (run in the commanding thread)."""
        to_stored_event = self.mapper.to_stored_event
        write.stored_events = [to_stored_event(event) for event in write.events]

    def _record_events(self, processing: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Write one transaction's events and cache the aggregates just saved.

        What the library's `Application._record` does, except that events a `Write` carries
        already encoded are not encoded again.
        """
        stored = getattr(processing, "stored_events", None)
        if stored is None:
            return self._record(processing)
        positions = self.recorder.insert_events(stored, tracking=processing.tracking)
        return self._recorded(processing, stored, positions)

    def _recorded(
        self,
        processing: ProcessingEvent[UUID],
        stored: Sequence[StoredEvent],
        positions: Sequence[int] | None,
    ) -> list[Recording[UUID]]:
        """The recordings of events just inserted at `positions`; their aggregates cached."""
        if positions is None or len(positions) != len(stored):
            raise PersistenceError("the recorder did not return a position for every event")
        recordings = [
            Recording(
                event,
                Notification(
                    originator_id=row.originator_id,
                    originator_version=row.originator_version,
                    topic=row.topic,
                    state=row.state,
                    id=position,
                ),
            )
            for event, row, position in zip(processing.events, stored, positions, strict=True)
        ]
        cache = self.repository.cache
        if cache is not None and not self.repository.fastforward:
            for aggregate_id, aggregate in processing.aggregates.items():
                cache.put(aggregate_id, aggregate)
        return recordings

    def _take_due_snapshots(self, processing: ProcessingEvent[UUID]) -> None:
        """Snapshot every aggregate whose save crossed a multiple of its interval.

        A snapshot is taken from the aggregate just saved, whose state is exactly the replay of
        its committed events. (The library's `_take_snapshots` re-reads up to `interval` events
        from the store for each one: milliseconds on the writer's critical path.) Readers follow
        the recorder's notification log, so the library's in-process `_notify` hook is unused.
        """
        if self._snapshot_sink is None:
            return
        try:
            due: dict[UUID, Aggregate] = {}
            for event in processing.events:
                aggregate = processing.aggregates.get(event.originator_id)
                interval = self.snapshotting_intervals.get(type(aggregate))
                if interval and event.originator_version % interval == 0:
                    due[event.originator_id] = aggregate
            if not due:
                return
            # The saved aggregates are never mutated again (the cache hands out copies), so a
            # snapshot taken now may be encoded and written later, on another thread.
            snapshots = [
                getattr(type(aggregate), "Snapshot", self.snapshot_class).take(aggregate)
                for aggregate in due.values()
            ]
        except Exception:  # a snapshot is an optimisation; the events are already safe
            log.exception("snapshot failed after commit")
            return
        self._snapshot_sink.add(snapshots)

    def _replace_broken_connections(self) -> None:
        """Test the pooled connections and replace the dead ones (PostgreSQL only)."""
        pool = getattr(getattr(self.recorder, "datastore", None), "pool", None)
        if pool is None:
            return
        try:
            pool.check()
        except Exception:  # the server may be down altogether: the retry will say so
            log.warning("could not check the connection pool", exc_info=True)

    def _forget(self, aggregates: Iterable[Aggregate]) -> None:
        """Drop cached copies that may be stale, so the retry loads from the store."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate in aggregates:
            with contextlib.suppress(KeyError):
                cache.get(aggregate.id, evict=True)

    def is_admin(self, user_id: int) -> bool:
        return user_id == CONSOLE_ADMIN_ID or user_id in self.admin_ids

    def _require_admin(self, user_id: int) -> None:
        if not self.is_admin(user_id):
            raise NotAuthorized(f"user {user_id} is not an admin", admin_id=user_id)

    # ----- loading ----------------------------------------------------------------------------

    def scan_notifications(self, topics: list[str], start: int = 1) -> Iterator[Notification]:
        """The notifications with these topics from position `start` on, read page by page
        (events stored before the `dianabot.` namespace under their older topics too)."""
        topics = [*topics, *(legacy_topic(t) for t in topics if legacy_topic(t) != t)]
        position = start
        while True:
            page = self.recorder.select_notifications(position, NOTIFICATION_PAGE, topics=topics)
            yield from page
            if len(page) < NOTIFICATION_PAGE:
                return
            position = page[-1].id + 1

    def _load(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _player(self, telegram_id: int) -> Player:
        player = self._load(player_id(telegram_id)) if _is_telegram_id(telegram_id) else None
        if player is None:
            raise UnknownPlayer(f"unknown user {telegram_id!r}", telegram_id=telegram_id)
        return player

    def _badge(self, slug: str) -> Badge:
        badge = self._load(badge_id(slug)) if isinstance(slug, str) else None
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


LEGACY_PACKAGES = ("domain", "application", "projections", "adapters", "content")
"""Top-level names the layers were imported as before they became `dianabot.*` subpackages."""


def register_legacy_topics() -> None:
    """Resolve topics stored under the old top-level names (`domain.player:Player...`) to the
    same classes: events are never rewritten, so their stored topics must keep resolving."""
    for name in LEGACY_PACKAGES:
        with contextlib.suppress(TopicError):  # registered already
            register_topic(name, importlib.import_module(f"dianabot.{name}"))


def legacy_topic(topic: str) -> str:
    """The topic an event class had before the `dianabot.` namespace."""
    return topic.removeprefix("dianabot.")


register_legacy_topics()


def _is_telegram_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
