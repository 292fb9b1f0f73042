"""The command bus: one way to run every command, blocking (`bus.handle`) or awaited
(`bus.handle_async`), on every store, with and without group commit; one user's commands in
the order they were issued whichever threads and event loops issue them."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.database import database_from_url
from dianabot.application import bus as bus_module
from dianabot.application import commands as commands_module
from dianabot.application.bus import CommandBus
from dianabot.application.clock import ManualClock
from dianabot.application.commands import (
    AnswerPoll,
    AwardBadge,
    AwardPoints,
    Caller,
    CheckIn,
    Command,
    CountMessage,
    DeductPoints,
    DefineBadge,
    GrantPoints,
    GrantVip,
    IssueVipToken,
    MakeChoice,
    PlayerCommand,
    ReactToPost,
    RedeemVipToken,
    RegisterPlayer,
    RevokeBadge,
    SpendPoints,
    StartStory,
)
from dianabot.application.group_commit import GroupCommitWriter
from dianabot.application.handlers import HANDLERS
from dianabot.application.results import CommandResult, Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.badge import BadgeSpec
from dianabot.domain.rules import PointSource
from eventsourcing.persistence import IntegrityError

from tests.conftest import ADMIN_ID, make_settings
from tests.unit.test_progress import small_story

SLUG = "prueba"


@pytest.fixture(params=[True, False], ids=["group-commit", "direct"])
def services(
    request: pytest.FixtureRequest, database_url: str, clock: ManualClock
) -> Iterator[Services]:
    with bootstrap(make_settings(database_url, group_commit=request.param), clock=clock) as wired:
        yield wired


def writer_of(app: DianaApplication) -> GroupCommitWriter:
    writer = app._writer
    assert isinstance(writer, GroupCommitWriter)
    return writer


# ----- one registry, one engine ---------------------------------------------------------------


def test_every_command_type_has_one_handler() -> None:
    concrete = {
        member
        for _, member in inspect.getmembers(commands_module, inspect.isclass)
        if issubclass(member, Command)
        and member not in (Command, PlayerCommand, commands_module.JournalCommand)
    }
    assert concrete == set(HANDLERS)
    app = DianaApplication(database_from_url("memory://").eventsourcing_env)
    try:

        class Unknown(Command):
            key = "x"

        with pytest.raises(TypeError, match="no handler for Unknown"):
            app.bus.handle(Unknown(), Origin.admin(ADMIN_ID))
        assert isinstance(app.bus, CommandBus)
    finally:
        app.close()


def scenario(user: int, other: int) -> list[Command]:
    """One user's commands of every context, refusals included (`other` is never registered)."""
    return [
        RegisterPlayer(user, "Ana", "es"),
        RegisterPlayer(user, "Ana again"),  # idempotent: ok, nothing recorded
        ReactToPost(user, "chan:1", "❤️"),
        ReactToPost(user, "chan:1", "👍"),  # already_reacted
        ReactToPost(other, "chan:1", "❤️"),  # unknown_user
        CountMessage(user, f"group:{user}:1"),
        AnswerPoll(user, "poll:1"),
        AnswerPoll(user, "poll:1"),
        CheckIn(user),
        CheckIn(user),  # already_checked_in
        AwardPoints(user, PointSource.STORY, 5, "r1"),
        SpendPoints(user, 10_000, "gift", "g1"),  # insufficient_points
        GrantPoints(user, admin_id=ADMIN_ID, amount=100, reason="seed"),
        DeductPoints(user, admin_id=user, amount=5, reason="not an admin"),  # not_admin
        AwardBadge("fiel", user, ("evidence:1",)),
        AwardBadge("fiel", user, ("evidence:2",)),  # already_held
        RevokeBadge("fiel", user, "test"),
        GrantVip(user, 30, "admin", "r1"),
        GrantVip(user, 30, "lottery", "r2"),  # invalid_input
        RedeemVipToken(user, "not-a-token"),  # invalid_token
        StartStory(user, SLUG),
        StartStory(user, SLUG),  # started already: ok, nothing recorded
        MakeChoice(user, "nope", SLUG),  # invalid_choice
        MakeChoice(user, "a_c", SLUG),  # paid
    ]


def origin_of(command: Command, update: int) -> Origin:
    """Who would issue the command: the player for themself, else an admin, else a policy."""
    if Caller.PLAYER in command.callers:
        return Origin.telegram(update, command.telegram_ids()[0])
    if Caller.ADMIN in command.callers:
        return Origin.admin(ADMIN_ID)
    return Origin.system("test", str(update))


