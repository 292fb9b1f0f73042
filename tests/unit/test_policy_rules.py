"""The policies' pure decisions and the Player rules they rely on (issue 12, item 2): which
streak badges a check-in reached, when a gate hit is recent enough to invite, the chapter of a
fragment, the first-decision besitos once per chapter forever, VIP invitations once per period.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from dianabot.application.clock import ManualClock
from dianabot.application.policies.story_decisions import fragment_chapter
from dianabot.application.policies.streaks import StreakBadges, reached
from dianabot.application.policies.vip_conversion import VipConversion, timely
from dianabot.domain import rules
from dianabot.domain.cause import Cause
from dianabot.domain.errors import AlreadyInvited, AlreadyVip, DuplicateCommand, InvalidInput
from dianabot.domain.player import Player
from dianabot.domain.rules import PointSource

from tests.unit.test_player import T0, cause, names, new_player
from tests.unit.test_progress import small_story

STREAKS = {
    "racha-3": {"kind": "checkin_streak", "days": 3},
    "racha-30": {"kind": "checkin_streak", "days": 30},
    "racha-7": {"kind": "checkin_streak", "days": 7},
    "besitos-100": {"kind": "lifetime_besitos", "threshold": 100},
}


def test_the_streak_badges_a_check_in_reached() -> None:
    assert reached(STREAKS, 2) == ()
    assert reached(STREAKS, 3) == ("racha-3",)
    assert reached(STREAKS, 8) == ("racha-3", "racha-7")
    assert reached(STREAKS, 30) == ("racha-3", "racha-30", "racha-7")


class NoStore:
    """An application stand-in whose every load fails: a react that returns without loading
    anything is decided from the event alone."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def scan_notifications(self, classes: Any, start: int = 1) -> list[Any]:
        return []  # no badge defined beyond the catalogue

    def _load(self, aggregate_id: Any) -> Any:
        raise AssertionError("loaded an aggregate")

    get_player = _load


def test_a_check_in_below_every_streak_badge_is_decided_from_the_event_alone() -> None:
    policy = StreakBadges(NoStore(ManualClock(T0)))  # type: ignore[arg-type]
    for streak in (1, 2):
        assert policy.react(SimpleNamespace(streak=streak, originator_id=uuid4())) is None
    with pytest.raises(AssertionError, match="loaded"):
        policy.react(SimpleNamespace(streak=3, originator_id=uuid4(), originator_version=4))


def test_a_gate_hit_invites_only_right_after_it() -> None:
    window = rules.VIP_INVITATION_WINDOW
    assert timely(T0, T0) and timely(T0, T0 + window)
    assert not timely(T0, T0 + window + timedelta(seconds=1))
    clock = ManualClock(T0 + window + timedelta(minutes=1))
    policy = VipConversion(NoStore(clock))  # type: ignore[arg-type]
    stale = SimpleNamespace(timestamp=T0, originator_id=uuid4(), fragment_id="a", choice_id=None)
    assert policy.react(stale) is None  # decided without loading the player


def test_the_chapter_of_a_fragment_in_one_version() -> None:
    story = small_story().story
    assert fragment_chapter(story, "a") == 1 and fragment_chapter(story, "d") == 2
    assert fragment_chapter(story, "gone") == 0


def test_the_first_decision_besitos_come_once_per_story_and_chapter_forever() -> None:
    player = new_player()
    player.collect_events()
    player.reward_decision("diana", 1, cause())
    assert names(player) == ["PointsAwarded"]
    assert player.balance == rules.STORY_DECISION_BONUS
    assert player.decision_rewarded("diana", 1)
    assert not player.decision_rewarded("diana", 2) and not player.decision_rewarded("otra", 1)
    much_later = cause(T0 + timedelta(days=400))  # another cause, long past the key memory
    with pytest.raises(DuplicateCommand):
        player.reward_decision("diana", 1, much_later)
    player.reward_decision("diana", 2, cause())
    player.reward_decision("otra", 1, cause())
    events = player.collect_events()
    assert [(e.source, e.reference) for e in events] == [
        (PointSource.STORY_DECISION, "chapter:diana:2"),
        (PointSource.STORY_DECISION, "chapter:otra:1"),
    ]
    with pytest.raises(InvalidInput):
        player.reward_decision("diana", 0, cause())


def test_the_rewarded_chapters_replay_and_an_older_snapshot_reads_as_none() -> None:
    player = new_player()
    player.reward_decision("diana", 1, cause())
    replayed = None
    for event in player.collect_events():
        replayed = event.mutate(replayed)
    assert replayed is not None and replayed.decision_rewarded("diana", 1)

    old = new_player()
    old.collect_events()
    del old.decision_chapters  # as a snapshot from before the attribute restores it
    assert not old.decision_rewarded("diana", 1)
    old.reward_decision("diana", 1, cause())
    assert old.decision_chapters == {"chapter:diana:1"}


def invite(player: Player, at_cause: Cause) -> None:
    player.invite_to_vip("diana", "f1", "c1", ["event:x:1"], at_cause)


def test_one_vip_invitation_per_period_and_none_while_vip() -> None:
    player = new_player()
    player.collect_events()
    assert player.last_vip_invitation is None and player.vip_invitation_due(T0)
    invite(player, cause(T0))
    [queued] = player.collect_events()
    assert type(queued).__name__ == "VipInvitationQueued"
    assert (queued.story_slug, queued.fragment_id, queued.choice_id) == ("diana", "f1", "c1")
    assert queued.evidence == ["event:x:1"] and player.last_vip_invitation == T0

    period = rules.VIP_INVITATION_PERIOD
    almost = T0 + period - timedelta(seconds=1)
    assert not player.vip_invitation_due(almost)
    with pytest.raises(AlreadyInvited) as refused:
        invite(player, cause(almost))
    assert refused.value.retry_after == timedelta(seconds=1)
    assert player.vip_invitation_due(T0 + period)
    invite(player, cause(T0 + period))

    player.grant_vip(30, "admin", "regalo", cause(T0 + period))
    later = T0 + 3 * period
    assert not player.vip_invitation_due(later)
    with pytest.raises(AlreadyVip):
        invite(player, cause(later))
    with pytest.raises(InvalidInput):
        player.invite_to_vip("diana", "f1", None, [], cause(later))
