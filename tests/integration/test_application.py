"""The application's use cases on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.application.clock import ManualClock
from dianabot.application.commands import AwardEarnedBadges
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.badge import BadgeSpec
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.ids import player_id
from dianabot.domain.rules import PointSource
from eventsourcing.persistence import StoredEvent

from tests.conftest import ADMIN_ID, by_system

USER = 7
_update = iter(range(1, 10**6))


def tg(user: int = USER) -> Origin:
    return Origin.telegram(next(_update), user)


def head(app: DianaApplication) -> int:
    return app.recorder.max_notification_id() or 0


@pytest.fixture
def registered(app: DianaApplication) -> DianaApplication:
    assert app.register_player(USER, "Ana", tg()).ok
    return app


def test_register_is_idempotent(app: DianaApplication) -> None:
    first = app.register_player(USER, "Ana", tg())
    again = app.register_player(USER, "Ana", tg())
    assert first.ok and first.event_names() == ["PlayerRegistered"]
    assert again.ok and again.events == ()
    assert head(app) == 1


def test_reaction_flow_awards_once_and_refusals_write_nothing(registered: DianaApplication) -> None:
    app = registered
    result = app.react(USER, "chan:10", "❤️", tg())
    assert result.ok
    assert result.event_names() == ["ReactionRecorded", "PointsAwarded"]
    assert [e.position for e in result.events] == [2, 3]
    before = head(app)
    repeat = app.react(USER, "chan:10", "🔥", tg())
    assert repeat.outcome == "already_reacted" and not repeat.ok
    assert head(app) == before
    assert app.get_player(USER).balance == 10


def test_typed_refusals(registered: DianaApplication, clock: ManualClock) -> None:
    app = registered
    assert app.count_message(USER, "m1", tg()).ok
    cooldown = app.count_message(USER, "m2", tg())
    assert cooldown.outcome == "cooldown" and cooldown.retry_after == timedelta(seconds=30)
    assert app.check_in(USER, tg()).ok
    clock.advance(hours=1)
    again = app.check_in(USER, tg())
    assert again.outcome == "already_checked_in" and again.retry_after == timedelta(hours=23)
    assert app.answer_poll(USER, "p1", tg()).ok
    assert app.answer_poll(USER, "p1", tg()).outcome == "already_answered"
    assert app.spend_points(USER, 1_000, "vip", "r", tg()).outcome == "insufficient_points"
    assert app.react(999, "chan:1", "❤️", tg(999)).outcome == "unknown_user"
    assert app.grant_points(12345, USER, 5, "x", tg()).outcome == "not_admin"
    assert (
        app.grant_points(ADMIN_ID, USER, 0, "x", Origin.admin(ADMIN_ID)).outcome == "invalid_amount"
    )
    assert (
        app.grant_points(ADMIN_ID, USER, 10**9, "x", Origin.admin(ADMIN_ID)).outcome
        == "invalid_amount"
    )
    assert (
        app.deduct_points(ADMIN_ID, USER, 500, "x", Origin.admin(ADMIN_ID)).outcome
        == "insufficient_points"
    )
    assert (
        app.award_badge("no-such-badge", USER, ["e"], Origin.admin(ADMIN_ID)).outcome
        == "unknown_badge"
    )
    player = app.get_player(USER)
    assert (player.balance, player.lifetime_earned) == (13, 13)


def test_duplicate_update_is_applied_once(registered: DianaApplication, clock: ManualClock) -> None:
    app = registered
    origin = tg()
    assert app.count_message(USER, "m1", origin).ok
    clock.advance(minutes=10)
    assert app.count_message(USER, "m1", origin).outcome == "duplicate"
    admin = Origin.admin(ADMIN_ID)
    assert app.grant_points(ADMIN_ID, USER, 50, "sorteo", admin).ok
    assert app.grant_points(ADMIN_ID, USER, 50, "sorteo", admin).outcome == "duplicate"
    assert app.get_player(USER).balance == 51


def test_events_keep_causation_and_actor_in_the_store(registered: DianaApplication) -> None:
    app = registered
    app.react(USER, "chan:1", "❤️", Origin.telegram(4242, USER))
    notifications = app.recorder.select_notifications(1, 10)
    decoded = [app.mapper.to_domain_event(n) for n in notifications]
    assert [e.causation for e in decoded[1:]] == ["tg:0:update:4242", "tg:0:update:4242"]
    assert {e.actor for e in decoded[1:]} == {f"tg:user:{USER}"}


def test_badge_lifecycle_and_single_holding(registered: DianaApplication) -> None:
    app = registered
    origin = Origin.admin(ADMIN_ID)
    assert [r.outcome for r in app.ensure_badges(INITIAL_BADGES, origin)] == ["ok"] * len(
        INITIAL_BADGES
    )
    assert app.ensure_badges(INITIAL_BADGES, origin) == []
    assert app.define_badge(INITIAL_BADGES[0], origin).outcome == "invalid_badge"
    evidence = ["event:x:3"]
    assert app.award_badge("besitos-100", USER, evidence, Origin.admin(ADMIN_ID)).ok
    assert (
        app.award_badge("besitos-100", USER, evidence, Origin.admin(ADMIN_ID)).outcome
        == "already_held"
    )
    assert app.revoke_badge("besitos-100", USER, "error", Origin.admin(ADMIN_ID)).ok
    assert app.award_badge("besitos-100", USER, evidence, Origin.admin(ADMIN_ID)).ok
    assert app.retire_badge("racha-30", "demasiado difícil", origin).ok
    assert (
        app.award_badge("racha-30", USER, evidence, Origin.admin(ADMIN_ID)).outcome
        == "badge_retired"
    )
    spec = BadgeSpec("fiel", "Fiel", "Siempre vuelve", "🫶", {"kind": "manual"})
    assert app.define_badge(spec, origin).ok
    assert app.get_badge("fiel").criteria == {"kind": "manual"}


def test_earned_badges_are_awarded_once_with_evidence(registered: DianaApplication) -> None:
    app = registered
    app.ensure_badges(INITIAL_BADGES, Origin.admin(ADMIN_ID))
    slugs = [spec.slug for spec in INITIAL_BADGES]
    result = app.award_points(USER, PointSource.STORY, 100, "fragment:x", by_system())
    last = result.events[-1]
    evidence = [f"event:{last.originator_id}:{last.version}"]
    command = AwardEarnedBadges(USER, tuple(slugs), tuple(evidence))
    awarded = app.bus.handle(command, by_system())
    assert awarded.event_names() == ["BadgeAwarded", "BadgeAwarded"]
    assert sorted(e.fields["badge_slug"] for e in awarded.events) == [
        "besitos-100",
        "primeros-besitos",
    ]
    assert app.get_award("besitos-100", USER).evidence == evidence
    again = app.bus.handle(command, by_system())
    assert again.ok and again.events == ()


def test_competing_instances_never_hold_a_badge_twice(
    shared_services: Services, clock: ManualClock
) -> None:
    """Two processes award the same badge: the award stream's version 1 is written once."""
    services = shared_services
    app = services.app
    app.register_player(USER, "Ana", tg())
    app.ensure_badges(INITIAL_BADGES[:1], Origin.admin(ADMIN_ID))
    other = DianaApplication(services.database.eventsourcing_env, clock=clock)
    try:
        slug = INITIAL_BADGES[0].slug
        assert other.get_award(slug, USER) is None  # both see "not held" ...
        assert app.award_badge(slug, USER, ["e:1"], Origin.admin(ADMIN_ID)).ok
        assert other.award_badge(slug, USER, ["e:2"], by_system()).outcome == "already_held"
        names = [n.topic.rsplit(".", 1)[-1] for n in app.recorder.select_notifications(1, 100)]
        assert names.count("BadgeAwarded") == 1
    finally:
        other.close()


