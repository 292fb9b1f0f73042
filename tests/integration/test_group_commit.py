"""Group commit keeps every command's guarantees: nothing lost or doubled, per-user order, atomic
commands, and a conflict in one command of a batch never fails the others."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.group_commit import GroupCommitWriter, Write
from dianabot.application.results import CommandResult, Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.ids import player_id
from dianabot.domain.player import Player
from dianabot.domain.rules import PointSource
from eventsourcing.application import ProcessingEvent, Repository
from eventsourcing.persistence import IntegrityError, Recording

from tests.conftest import make_settings

THREADS = 16
COMMANDS_PER_THREAD = 50
USERS = 8


def _grouped(url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(url, group_commit=True), clock=clock) as wired:
        assert isinstance(wired.app._writer, GroupCommitWriter)
        yield wired


@pytest.fixture
def grouped(database_url: str, clock: ManualClock) -> Iterator[Services]:
    yield from _grouped(database_url, clock)


@pytest.fixture
def shared_grouped(shared_database_url: str, clock: ManualClock) -> Iterator[Services]:
    """On a store that a second application instance (another process) can share."""
    yield from _grouped(shared_database_url, clock)


def writer_of(app: DianaApplication) -> GroupCommitWriter:
    writer = app._writer
    assert isinstance(writer, GroupCommitWriter)
    return writer


def run_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException as error:  # surface worker failures in the test
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)


def register(app: DianaApplication, users: range) -> None:
    for user in users:
        assert app.register_player(user, f"user {user}", Origin.system("test", str(user))).ok


def award(app: DianaApplication, user: int, amount: int, reference: str, update: int) -> Any:
    return app.award_points(
        user, PointSource.STORY, amount, reference, Origin.system("test", f"{update}")
    )


def stored_awards(app: DianaApplication) -> list[Any]:
    """Every PointsAwarded in the log, decoded, in log order."""
    notifications = app.recorder.select_notifications(1, 1_000_000)
    return [
        app.mapper.to_domain_event(n) for n in notifications if n.topic.endswith(".PointsAwarded")
    ]


def test_many_threads_lose_nothing_and_double_nothing(grouped: Services) -> None:
    app = grouped.app
    users = range(1, USERS + 1)
    register(app, users)
    writer = writer_of(app)
    commands_before, batches_before = writer.commands, writer.batches
    expected: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def work(thread: int) -> None:
        for n in range(COMMANDS_PER_THREAD):
            user = (thread + n) % USERS + 1  # threads share users: per-user locks are exercised
            amount = 1 + (thread * 7 + n) % 5
            result = award(app, user, amount, f"t{thread}:n{n}", thread * 1_000 + n)
            with lock:
                outcomes[result.outcome] += 1
                if result.ok:
                    expected[user] += amount

    run_threads(THREADS, work)

    total = THREADS * COMMANDS_PER_THREAD
    assert outcomes == {"ok": total}
    assert writer.commands - commands_before == total
    batches = writer.batches - batches_before
    assert batches < total, "commands were never committed together"
    awarded = stored_awards(app)
    assert len(awarded) == total
    assert len({event.reference for event in awarded}) == total
    store = Repository(app.events, snapshot_store=app.snapshots)  # reads the store, no cache
    for user in users:
        player = store.get(player_id(user))
        assert player.balance == expected[user]
        assert player.lifetime_earned == expected[user]


def test_one_users_commands_keep_their_order(grouped: Services) -> None:
    """Each thread's awards to a user appear in that user's history, and in the global log, in
    the order the thread ran them; a user's versions have no gaps."""
    app = grouped.app
    users = range(1, 5)
    register(app, users)

    def work(thread: int) -> None:
        user = thread % len(users) + 1
        for n in range(40):
            assert award(app, user, 1, f"t{thread}:{n:03d}", thread * 1_000 + n).ok

    run_threads(12, work)

    for user in users:
        events = list(app.events.get(player_id(user)))
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
        by_thread: dict[str, list[int]] = {}
        for event in events:
            if type(event).__name__ == "PointsAwarded":
                thread, n = event.reference.split(":")
                by_thread.setdefault(thread, []).append(int(n))
        assert by_thread, "no awards recorded"
        for sequence in by_thread.values():
            assert sequence == list(range(40))
    positions: dict[str, list[int]] = {}
    for notification in app.recorder.select_notifications(1, 1_000_000):
        if notification.topic.endswith(".PointsAwarded"):
            event = app.mapper.to_domain_event(notification)
            thread, n = event.reference.split(":")
            positions.setdefault(thread, []).append(int(n))
    assert all(sequence == list(range(40)) for sequence in positions.values())


