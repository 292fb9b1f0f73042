"""The kit's strategies cover every command of `application/commands.py`, and whatever they draw
the bus answers with a result (accepted or refused), never an exception."""

from __future__ import annotations

import inspect

from dianabot.adapters.bootstrap import bootstrap
from dianabot.application import commands as commands_module
from dianabot.application.clock import ManualClock
from dianabot.application.commands import Command, JournalCommand, PlayerCommand
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_settings
from tests.kit import strategies as kst

BASES = {Command, PlayerCommand, JournalCommand}


def concrete_commands() -> set[type[Command]]:
    return {
        value
        for _, value in inspect.getmembers(commands_module, inspect.isclass)
        if issubclass(value, Command) and value not in BASES
    }


def test_every_command_has_a_strategy() -> None:
    missing = concrete_commands() - set(kst.command_strategies())
    assert not missing, f"commands without a strategy in tests/kit/strategies.py: {missing}"


STRATEGIES = kst.command_strategies()


@settings(max_examples=200, deadline=None, database=None)
@given(kind=st.sampled_from(sorted(STRATEGIES, key=lambda k: k.__name__)), data=st.data())
def test_each_strategy_draws_its_own_type(kind: type[Command], data: st.DataObject) -> None:
    issued = data.draw(STRATEGIES[kind])
    assert type(issued.command) is kind


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(batch=st.lists(kst.commands(), min_size=1, max_size=12))
def test_the_bus_answers_every_drawn_command(batch: list[kst.Issued]) -> None:
    with bootstrap(make_settings("memory://"), clock=ManualClock()) as wired:
        app = wired.app
        app.ensure_badges(INITIAL_BADGES, Origin.system("kit", "catalogue"))
        for user in (1, 2):
            app.bus.handle(
                commands_module.RegisterPlayer(user, f"u{user}"), kst.player_origin(user, user)
            )
        for issued in batch:
            result = app.bus.handle(issued.command, issued.origin)
            assert isinstance(result, CommandResult)
            assert result.outcome, result


def test_forged_callers_are_refused() -> None:
    @settings(max_examples=20, deadline=None, database=None)
    @given(issued=kst.forged_callers())
    def check(issued: kst.Issued) -> None:
        with bootstrap(make_settings("memory://"), clock=ManualClock()) as wired:
            result = wired.app.bus.handle(issued.command, issued.origin)
            assert result.outcome == "not_admin", result

    check()
