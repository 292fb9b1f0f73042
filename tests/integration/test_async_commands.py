"""AsyncCommands: the application's commands awaited by asyncio callers (the Telegram bot)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.database import database_from_url
from dianabot.application.async_commands import AsyncCommands
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.rules import PointSource

from tests.conftest import make_settings


@pytest.fixture(params=[True, False], ids=["group-commit", "direct"])
def services(
    request: pytest.FixtureRequest, database_url: str, clock: ManualClock
) -> Iterator[Services]:
    with bootstrap(make_settings(database_url, group_commit=request.param), clock=clock) as wired:
        yield wired


def test_commands_awaited_give_what_blocking_calls_give(services: Services) -> None:
    app = services.app
    commands = AsyncCommands(app)

    async def scenario() -> list[str]:
        outcomes = [(await commands.register_player(5, "Ana", Origin.telegram(1, 5))).outcome]
        reactions = await asyncio.gather(
            *(commands.react(5, f"chan:{n}", "❤️", Origin.telegram(10 + n, 5)) for n in range(8))
        )
        outcomes += [result.outcome for result in reactions]
        outcomes.append((await commands.react(5, "chan:1", "👍", Origin.telegram(50, 5))).outcome)
        outcomes.append((await commands.react(5, "chan:9", "❤️", Origin.telegram(10, 5))).outcome)
        outcomes.append(
            (await commands.react(404, "chan:1", "❤️", Origin.telegram(51, 404))).outcome
        )
        outcomes.append(
            (await commands.spend_points(5, 1_000, "gift", "g", Origin.telegram(52, 5))).outcome
        )
        return outcomes

    assert asyncio.run(scenario()) == [
        "ok",
        *["ok"] * 8,
        "already_reacted",
        "duplicate",  # update 10 again: applied once
        "unknown_user",
        "insufficient_points",
    ]
    player = app.get_player(5)
    assert player is not None and player.balance == 80
    assert app.react(5, "chan:1", "❤️", Origin.telegram(60, 5)).outcome == "already_reacted"


def test_one_users_commands_run_in_the_order_they_were_awaited(services: Services) -> None:
    """Many tasks of one user at once: written one at a time, in the order they started; other
    users' tasks interleave freely."""
    app = services.app
    commands = AsyncCommands(app)
    for user in (1, 2, 3):
        assert app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok

    async def scenario() -> None:
        await asyncio.gather(
            *(
                commands.award_points(
                    user,
                    PointSource.STORY,
                    1,
                    f"{user}:{n}",
                    Origin.telegram(1000 * user + n, user),
                )
                for n in range(30)
                for user in (1, 2, 3)
            )
        )

    asyncio.run(scenario())
    for user in (1, 2, 3):
        references = [
            event.reference
            for notification in app.recorder.select_notifications(1, 10_000)
            if notification.topic.endswith(".PointsAwarded")
            and (event := app.mapper.to_domain_event(notification)).reference.startswith(f"{user}:")
        ]
        assert references == [f"{user}:{n}" for n in range(30)]
        player = app.get_player(user)
        assert player is not None and player.balance == 30


def test_a_use_cases_reading_of_its_result_is_kept(services: Services) -> None:
    """`grant_vip` finishes its result with the VIP end; a refusal found before any command
    (an unknown VIP source) comes back as it is."""
    app = services.app
    commands = AsyncCommands(app)
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    async def scenario() -> tuple[object, str]:
        granted = await commands.grant_vip(5, 30, "admin", "r1", Origin.admin(5))
        refused = await commands.grant_vip(5, 30, "lottery", "r2", Origin.admin(5))
        return granted.details.get("vip_until"), refused.outcome

    vip_until, refused = asyncio.run(scenario())
    assert vip_until == app.vip_until(5) and vip_until is not None
    assert refused == "invalid_input"


def test_a_cancelled_caller_does_not_cancel_its_command(services: Services) -> None:
    app = services.app
    commands = AsyncCommands(app)
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    async def scenario() -> None:
        task = asyncio.ensure_future(commands.react(5, "chan:1", "❤️", Origin.telegram(2, 5)))
        await asyncio.sleep(0)  # started: its attempt is queued or running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    app.flush_snapshots()
    player = app.get_player(5)
    assert player is not None and player.balance == 10
    assert app.react(5, "chan:1", "❤️", Origin.telegram(2, 5)).outcome == "duplicate"


def test_only_single_commands_are_offered() -> None:
    app = DianaApplication(database_from_url("memory://").eventsourcing_env)
    commands = AsyncCommands(app)
    assert {"react", "check_in", "make_choice", "grant_vip", "award_badge"} <= commands.commands
    assert "relocate_stranded" not in commands.commands  # several commands: stays blocking
    assert "get_player" not in commands.commands and "run_plan_async" not in commands.commands
    with pytest.raises(AttributeError):
        commands.get_player  # noqa: B018
    app.close()


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
        result = asyncio.run(AsyncCommands(app).react(1, "chan:mine", "❤️", Origin.telegram(3, 1)))
        assert result.ok
        player = app.get_player(1)
        assert player is not None and player.balance == 20


def test_an_unexpected_error_reaches_the_caller_and_frees_the_user(services: Services) -> None:
    """A bug in a decision is not a typed result: it is raised to the awaiting caller, as to a
    blocking one, and the user's next command runs."""
    app = services.app
    commands = AsyncCommands(app)
    assert app.register_player(5, "Ana", Origin.telegram(1, 5)).ok

    def broken(telegram_id: int) -> object:
        raise ValueError("a bug")

    async def scenario() -> str:
        original = app._player
        app._player = broken  # type: ignore[method-assign,assignment]
        try:
            with pytest.raises(ValueError, match="a bug"):
                await commands.react(5, "chan:1", "❤️", Origin.telegram(2, 5))
        finally:
            app._player = original  # type: ignore[method-assign]
        return (await commands.react(5, "chan:1", "❤️", Origin.telegram(3, 5))).outcome

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=10)) == "ok"