class GatedRecord:
    """Wraps a group-commit writer's `record`: holds the first write until released, and logs
    every write (which aggregates it carried and whether it failed on a conflict)."""

    def __init__(self, writer: GroupCommitWriter) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[set[UUID], str]] = []
        self._first = True
        record = writer._record

        def gated_record(write: Write) -> list[Recording[UUID]]:
            self._hold()
            return self._logged(write, lambda: record(write))

        writer._record = gated_record

    def _hold(self) -> None:
        if self._first:
            self._first = False
            self.entered.set()
            assert self.release.wait(timeout=30)

    def _log(self, processing: ProcessingEvent[UUID], outcome: str) -> None:
        self.calls.append(({event.originator_id for event in processing.events}, outcome))

    def _logged(
        self, processing: ProcessingEvent[UUID], write: Callable[[], list[Recording[UUID]]]
    ) -> list[Recording[UUID]]:
        try:
            recordings = write()
        except IntegrityError:
            self._log(processing, "conflict")
            raise
        self._log(processing, "ok")
        return recordings


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


def test_a_users_next_command_waits_for_the_previous_commit(grouped: Services) -> None:
    """While user 1's first command is being written, the second (from another thread) does not
    start; another user's command is not held up. The second lands after the first."""
    app = grouped.app
    register(app, range(1, 3))
    writer = writer_of(app)
    gate = GatedRecord(writer)
    results: dict[str, CommandResult] = {}

    def command(name: str, user: int, update: int) -> None:
        results[name] = award(app, user, 1, name, update)

    first = threading.Thread(target=command, args=("first", 1, 7_001))
    first.start()
    assert gate.entered.wait(timeout=10)
    second = threading.Thread(target=command, args=("second", 1, 7_002))
    other = threading.Thread(target=command, args=("other user", 2, 7_003))
    second.start()
    other.start()
    wait_until(lambda: len(writer._queue) == 1)  # the other user's command is queued...
    time.sleep(0.2)
    assert len(writer._queue) == 1 and "second" not in results  # ...user 1's second is not
    gate.release.set()
    for thread in (first, second, other):
        thread.join(timeout=30)

    assert {name: result.outcome for name, result in results.items()} == {
        "first": "ok",
        "second": "ok",
        "other user": "ok",
    }
    assert results["first"].events[0].version < results["second"].events[0].version
    assert results["first"].events[0].position < results["second"].events[0].position


def test_a_conflict_in_a_batch_fails_only_that_command(shared_grouped: Services) -> None:
    """Another instance writes user 1's next version behind this one's cache; user 1's command
    then conflicts inside a batch with users 2 and 3, which are recorded anyway, and user 1's
    command succeeds on its retry from fresh state."""
    grouped = shared_grouped
    app = grouped.app
    register(app, range(1, 5))
    other = DianaApplication(grouped.database.eventsourcing_env, clock=grouped.clock)
    try:
        assert award(other, 1, 100, "elsewhere", 900).ok  # app's cached user 1 is now stale
    finally:
        other.close()

    writer = writer_of(app)
    gate = GatedRecord(writer)
    results: dict[int, CommandResult] = {}

    def command(user: int) -> None:
        results[user] = award(app, user, user, f"batch:{user}", 1_000 + user)

    blocker = threading.Thread(target=command, args=(4,))
    blocker.start()
    assert gate.entered.wait(timeout=10)  # the writer is busy with user 4's commit
    batch = [threading.Thread(target=command, args=(user,)) for user in (1, 2, 3)]
    for thread in batch:
        thread.start()
    wait_until(lambda: len(writer._queue) == 3)  # all three wait for the same next batch
    gate.release.set()
    for thread in [blocker, *batch]:
        thread.join(timeout=30)

    assert {user: result.outcome for user, result in results.items()} == {
        1: "ok",
        2: "ok",
        3: "ok",
        4: "ok",
    }
    ids = {user: player_id(user) for user in range(1, 5)}
    together = {ids[1], ids[2], ids[3]}
    assert (together, "conflict") in gate.calls, gate.calls
    assert ({ids[1]}, "conflict") in gate.calls  # alone, user 1's stale version still conflicts
    assert ({ids[2]}, "ok") in gate.calls and ({ids[3]}, "ok") in gate.calls
    assert gate.calls[-1] == ({ids[1]}, "ok")  # the retry, from fresh state
    references = Counter(event.reference for event in stored_awards(app))
    assert references == {"elsewhere": 1, "batch:1": 1, "batch:2": 1, "batch:3": 1, "batch:4": 1}
    reader = DianaApplication(grouped.database.eventsourcing_env)
    try:
        balances = {user: reader.get_player(user).balance for user in range(1, 5)}
    finally:
        reader.close()
    assert balances == {1: 101, 2: 2, 3: 3, 4: 4}


