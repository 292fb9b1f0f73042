"""Snapshots: taken as a player's history grows, used when loading, and equal to a full replay."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import InviteToVip, RewardDecision
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.errors import DuplicateCommand
from dianabot.domain.ids import player_id
from dianabot.domain.player import Player
from dianabot.domain.rules import PointSource
from eventsourcing.application import Repository
from eventsourcing.persistence import EventStore

from tests.conftest import by_system, make_settings

USER = 7


@pytest.fixture(params=[False, True], ids=["direct", "group-commit"])
def services(
    request: pytest.FixtureRequest, database_url: str, clock: ManualClock
) -> Iterator[Services]:
    settings = make_settings(database_url, group_commit=request.param)
    with bootstrap(settings, clock=clock) as wired:
        yield wired


class CountingEvents:
    """An event store stand-in that counts the events a repository reads."""

    def __init__(self, events: EventStore[UUID]) -> None:
        self._events = events
        self.read = 0

    def get(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in self._events.get(*args, **kwargs):
            self.read += 1
            yield event


def state(aggregate: Any) -> dict[str, Any]:
    return {key: value for key, value in vars(aggregate).items() if key != "_pending_events"}


def grow_history(app: DianaApplication, clock: ManualClock, events: int) -> Player:
    """Messages, reactions, polls, story rewards and daily check-ins until `events` is reached."""
    assert app.register_player(USER, "Ana", Origin.telegram(1, USER)).ok
    update = 1
    while (player := app.get_player(USER)).version < events:
        update += 1
        clock.advance(minutes=31)
        origin = Origin.telegram(update, USER)
        kind = update % 5
        if kind == 0:
            result = app.count_message(USER, f"msg:{update}", origin)
        elif kind == 1:
            result = app.react(USER, f"post:{update}", "❤", origin)
        elif kind == 2:
            result = app.answer_poll(USER, f"poll:{update}", origin)
        elif kind == 3:
            system = Origin.system(
                "story", str(update)
            )  # a reward comes from the story, not the user
            result = app.award_points(USER, PointSource.STORY, 5, f"fragment:{update}", system)
        else:
            clock.advance(timedelta(hours=24))
            result = app.check_in(USER, origin)
        assert result.ok, result
    return player


def test_a_long_history_loads_from_a_snapshot_equal_to_a_full_replay(
    services: Services,
) -> None:
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    interval = app.snapshotting_intervals[Player]
    player = grow_history(app, clock, 2 * interval + interval // 2 + 1)
    pid = player_id(USER)
    assert app.snapshots is not None

    assert app.flush_snapshots()
    snapshots = list(app.snapshots.get(pid))
    assert len(snapshots) >= 2, "a snapshot is due every time the history crosses the interval"
    assert [s.originator_version for s in snapshots] == sorted(
        {s.originator_version for s in snapshots}
    )
    latest = snapshots[-1].originator_version
    assert player.version - interval < latest <= player.version

    full_replay_events = CountingEvents(app.events)
    replayed = Repository(full_replay_events).get(pid)  # type: ignore[arg-type]
    with_snapshots = CountingEvents(app.events)
    loaded = Repository(with_snapshots, snapshot_store=app.snapshots).get(pid)  # type: ignore[arg-type]

    assert state(loaded) == state(replayed) == state(player)
    assert full_replay_events.read == player.version
    assert with_snapshots.read == player.version - latest < interval  # the snapshot was used


def test_a_history_longer_than_the_command_memory_loads_equal_to_a_full_replay(
    services: Services,
) -> None:
    """Past 256 remembered command keys the oldest generations are dropped, and past a few
    hundred reactions the grow-only sets are packed, sorted and merged: a load from the latest
    snapshot still equals the full replay, and a re-delivered recent update is still refused."""
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    player = grow_history(app, clock, 420)
    pid = player_id(USER)
    assert app.flush_snapshots()
    replayed = Repository(app.events).get(pid)
    loaded = Repository(app.events, snapshot_store=app.snapshots).get(pid)
    assert state(loaded) == state(replayed) == state(player)
    assert len(loaded.recent_commands) >= 256 and loaded.recent_commands.count > 256
    recent_post = sorted(loaded.reacted_posts, key=lambda post: int(post.split(":")[1]))[-1]
    update = int(recent_post.split(":")[1])
    redelivered = Origin.telegram(update, USER).cause(clock.now())
    with pytest.raises(DuplicateCommand):  # the loaded copy remembers it, as the cached one does
        loaded.react(recent_post, "❤", redelivered)
    assert app.react(USER, recent_post, "❤", Origin.telegram(update, USER)).outcome == "duplicate"


def test_every_snapshot_equals_the_replay_at_its_version(services: Services) -> None:
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    interval = app.snapshotting_intervals[Player]
    grow_history(app, clock, 3 * interval + 1)
    pid = player_id(USER)
    assert app.snapshots is not None
    assert app.flush_snapshots()
    snapshots = list(app.snapshots.get(pid))
    assert len(snapshots) >= 3
    replay = Repository(app.events)
    for snapshot in snapshots:
        at_version = replay.get(pid, version=snapshot.originator_version)
        assert state(snapshot.mutate(None)) == state(at_version)


def test_a_failing_snapshot_never_fails_the_command(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    assert app.snapshots is not None

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("snapshot store is full")

    app.snapshots.put = broken  # type: ignore[method-assign]
    interval = app.snapshotting_intervals[Player]
    with caplog.at_level(logging.ERROR):
        player = grow_history(app, clock, interval + 2)
        assert app.flush_snapshots()
    assert "snapshot failed after commit" in caplog.text
    fresh = Repository(app.events, snapshot_store=app.snapshots).get(player_id(USER))
    assert state(fresh) == state(player)


def test_a_snapshot_from_before_the_policies_state_loads_and_plays_on(
    services: Services,
) -> None:
    """A Player snapshot written before the chapters rewarded for decisions and the VIP
    invitations were kept (no `decision_chapters`, no `vip_invited_at`) loads, and both rules
    work from it."""
    app, clock = services.app, services.clock
    assert isinstance(clock, ManualClock)
    player = grow_history(app, clock, 12)
    assert app.snapshots is not None and app.flush_snapshots()
    old = app.get_player(USER)
    assert old is not None
    del old.decision_chapters
    snapshot_class = getattr(Player, "Snapshot", app.snapshot_class)
    app.snapshots.put([snapshot_class.take(old)])
    app._forget([player])
    loaded = app.get_player(USER)
    assert loaded is not None and not hasattr(loaded, "decision_chapters")
    assert loaded.last_vip_invitation is None

    system = by_system()
    reward = RewardDecision(USER, "diana", 1, (), ("event:x:1",))
    assert app.bus.handle(reward, system).event_names() == ["PointsAwarded"]
    assert app.bus.handle(reward, by_system()).events == ()  # once, from the rebuilt state
    invite = InviteToVip(USER, "diana", "f1", None, ("event:x:2",))
    assert app.bus.handle(invite, by_system()).event_names() == ["VipInvitationQueued"]
    assert app.bus.handle(invite, by_system()).outcome == "already_invited"
    replayed: Player = Repository(app.events).get(player_id(USER))  # type: ignore[arg-type]
    current = app.get_player(USER)
    assert current is not None and current.decision_chapters == replayed.decision_chapters
    assert current.last_vip_invitation == replayed.last_vip_invitation == clock.now()