def comparable(result: CommandResult, *users: int) -> tuple[object, ...]:
    """What must not depend on how the command was run (ids and positions do); the scenario's
    users stand as their place in `users`."""
    details = sorted(
        (name, f"user {users.index(value)}" if type(value) is int and value in users else value)
        for name, value in result.details.items()
    )
    return (result.outcome, tuple(result.event_names()), details)


def test_blocking_and_awaited_commands_give_the_same_results(services: Services) -> None:
    app = services.app
    assert app.bus.handle(
        DefineBadge(BadgeSpec("fiel", "Fiel", "Siempre vuelve", "🫶", {"kind": "manual"})),
        Origin.admin(ADMIN_ID),
    ).ok
    assert app.publish_story(small_story(), Origin.admin(ADMIN_ID)).ok

    blocking = [
        app.bus.handle(command, origin_of(command, 10_000 + n))
        for n, command in enumerate(scenario(1, 404))
    ]

    async def awaited() -> list[CommandResult]:
        return [
            await app.bus.handle_async(command, origin_of(command, 20_000 + n))
            for n, command in enumerate(scenario(2, 405))
        ]

    results = asyncio.run(awaited())
    assert [comparable(r, 2, 405) for r in results] == [comparable(r, 1, 404) for r in blocking]
    assert [r.outcome for r in blocking] == [
        *["ok", "ok", "ok", "already_reacted", "unknown_user", "ok", "ok", "already_answered"],
        *["ok", "already_checked_in", "ok", "insufficient_points", "ok", "not_admin"],
        *["ok", "already_held", "ok", "ok", "invalid_input", "invalid_token"],
        *["ok", "ok", "invalid_choice", "ok"],
    ]
    assert blocking[-1].details["paid"] == 20
    player_1, player_2 = app.get_player(1), app.get_player(2)
    assert player_1 is not None and player_2 is not None
    assert player_1.balance == player_2.balance
    # The same update again is refused, however it is run.
    again = asyncio.run(
        app.bus.handle_async(ReactToPost(2, "chan:9", "❤️"), Origin.telegram(20_002, 2))
    )
    assert again.outcome == "duplicate"


def test_an_issued_token_is_shown_once_and_redeemed_once(services: Services) -> None:
    app = services.app
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    async def run() -> tuple[CommandResult, CommandResult, CommandResult]:
        issued = await app.bus.handle_async(IssueVipToken(ADMIN_ID, 30), Origin.admin(ADMIN_ID))
        token = issued.details["token"]
        first = await app.bus.handle_async(RedeemVipToken(5, token), Origin.telegram(2, 5))
        second = await app.bus.handle_async(RedeemVipToken(5, token), Origin.telegram(3, 5))
        return issued, first, second

    issued, first, second = asyncio.run(run())
    assert issued.ok and issued.details["days"] == 30
    assert issued.details["token"] not in repr(
        IssueVipToken(ADMIN_ID, 30, token=issued.details["token"])
    )
    assert first.ok and first.details["vip_until"] == app.vip_until(5)
    assert second.outcome == "token_used"


# ----- order and batches ----------------------------------------------------------------------


def test_one_users_commands_run_in_the_order_they_were_awaited(services: Services) -> None:
    """Many tasks of one user at once: written one at a time, in the order they started; other
    users' tasks interleave freely."""
    app = services.app
    for user in (1, 2, 3):
        assert app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok

    async def scenario() -> None:
        await asyncio.gather(
            *(
                app.bus.handle_async(
                    AwardPoints(user, PointSource.STORY, 1, f"{user}:{n}"),
                    Origin.system("test", f"{1000 * user + n}"),
                )
                for n in range(30)
                for user in (1, 2, 3)
            )
        )

    asyncio.run(scenario())
    for user in (1, 2, 3):
        assert references(app, user) == [f"{user}:{n}" for n in range(30)]
        player = app.get_player(user)
        assert player is not None and player.balance == 30


def references(app: DianaApplication, user: int) -> list[str]:
    """The references of `user`'s PointsAwarded events, in log order."""
    return [
        event.reference
        for notification in app.recorder.select_notifications(1, 100_000)
        if notification.topic.endswith(".PointsAwarded")
        and (event := app.mapper.to_domain_event(notification)).reference.startswith(f"{user}:")
    ]