def test_a_retried_command_keeps_its_place_before_the_users_next_one(
    shared_grouped: Services,
) -> None:
    """User 1's first command conflicts (stale cache) and is retried; the user's next command,
    already waiting, still lands after it."""
    grouped = shared_grouped
    app = grouped.app
    register(app, range(1, 2))
    other = DianaApplication(grouped.database.eventsourcing_env, clock=grouped.clock)
    try:
        assert award(other, 1, 100, "elsewhere", 8_000).ok
    finally:
        other.close()
    writer = writer_of(app)
    gate = GatedRecord(writer)
    results: dict[str, CommandResult] = {}

    def command(name: str, update: int) -> None:
        results[name] = award(app, 1, 1, name, update)

    first = threading.Thread(target=command, args=("first", 8_001))
    first.start()
    assert gate.entered.wait(timeout=10)  # first's stale attempt is about to be written
    second = threading.Thread(target=command, args=("second", 8_002))
    second.start()
    time.sleep(0.05)
    gate.release.set()
    for thread in (first, second):
        thread.join(timeout=30)

    assert results["first"].ok and results["second"].ok
    assert gate.calls[0] == ({player_id(1)}, "conflict")
    assert results["first"].events[0].version < results["second"].events[0].version
    assert [e.reference for e in stored_awards(app)] == ["elsewhere", "first", "second"]


def test_close_writes_what_is_queued_and_stops_the_writer(grouped: Services) -> None:
    app = grouped.app
    register(app, range(1, 4))
    writer = writer_of(app)
    gate = GatedRecord(writer)
    results: dict[int, CommandResult] = {}

    def command(user: int) -> None:
        results[user] = award(app, user, 5, f"closing:{user}", 2_000 + user)

    threads = [threading.Thread(target=command, args=(user,)) for user in (1, 2, 3)]
    threads[0].start()
    assert gate.entered.wait(timeout=10)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(writer._queue) == 2)
    closer = threading.Thread(target=writer.close)
    closer.start()
    gate.release.set()
    closer.join(timeout=30)
    for thread in threads:
        thread.join(timeout=30)

    assert not closer.is_alive() and writer.closed
    assert {user: result.outcome for user, result in results.items()} == {
        1: "ok",
        2: "ok",
        3: "ok",
    }
    assert sorted(e.reference for e in stored_awards(app)) == [
        "closing:1",
        "closing:2",
        "closing:3",
    ]
    with pytest.raises(RuntimeError, match="closed"):
        award(app, 1, 5, "too late", 3_000)
    writer.close()  # closing twice is harmless


def test_failure_of_a_batch_reaches_every_waiting_command() -> None:
    """A non-conflict failure (the store is down) is reported to each command in the batch."""
    release = threading.Event()
    calls = 0

    def record(processing: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            release.wait(timeout=10)
            return []
        raise ConnectionError("store down")

    writer = GroupCommitWriter(record, max_batch=8)

    outcomes: dict[str, str] = {}

    def commit(name: str) -> None:
        try:
            writer.commit([Pending(name)])
            outcomes[name] = "ok"
        except ConnectionError:
            outcomes[name] = "down"

    first = threading.Thread(target=commit, args=("first",))
    first.start()
    wait_until(lambda: calls == 1)
    others = [threading.Thread(target=commit, args=(name,)) for name in ("a", "b", "c")]
    for thread in others:
        thread.start()
    wait_until(lambda: len(writer._queue) == 3)
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=10)
    writer.close()
    assert outcomes == {"first": "ok", "a": "down", "b": "down", "c": "down"}
    assert calls == 2  # a, b and c went in one batch, which failed as a whole


class _Event:
    def __init__(self, originator_id: str) -> None:
        self.originator_id = originator_id


class Pending:
    """A stand-in aggregate with one pending event, for driving the writer directly."""

    def __init__(self, name: str) -> None:
        self.id = name

    def collect_events(self) -> list[Any]:
        return [_Event(self.id)]


