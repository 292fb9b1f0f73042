"""Idempotency: a re-delivered update is applied once for at least RETENTION (Telegram's 24 h
re-delivery window) whatever the number of commands in between, on every store and across a
snapshot; update ids are keyed by bot; a paid VIP reference extends VIP once, forever."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.errors import DuplicateCommand
from dianabot.domain.ids import player_id
from dianabot.domain.player import Player
from dianabot.domain.recent import KEPT, RETENTION
from eventsourcing.application import Repository

USER = 7
_updates = itertools.count(100)


def start(app: DianaApplication) -> Origin:
    """A registered user with 10 besitos, who spends 5 (the command re-delivered later)."""
    assert app.register_player(USER, "Ana", Origin.telegram(1, USER)).ok
    assert app.react(USER, "post:first", "❤", Origin.telegram(2, USER)).ok
    spend = Origin.telegram(3, USER)
    assert app.spend_points(USER, 5, "shop", "item:1", spend).ok
    return spend


def others(app: DianaApplication, clock: ManualClock, count: int, within: timedelta) -> None:
    """`count` other commands of the same user, evenly over `within`."""
    step = within / count
    for _ in range(count):
        clock.advance(seconds=step.total_seconds())
        update = next(_updates)
        assert app.react(USER, f"post:{update}", "❤", Origin.telegram(update, USER)).ok


@pytest.mark.parametrize("between", [330, 5_000])
def test_a_spend_redelivered_within_a_day_is_refused_whatever_came_between(
    services: Services, between: int
) -> None:
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    spend = start(app)
    others(app, clock, between, RETENTION - timedelta(minutes=1))
    balance = app.get_player(USER).balance
    assert app.spend_points(USER, 5, "shop", "item:1", spend).outcome == "duplicate"
    assert app.get_player(USER).balance == balance

    # The same memory from the latest snapshot as from a full replay, and it refuses too.
    assert app.flush_snapshots()
    pid = player_id(USER)
    loaded: Player = Repository(app.events, snapshot_store=app.snapshots).get(pid)  # type: ignore[arg-type]
    replayed: Player = Repository(app.events).get(pid)  # type: ignore[arg-type]
    assert loaded.version > loaded.recent_commands.count - len(loaded.recent_commands)
    assert loaded.recent_commands == replayed.recent_commands
    with pytest.raises(DuplicateCommand):
        loaded.spend(5, "shop", "item:1", spend.cause(clock.now()))


def test_a_spend_redelivered_after_the_retention_and_the_floor_is_applied_again(
    services: Services,
) -> None:
    """Documented: past RETENTION and the last KEPT keys a key is forgotten (once the newest
    key of its generation of 64 is that old: a react records two keys, reaction and award)."""
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    spend = start(app)
    others(app, clock, 40, timedelta(minutes=1))  # the rest of its generation
    clock.advance(hours=25)
    others(app, clock, KEPT // 2 + 40, timedelta(hours=1))
    balance = app.get_player(USER).balance
    assert app.spend_points(USER, 5, "shop", "item:1", spend).ok
    assert app.get_player(USER).balance == balance - 5


def test_the_same_update_id_from_two_bots_is_not_a_duplicate(services: Services) -> None:
    app = services.app
    assert app.register_player(USER, "Ana", Origin.telegram(1, USER)).ok
    assert app.react(USER, "post:1", "❤", Origin.telegram(2, USER)).ok
    first, second = Origin.telegram(50, USER, bot_id=111), Origin.telegram(50, USER, bot_id=222)
    assert first.causation == "tg:111:update:50"
    assert app.spend_points(USER, 2, "shop", "item:1", first).ok
    assert app.spend_points(USER, 2, "shop", "item:1", second).ok
    assert app.spend_points(USER, 2, "shop", "item:1", first).outcome == "duplicate"
    assert app.get_player(USER).balance == 6


def paid(update_id: int) -> Origin:
    """What the bot's payment handler issues: the Telegram update as causation, the system as
    actor (only admins and the system may grant VIP)."""
    return Origin(Origin.telegram(update_id, USER).causation, "system:payments")


def test_a_stars_charge_extends_vip_once_whatever_update_delivers_it(services: Services) -> None:
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    assert app.register_player(USER, "Ana", Origin.telegram(1, USER)).ok
    assert app.grant_vip(USER, 30, "stars", "charge:abc", paid(2)).ok
    until = app.get_player(USER).vip_until
    assert until is not None
    clock.advance(days=3)
    again = app.grant_vip(USER, 30, "stars", "charge:abc", paid(3))
    assert again.outcome == "duplicate" and again.details["reference"] == "charge:abc"
    assert app.get_player(USER).vip_until == until
    assert app.grant_vip(USER, 30, "stars", "charge:def", paid(4)).ok
    assert app.get_player(USER).vip_until == until + timedelta(days=30)
    # Admin grants carry a free-text reason, which may repeat.
    assert app.grant_vip(USER, 1, "admin", "goodwill", paid(5)).ok
    assert app.grant_vip(USER, 1, "admin", "goodwill", paid(6)).ok

    # Forever: past the command memory, and from a snapshot as from a full replay.
    others(app, clock, 2 * KEPT, 3 * RETENTION)
    assert app.grant_vip(USER, 30, "stars", "charge:abc", paid(9)).outcome == ("duplicate")
    assert app.flush_snapshots()
    pid = player_id(USER)
    loaded: Player = Repository(app.events, snapshot_store=app.snapshots).get(pid)  # type: ignore[arg-type]
    replayed: Player = Repository(app.events).get(pid)  # type: ignore[arg-type]
    assert loaded.vip_references == replayed.vip_references == {"charge:abc", "charge:def"}
