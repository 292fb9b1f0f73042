"""Hypothesis invariants of the Player aggregate under any sequence of commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError
from dianabot.domain.player import Player
from dianabot.domain.rules import PointSource, level_for
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2026, 1, 1, tzinfo=UTC)

commands = st.one_of(
    st.tuples(st.just("react"), st.integers(1, 15)),
    st.tuples(st.just("message"), st.integers(0, 3)),
    st.tuples(st.just("poll"), st.integers(1, 5)),
    st.tuples(st.just("checkin"), st.integers(0, 0)),
    st.tuples(st.just("spend"), st.integers(1, 120)),
    st.tuples(st.just("grant"), st.integers(1, 300)),
    st.tuples(st.just("deduct"), st.integers(1, 300)),
    st.tuples(st.just("award"), st.integers(1, 50)),
    st.tuples(st.just("replay_update"), st.integers(0, 0)),
)
steps = st.lists(st.tuples(commands, st.integers(0, 60 * 60 * 50)), max_size=60)


def apply(player: Player, command: tuple[str, int], cause: Cause) -> None:
    kind, value = command
    if kind == "react":
        player.react(f"chan:{value}", "❤️", cause)
    elif kind == "message":
        player.count_message(f"m:{cause.causation}", cause)
    elif kind == "poll":
        player.answer_poll(f"poll:{value}", cause)
    elif kind == "checkin":
        player.check_in(cause)
    elif kind == "spend":
        player.spend(value, "story_choice", "r", cause)
    elif kind == "grant":
        player.grant(value, 42, "g", cause)
    elif kind == "deduct":
        player.deduct(value, 42, "d", cause)
    elif kind == "award":
        player.award(PointSource.STORY, value, "fragment:f", cause)
    elif kind == "replay_update":
        player.count_message("m:again", Cause("tg:update:1", cause.actor, cause.at))


@settings(max_examples=150, deadline=None)
@given(steps)
def test_player_invariants_hold_for_any_command_sequence(sequence) -> None:  # type: ignore[no-untyped-def]
    now = T0
    player = Player.register(7, "Ana", Cause("tg:update:0", "tg:user:7", now))
    earned = spent = 0
    for index, (command, gap) in enumerate(sequence, start=1):
        now += timedelta(seconds=gap)
        before = (player.balance, player.lifetime_earned)
        try:
            apply(player, command, Cause(f"tg:update:{index}", "tg:user:7", now))
        except DomainError:
            assert (player.balance, player.lifetime_earned) == before  # refusals change nothing
        assert player.balance >= 0
        assert player.level == level_for(player.lifetime_earned).number
    events = player.collect_events()
    for event in events:
        name = type(event).__name__
        if name == "PointsAwarded":
            earned += event.amount
        elif name == "PointsSpent":
            spent += event.amount
        elif name == "PointsAdjusted":
            earned += max(event.amount, 0)
            spent += max(-event.amount, 0)
    assert player.balance == earned - spent
    assert player.lifetime_earned == earned
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert vars(replayed) == vars(player)
