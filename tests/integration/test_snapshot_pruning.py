"""Pruning old snapshots (issue 12, item 3): each aggregate keeps its latest N, events stay,
and an aggregate still loads equal to the full replay of its events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.crafted import CraftedWriter
from dianabot.adapters.eventstore.snapshots import snapshot_pruner, snapshot_versions
from dianabot.application.clock import ManualClock
from dianabot.application.jobs import PruneSnapshots
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from dianabot.domain.player import Player
from eventsourcing.application import Repository

from tests.conftest import make_settings

ANA, BEA = 701, 702
EVENTS = 5_000


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as wired:
        yield wired


def state(aggregate: Any) -> dict[str, Any]:
    return {key: value for key, value in vars(aggregate).items() if key != "_pending_events"}


def long_history(services: Services, user: int, events: int) -> None:
    """A registered player with `events` events: reactions written straight to the store."""
    app, clock = services.app, services.clock
    assert app.register_player(user, "Ana", Origin.telegram(1, user)).ok
    writer = CraftedWriter(app, batch_size=2_000)
    stream = player_id(user)
    for n in range(2, events + 1):
        writer.append(
            Player.ReactionRecorded,  # type: ignore[attr-defined]
            stream,
            clock.now(),
            causation=f"tg:0:update:{n}",
            actor=f"tg:user:{user}",
            post=f"post:{n}",
            emoji="❤",
        )
    writer.flush()


def test_a_5000_event_player_keeps_its_latest_snapshots_and_loads_equal_to_a_replay(
    services: Services,
) -> None:
    app = services.app
    long_history(services, ANA, EVENTS)
    long_history(services, BEA, 60)
    ana, bea = player_id(ANA), player_id(BEA)
    taken = list(range(250, EVENTS + 1, 250))
    for version in taken:
        app.take_snapshot(ana, version=version)
    app.take_snapshot(bea, version=40)
    app.take_snapshot(bea, version=60)
    assert snapshot_versions(app, ana) == taken
    before = state(Repository(app.events).get(ana))
    assert before["_version"] == EVENTS

    pruner = snapshot_pruner(app)
    assert pruner is not None
    job = PruneSnapshots(pruner, keep=3, interval=60)
    assert job.run() == f"{len(taken) - 3} snapshot(s) deleted"

    assert snapshot_versions(app, ana) == taken[-3:]
    assert snapshot_versions(app, bea) == [40, 60]  # fewer than three: untouched
    assert len(app.recorder.select_events(ana)) == EVENTS  # events are never deleted
    loaded = Repository(app.events, snapshot_store=app.snapshots).get(ana)
    assert state(loaded) == before
    assert len(loaded.reacted_posts) == EVENTS - 1
    # An as-of load of a version older than every kept snapshot replays from the events.
    old = Repository(app.events, snapshot_store=app.snapshots).get(ana, version=1_000)
    assert state(old) == state(Repository(app.events).get(ana, version=1_000))

    assert pruner.prune(3) == 0  # nothing more to do
    assert pruner.prune(1) == 3  # keep=1: the latest only (bea's older one too)
    assert snapshot_versions(app, ana) == [EVENTS]
    assert snapshot_versions(app, bea) == [60]
    assert state(Repository(app.events, snapshot_store=app.snapshots).get(ana)) == before
    with pytest.raises(ValueError):
        pruner.prune(0)


def test_snapshots_written_by_commands_are_pruned_while_new_ones_keep_coming(
    services: Services,
) -> None:
    """The application's own snapshots (every 20 Player events), pruned between commands."""
    app, clock = services.app, services.clock
    assert app.register_player(ANA, "Ana", Origin.telegram(1, ANA)).ok
    pruner = snapshot_pruner(app)
    assert pruner is not None
    for update in range(2, 202):
        clock.advance(minutes=1)
        assert app.react(ANA, f"post:{update}", "❤", Origin.telegram(update, ANA)).ok
        if update % 50 == 0:
            assert app.flush_snapshots()
            pruner.prune(2)
    assert app.flush_snapshots()
    pruner.prune(2)
    player = app.get_player(ANA)
    assert player is not None
    kept = snapshot_versions(app, player_id(ANA))
    assert len(kept) == 2 and player.version - 20 < kept[-1] <= player.version  # the latest two
    loaded = Repository(app.events, snapshot_store=app.snapshots).get(player_id(ANA))
    assert state(loaded) == state(Repository(app.events).get(player_id(ANA)))