def test_a_stale_cache_is_detected_and_the_command_retried(
    shared_services: Services, clock: ManualClock
) -> None:
    services = shared_services
    app = services.app
    app.register_player(USER, "Ana", tg())
    assert app.react(USER, "chan:1", "❤️", tg()).ok  # app now caches the player
    other = DianaApplication(services.database.eventsourcing_env, clock=clock)
    try:
        assert other.react(USER, "chan:2", "❤️", tg()).ok
        assert app.react(USER, "chan:3", "❤️", tg()).ok  # stale cache -> conflict -> retry
        assert app.react(USER, "chan:2", "❤️", tg()).outcome == "already_reacted"
    finally:
        other.close()
    fresh = DianaApplication(services.database.eventsourcing_env, clock=clock)
    try:
        assert fresh.get_player(USER).balance == 30
    finally:
        fresh.close()


def test_an_old_player_registered_event_is_upcast(app: DianaApplication) -> None:
    """Version 1 of PlayerRegistered had no language_code: it reads as Spanish."""
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2025-12-01T10:00:00+00:00"},
        "originator_topic": "domain.player:Player",
        "causation": "tg:update:1",
        "actor": "tg:user:31",
        "telegram_id": 31,
        "display_name": "Vieja",
    }
    stored = StoredEvent(
        originator_id=player_id(31),
        originator_version=1,
        topic="domain.player:Player.PlayerRegistered",
        state=json.dumps(state).encode(),
    )
    app.recorder.insert_events([stored])
    player = app.get_player(31)
    assert (player.display_name.text, player.language_code.text) == ("Vieja", "es")
    event = app.mapper.to_domain_event(app.recorder.select_events(player_id(31))[0])
    assert event.language_code.text == "es" and event.language_code.legacy  # plain text, v1