def test_decisions_run_on_the_writer_thread_and_a_refusal_fails_only_its_command(
    grouped: Services,
) -> None:
    """Flat combining: the writer thread runs each queued command's decision. A command refused
    by the domain (already reacted) gets its typed refusal; the others of the batch commit."""
    app = grouped.app
    register(app, range(1, 5))
    assert app.react(1, "chan:9", "❤️", Origin.telegram(50, 1)).ok
    threads_seen: set[str] = set()
    original = app._player

    def spying(telegram_id: int) -> Any:
        threads_seen.add(threading.current_thread().name)
        return original(telegram_id)

    app._player = spying  # type: ignore[method-assign]
    results: dict[int, CommandResult] = {}

    def command(user: int) -> None:
        results[user] = app.react(user, "chan:9", "❤️", Origin.telegram(60 + user, user))

    run_threads(4, lambda index: command(index + 1))

    assert threads_seen == {"group-commit"}
    assert results[1].outcome == "already_reacted" and not results[1].events
    assert all(results[user].ok for user in (2, 3, 4))
    assert [app.get_player(user).balance for user in range(1, 5)] == [10, 10, 10, 10]


def test_a_decision_that_issues_a_command_runs_it_inline() -> None:
    """No command does this today; if one does, it must not wait for the writer it runs on."""
    recorded: list[list[str]] = []

    def record(processing: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        recorded.append([event.originator_id for event in processing.events])
        return []

    writer = GroupCommitWriter(record, max_batch=8)

    def outer() -> list[Any]:
        writer.run(lambda: [Pending("inner")])
        return [Pending("outer")]

    try:
        writer.run(outer)
    finally:
        writer.close()
    assert recorded == [["inner"], ["outer"]]


def test_snapshots_are_written_in_the_background_and_flushed_on_demand(
    grouped: Services,
) -> None:
    app = grouped.app
    register(app, range(1, 2))
    interval = app.snapshotting_intervals[Player]
    for n in range(interval):
        assert award(app, 1, 1, f"s:{n}", 10_000 + n).ok
    assert app.flush_snapshots()
    assert app.snapshots is not None
    (latest,) = app.snapshots.get(player_id(1), desc=True, limit=1)
    assert latest.originator_version == interval


class HeldStore:
    """A stand-in store for a writer: `record` logs what it writes and holds the first batch
    until `go` is set (failing it if told to)."""

    def __init__(self, first_fails: bool = False) -> None:
        self.log: list[str] = []
        self.go = threading.Event()
        self._first_fails = first_fails
        self._recorded = 0

    def record(self, write: Write) -> list[Recording[UUID]]:
        names = "+".join(sorted(str(event.originator_id) for event in write.events))
        self._recorded += 1
        self.log.append(f"record {names}")
        if self._recorded == 1:
            assert self.go.wait(timeout=10)
            if self._first_fails:
                raise ConnectionError("store down")
        return [Recording(event, None) for event in write.events]  # type: ignore[arg-type]


def _drive(store: HeldStore) -> dict[str, str]:
    """Command 'first' is being written; 'b' and 'c' queue meanwhile. Returns each outcome."""
    writer = GroupCommitWriter(store.record, max_batch=8)
    outcomes: dict[str, str] = {}

    def command(name: str) -> None:
        def attempt() -> list[Any]:
            store.log.append(f"decide {name}")
            return [Pending(name)]

        try:
            writer.run(attempt)
            outcomes[name] = "ok"
        except ConnectionError:
            outcomes[name] = "down"

    first = threading.Thread(target=command, args=("first",))
    first.start()
    wait_until(lambda: "record first" in store.log)
    others = [threading.Thread(target=command, args=(name,)) for name in ("b", "c")]
    for thread in others:
        thread.start()
    wait_until(lambda: len(writer._queue) == 2)
    store.go.set()
    for thread in [first, *others]:
        thread.join(timeout=10)
    writer.close()
    return outcomes


def test_commands_queued_during_a_write_go_together_in_the_next_batch() -> None:
    store = HeldStore()
    assert _drive(store) == {"first": "ok", "b": "ok", "c": "ok"}
    assert store.log == ["decide first", "record first", "decide b", "decide c", "record b+c"]


def test_a_failed_batch_does_not_fail_the_next() -> None:
    store = HeldStore(first_fails=True)
    assert _drive(store) == {"first": "down", "b": "ok", "c": "ok"}