class LoopThread:
    """An event loop running in a thread of its own, to issue awaited commands from."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def start(self, work: Coroutine[Any, Any, CommandResult]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def test_threads_and_tasks_of_two_loops_take_a_users_turns_in_issue_order(
    services: Services,
) -> None:
    """While user 1's key is held, commands are issued for it from blocking threads and from
    tasks of two event loops, each queued before the next is issued: they land in that order."""
    app = services.app
    assert app.register_player(1, "Ana", Origin.telegram(1, 1)).ok
    loops = [LoopThread(), LoopThread()]
    locks = app.bus._locks
    pending: list[Callable[[], CommandResult]] = []

    def award(n: int) -> tuple[AwardPoints, Origin]:
        return AwardPoints(1, PointSource.STORY, 1, f"1:{n}"), Origin.system("test", f"{100 + n}")

    def queued() -> int:
        with locks._lock:
            return len(locks._queues.get(1, ()))

    try:
        locks.acquire(1)  # as a command of user 1 in progress would
        for n in range(12):
            if n % 3 == 0:
                box: list[CommandResult] = []
                thread = threading.Thread(
                    target=lambda n=n, box=box: box.append(app.bus.handle(*award(n)))
                )
                thread.start()
                pending.append(lambda thread=thread, box=box: (thread.join(10), box[0])[1])
            else:
                future = loops[n % 3 - 1].start(app.bus.handle_async(*award(n)))
                pending.append(lambda future=future: future.result(10))
            wait_until(lambda n=n: queued() == n + 1)
        locks.release(1)
        results = [finish() for finish in pending]
    finally:
        for loop in loops:
            loop.close()
    assert all(result.ok for result in results)
    assert references(app, 1) == [f"1:{n}" for n in range(12)]
    assert len(locks) == 0


def test_blocking_threads_and_tasks_never_put_one_user_twice_in_a_batch(
    database_url: str, clock: ManualClock
) -> None:
    """Threads and asyncio tasks issue commands for the same users at once, with group commit:
    every command lands, each issuer's commands in its order, and no batch ever fails (a batch
    holding two changes to one user would fail on the version check)."""
    users = range(1, 11)
    threads, tasks, per_issuer = 6, 12, 25
    with bootstrap(make_settings(database_url, group_commit=True), clock=clock) as wired:
        app = wired.app
        for user in users:
            assert app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok
        writer = writer_of(app)
        failed: list[CommandResult] = []

        def command(issuer: str, n: int) -> tuple[AwardPoints, Origin]:
            user = users[n % len(users)]
            reference = f"{user}:{issuer}:{n:03}"
            return AwardPoints(user, PointSource.STORY, 1, reference), Origin(
                reference, "system:test"
            )

        def blocking(issuer: int) -> None:
            for n in range(per_issuer):
                result = app.bus.handle(*command(f"t{issuer}", n))
                if not result.ok:
                    failed.append(result)

        async def awaited(issuer: int) -> None:
            for n in range(per_issuer):
                result = await app.bus.handle_async(*command(f"a{issuer}", n))
                if not result.ok:
                    failed.append(result)

        async def all_tasks() -> None:
            await asyncio.gather(*(awaited(i) for i in range(tasks)))

        workers = [threading.Thread(target=blocking, args=(i,)) for i in range(threads)]
        workers.append(threading.Thread(target=lambda: asyncio.run(all_tasks())))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not any(worker.is_alive() for worker in workers)
        assert failed == []
        assert writer.failed_batches == 0
        issuers = [f"t{i}" for i in range(threads)] + [f"a{i}" for i in range(tasks)]
        total = 0
        for user in users:
            landed = references(app, user)
            total += len(landed)
            for issuer in issuers:
                mine = [r for r in landed if r.split(":")[1] == issuer]
                assert mine == sorted(mine)  # each issuer's commands in the order it issued them
            player = app.get_player(user)
            assert player is not None and player.balance == len(landed)
        assert total == (threads + tasks) * per_issuer


# ----- results, cancellation, failures (what AsyncCommands did) --------------------------------


def test_a_use_cases_reading_of_its_result_is_kept(services: Services) -> None:
    """`GrantVip` finishes its result with the VIP end; a refusal comes back as it is."""
    app = services.app
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    async def scenario() -> tuple[object, str]:
        granted = await app.bus.handle_async(GrantVip(5, 30, "admin", "r1"), Origin.admin(ADMIN_ID))
        refused = await app.bus.handle_async(
            GrantVip(5, 30, "lottery", "r2"), Origin.admin(ADMIN_ID)
        )
        return granted.details.get("vip_until"), refused.outcome

    vip_until, refused = asyncio.run(scenario())
    assert vip_until == app.vip_until(5) and vip_until is not None
    assert refused == "invalid_input"


def test_a_cancelled_caller_does_not_cancel_its_command(services: Services) -> None:
    app = services.app
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    async def scenario() -> None:
        task = asyncio.ensure_future(
            app.bus.handle_async(ReactToPost(5, "chan:1", "❤️"), Origin.telegram(2, 5))
        )
        await asyncio.sleep(0)  # started: its attempt is queued or running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(until_free(app, 5), timeout=10)

    asyncio.run(scenario())
    app.flush_snapshots()
    player = app.get_player(5)
    assert player is not None and player.balance == 10
    assert app.react(5, "chan:1", "❤️", Origin.telegram(2, 5)).outcome == "duplicate"


async def until_free(app: DianaApplication, key: object) -> None:
    while True:
        with app.bus._locks._lock:
            if key not in app.bus._locks._queues:
                return
        await asyncio.sleep(0.01)


def test_a_caller_cancelled_while_waiting_for_its_turn_issues_nothing(services: Services) -> None:
    app = services.app
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    async def scenario() -> None:
        await app.bus._locks.acquire_async(5)
        task = asyncio.ensure_future(
            app.bus.handle_async(ReactToPost(5, "chan:1", "❤️"), Origin.telegram(2, 5))
        )
        await asyncio.sleep(0)  # queued behind the holder
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        app.bus._locks.release(5)
        after = await app.bus.handle_async(ReactToPost(5, "chan:2", "❤️"), Origin.telegram(3, 5))
        assert after.ok

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    player = app.get_player(5)
    assert player is not None and player.balance == 10  # chan:2 only


def test_a_conflict_behind_the_cache_is_retried_when_awaited(shared_database_url: str) -> None:
    """Another instance writes user 1's next version; this one's cached copy is stale, its
    awaited command conflicts, and succeeds on the retry from fresh state."""
    clock = ManualClock()
    settings = make_settings(shared_database_url, group_commit=True)
    with bootstrap(settings, clock=clock) as wired:
        app = wired.app
        assert app.register_player(1, "u1", Origin.telegram(1, 1)).ok
        assert app.get_player(1) is not None  # cached
        other = DianaApplication(wired.database.eventsourcing_env, clock=clock)
        try:
            assert other.react(1, "chan:other", "❤️", Origin.telegram(2, 1)).ok
        finally:
            other.close()
        result = asyncio.run(
            app.bus.handle_async(ReactToPost(1, "chan:mine", "❤️"), Origin.telegram(3, 1))
        )
        assert result.ok
        player = app.get_player(1)
        assert player is not None and player.balance == 20


def test_an_unexpected_error_reaches_the_caller_and_frees_the_user(services: Services) -> None:
    """A bug in a decision is not a typed result: it is raised to the caller, awaiting or
    blocking, and the user's next command runs."""
    app = services.app
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    def broken(telegram_id: int) -> object:
        raise ValueError("a bug")

    async def scenario() -> str:
        original = app._player
        app._player = broken  # type: ignore[method-assign,assignment]
        try:
            with pytest.raises(ValueError, match="a bug"):
                await app.bus.handle_async(ReactToPost(5, "chan:1", "❤️"), Origin.telegram(2, 5))
            with pytest.raises(ValueError, match="a bug"):
                await asyncio.to_thread(app.react, 5, "chan:1", "❤️", Origin.telegram(3, 5))
        finally:
            app._player = original  # type: ignore[method-assign]
        result = await app.bus.handle_async(ReactToPost(5, "chan:1", "❤️"), Origin.telegram(4, 5))
        return result.outcome

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=10)) == "ok"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def test_a_caller_cancelled_while_its_command_backs_off_still_gets_it_written(
    memory_app: DianaApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt meets a version conflict; the caller is cancelled during the back-off;
    the retry runs in the background, the command lands and the user is free again."""
    app = memory_app
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok
    monkeypatch.setattr(bus_module.random, "uniform", lambda low, high: 0.3)
    run = app._writer.run
    attempts: list[int] = []

    def conflict_once(attempt: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            attempt()
            raise IntegrityError("another process wrote first")
        return run(attempt)

    monkeypatch.setattr(app._writer, "run", conflict_once)

    async def scenario() -> None:
        task = asyncio.ensure_future(
            app.bus.handle_async(ReactToPost(5, "chan:1", "❤️"), Origin.telegram(2, 5))
        )
        while not attempts:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # backing off now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(until_free(app, 5), timeout=10)

    asyncio.run(scenario())
    assert len(attempts) == 2
    player = app.get_player(5)
    assert player is not None and player.balance == 10
