"""The initial badge catalogue is seeded by the commands that write, idempotently: a command
that needs a catalogue badge not defined yet defines it in the same transaction. Nothing that
only reads defines anything."""

from __future__ import annotations

from typing import Any

from dianabot.application.commands import AwardEarnedBadges
from dianabot.application.results import CommandResult, Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.rules import PointSource

from tests.conftest import ADMIN_ID, by_system

USER, OTHER = 7, 8


def head(app: Any) -> int:
    return app.recorder.max_notification_id() or 0


def award_earned(app: DianaApplication, user: int, evidence: str) -> CommandResult:
    """What the badge policies issue: every listed badge earned and not held, together."""
    command = AwardEarnedBadges(user, ("primeros-besitos",), (evidence,))
    return app.bus.handle(command, by_system())


def test_the_first_award_of_a_catalogue_badge_defines_it_once(app: DianaApplication) -> None:
    for user in (USER, OTHER):
        assert app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok
    before = head(app)
    assert app.get_badge("primeros-besitos") is None
    nothing = award_earned(app, USER, "e:1")
    assert nothing.ok and nothing.events == ()
    assert head(app) == before  # nothing earned yet: nothing awarded, nothing defined
    for user in (USER, OTHER):
        assert app.award_points(user, PointSource.STORY, 5, "fragment:a", by_system()).ok
    first = award_earned(app, USER, "e:2")
    assert first.event_names() == ["BadgeDefined", "BadgeAwarded"]
    second = award_earned(app, OTHER, "e:3")
    assert second.event_names() == ["BadgeAwarded"]
    by_hand = app.award_badge("racha-3", USER, ["e:4"], Origin.admin(ADMIN_ID))
    assert by_hand.event_names() == ["BadgeDefined", "BadgeAwarded"]
    retired = app.retire_badge("racha-30", "demasiado difícil", Origin.admin(ADMIN_ID))
    assert retired.event_names() == ["BadgeDefined", "BadgeRetired"]
    rest = app.ensure_badges(INITIAL_BADGES, by_system())
    assert len(rest) == len(INITIAL_BADGES) - 3 and all(r.ok for r in rest)
    assert app.ensure_badges(INITIAL_BADGES, by_system()) == []


def test_a_refused_command_seeds_nothing(app: DianaApplication) -> None:
    before = head(app)
    refused = app.award_badge("racha-3", 999, ["e:1"], Origin.admin(ADMIN_ID))
    assert refused.outcome == "unknown_user" and head(app) == before
    assert app.get_badge("racha-3") is None
    assert app.award_badge("no-such", USER, ["e"], by_system()).outcome == "unknown_badge"
    assert head(app) == before
