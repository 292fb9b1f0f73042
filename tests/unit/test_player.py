"""Every points rule of spec section 2 on the Player aggregate, boundaries included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from dianabot.domain import rules
from dianabot.domain.cause import Cause
from dianabot.domain.errors import (
    AlreadyAnswered,
    AlreadyCheckedIn,
    AlreadyReacted,
    Cooldown,
    DuplicateCommand,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
)
from dianabot.domain.ids import player_id
from dianabot.domain.player import Player
from dianabot.domain.rules import PointSource

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_updates = count(1)


def cause(at: datetime = T0, causation: str | None = None) -> Cause:
    return Cause(causation or f"tg:update:{next(_updates)}", "tg:user:7", at)


def new_player() -> Player:
    return Player.register(7, "Ana", cause())


def names(player: Player) -> list[str]:
    return [type(event).__name__ for event in player.collect_events()]


def test_registration_derives_the_id_from_the_telegram_id() -> None:
    player = new_player()
    assert player.id == player_id(7)
    assert (player.balance, player.lifetime_earned, player.level) == (0, 0, 1)
    assert names(player) == ["PlayerRegistered"]


@pytest.mark.parametrize("bad_id", [0, -3, "7", True, 1.0])
def test_registration_refuses_bad_telegram_ids(bad_id: object) -> None:
    with pytest.raises(InvalidInput):
        Player.register(bad_id, "x", cause())  # type: ignore[arg-type]


def test_events_carry_causation_actor_and_the_clock_time() -> None:
    player = new_player()
    player.collect_events()
    player.react("chan:1", "❤️", Cause("tg:update:99", "tg:user:7", T0 + timedelta(minutes=3)))
    events = player.collect_events()
    assert {e.causation for e in events} == {"tg:update:99"}
    assert {e.actor for e in events} == {"tg:user:7"}
    assert {e.timestamp for e in events} == {T0 + timedelta(minutes=3)}


def test_reaction_awards_ten_once_per_post_whatever_the_emoji() -> None:
    player = new_player()
    player.collect_events()
    player.react("chan:1", "❤️", cause())
    assert names(player) == ["ReactionRecorded", "PointsAwarded"]
    assert player.balance == 10
    with pytest.raises(AlreadyReacted):
        player.react("chan:1", "🔥", cause())
    player.react("chan:2", "🔥", cause())
    assert player.balance == 20


def test_message_cooldown_is_thirty_seconds() -> None:
    player = new_player()
    player.count_message("m1", cause(T0))
    with pytest.raises(Cooldown) as refused:
        player.count_message("m2", cause(T0 + timedelta(seconds=29)))
    assert refused.value.retry_after == timedelta(seconds=1)
    player.count_message("m3", cause(T0 + timedelta(seconds=30)))  # exactly 30 s: allowed
    assert player.balance == 2


def test_poll_awards_two_once_per_poll() -> None:
    player = new_player()
    player.answer_poll("poll:1", cause())
    with pytest.raises(AlreadyAnswered):
        player.answer_poll("poll:1", cause())
    player.answer_poll("poll:2", cause())
    assert player.balance == 4


def test_check_in_once_per_rolling_24_hours() -> None:
    player = new_player()
    player.check_in(cause(T0))
    with pytest.raises(AlreadyCheckedIn) as refused:
        player.check_in(cause(T0 + timedelta(hours=23, minutes=59)))
    assert refused.value.retry_after == timedelta(minutes=1)
    player.check_in(cause(T0 + timedelta(hours=24)))  # exactly 24 h: allowed
    assert (player.balance, player.streak) == (20, 2)


def test_streak_survives_a_48_hour_gap_but_not_more() -> None:
    player = new_player()
    player.check_in(cause(T0))
    player.check_in(cause(T0 + timedelta(hours=48)))  # exactly 48 h keeps the streak
    assert player.streak == 2
    player.check_in(cause(T0 + timedelta(hours=96, seconds=1)))  # 48 h + 1 s breaks it
    assert player.streak == 1


def test_every_seventh_consecutive_check_in_adds_the_streak_bonus() -> None:
    player = new_player()
    for day in range(14):
        player.check_in(cause(T0 + timedelta(days=day)))
        expected_bonus = 25 * ((day + 1) // 7)
        assert player.balance == 10 * (day + 1) + expected_bonus
    awarded = [e for e in player.collect_events() if type(e).__name__ == "PointsAwarded"]
    assert [e.source for e in awarded].count("streak_bonus") == 2


def test_spending_is_refused_when_short_and_allowed_at_exactly_the_balance() -> None:
    player = new_player()
    player.react("chan:1", "❤️", cause())
    with pytest.raises(InsufficientPoints):
        player.spend(11, "story_choice", "choice:a", cause())
    assert player.balance == 10
    player.spend(10, "story_choice", "choice:a", cause())  # balance == cost
    assert player.balance == 0
    assert player.lifetime_earned == 10  # spending never lowers lifetime or level


def test_admin_grant_counts_as_earned_and_deduct_never_goes_negative() -> None:
    player = new_player()
    player.grant(120, admin_id=42, reason="sorteo", cause=cause())
    assert (player.balance, player.lifetime_earned, player.level) == (120, 120, 2)
    with pytest.raises(InsufficientPoints):
        player.deduct(121, admin_id=42, reason="error", cause=cause())
    player.deduct(120, admin_id=42, reason="error", cause=cause())
    assert (player.balance, player.lifetime_earned, player.level) == (0, 120, 2)


@pytest.mark.parametrize("amount", [0, -1, 2.5, "5", True, 10_000_001])
def test_bad_amounts_are_refused_and_record_nothing(amount: object) -> None:
    player = new_player()
    player.collect_events()
    for act in (
        lambda: player.grant(amount, 42, "x", cause()),  # type: ignore[arg-type]
        lambda: player.spend(amount, "p", "r", cause()),  # type: ignore[arg-type]
        lambda: player.award(PointSource.STORY, amount, "r", cause()),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidAmount):
            act()
    assert player.collect_events() == []


@pytest.mark.parametrize("amount", [0, -1, 2.5, "5", True])
def test_bad_deductions_are_refused_and_record_nothing(amount: object) -> None:
    player = new_player()
    player.collect_events()
    with pytest.raises(InvalidAmount):
        player.deduct(amount, 42, "x", cause())  # type: ignore[arg-type]
    assert player.collect_events() == []


def test_a_deduction_may_take_any_amount_up_to_a_balance_above_the_cap() -> None:
    """The per-amount cap guards against typos in what is given; what is taken back is bounded
    by the balance, so a balance built by several capped grants can be deducted at once."""
    player = new_player()
    for _ in range(3):
        player.grant(rules.MAX_AMOUNT, admin_id=42, reason="lote", cause=cause())
    with pytest.raises(InsufficientPoints):
        player.deduct(3 * rules.MAX_AMOUNT + 1, admin_id=42, reason="x", cause=cause())
    player.deduct(2 * rules.MAX_AMOUNT + 5, admin_id=42, reason="corrección", cause=cause())
    assert player.balance == rules.MAX_AMOUNT - 5
    assert player.lifetime_earned == 3 * rules.MAX_AMOUNT


def test_level_reached_is_recorded_when_crossing_a_threshold() -> None:
    player = new_player()
    player.collect_events()
    player.award(PointSource.STORY, 99, "fragment:a", cause())
    assert "LevelReached" not in names(player)
    player.award(PointSource.STORY, 1, "fragment:b", cause())
    assert names(player) == ["PointsAwarded", "LevelReached"]
    assert player.level == 2


def test_the_same_cause_is_applied_once() -> None:
    """aiogram may process an update twice: the second time records nothing."""
    player = new_player()
    twice = cause(T0, "tg:update:555")
    player.count_message("m1", twice)
    later = Cause(twice.causation, twice.actor, T0 + timedelta(minutes=5))
    with pytest.raises(DuplicateCommand):
        player.count_message("m1", later)
    player.grant(5, 42, "a", cause(causation="admin:1"))
    with pytest.raises(DuplicateCommand):
        player.grant(5, 42, "a", cause(causation="admin:1"))
    assert player.balance == 6


def test_one_cause_may_drive_different_commands() -> None:
    """A paid story choice spends and is rewarded under the same update: both apply."""
    player = new_player()
    player.grant(50, 42, "seed", cause())
    shared = cause(causation="tg:update:900")
    player.spend(20, "story_choice", "choice:x", shared)
    player.award(PointSource.STORY, 5, "fragment:y", shared)
    assert player.balance == 35


def test_replaying_events_rebuilds_an_equal_player() -> None:
    player = new_player()
    player.react("chan:1", "❤️", cause())
    player.check_in(cause())
    player.count_message("m", cause())
    events = player.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert vars(replayed) == vars(player)


def test_a_cached_copy_is_equal_and_independent() -> None:
    """The aggregate cache hands out copies: changing one never changes the cached original."""
    import copy

    player = new_player()
    player.react("chan:1", "❤️", cause())
    player.collect_events()
    clone = copy.deepcopy(player)
    assert vars(clone) == vars(player) and clone is not player
    clone.react("chan:2", "❤️", cause())
    clone.grant(5, 42, "x", cause())
    assert player.reacted_posts == {"chan:1"} and player.balance == 10
    assert len(player.recent_commands) < len(clone.recent_commands)
    assert player.collect_events() == []
