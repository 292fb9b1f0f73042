"""A corrupt stored event hides nothing else (issue 11, items 1 and 2, the read side).

An undecodable event stopped a full reconciliation at its position: only `projection_health`
was reported, other differences went unreported, and `--fix` tried to rebuild from the broken
history and failed. Now the replay goes past the event and names its position
(`corrupt_history`), every other difference is still found, and `--fix` repairs what it can
and refuses, naming the position, to rebuild the projections that would need that event.
Rebuild reports the position instead of crashing. Both orders are covered: the event corrupted
before the live projections read it (they stop before it) and after (the tampered case: live
rows are past it, the replay is not).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.domain.ids import player_id
from dianabot.projections.positions import FAILED
from dianabot.projections.rebuild import RebuildError
from dianabot.projections.reconcile import problems_for
from dianabot.projections.service import Projections
from sqlalchemy import update

from tests.conftest import make_settings
from tests.integration.test_corrupt_history import BROKEN, HEALTHY, corrupt, played


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock) as wired:
        yield wired


def projections_of(services: Services) -> Projections:
    assert services.projections is not None
    return services.projections


def corrupt_position(services: Services, version: int) -> int:
    """The log position of `BROKEN`'s event at `version`."""
    events = projections_of(services).events
    rows = [r for r in events.streams([player_id(BROKEN)], events.head())]
    return next(r.id for r in rows if r.originator_version == version)


def tamper_healthy_balance(projections: Projections) -> None:
    """An unrelated difference in a projection the corrupt event does not block."""
    table = projections.table("player_points")
    with projections.store.write() as conn:
        conn.execute(
            update(table).where(table.c.player_id == player_id(HEALTHY)).values(balance=999)
        )


@pytest.mark.parametrize("projected_first", [True, False], ids=["tampered-later", "never-read"])
def test_reconcile_names_the_corrupt_position_reports_the_rest_and_fix_refuses(
    services: Services, projected_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    projections = projections_of(services)
    played(services)
    if projected_first:
        projections.catch_up()
    position = corrupt_position(services, 2)
    corrupt(services, 2, delete=False)
    projections.catch_up()
    live = {s.name: s for s in projections.status()}
    if not projected_first:
        assert live["player_points"].state == FAILED
        assert live["player_points"].failed_position == position
    tamper_healthy_balance(projections)
    engagement = projections.table("engagement")  # a difference the event does not block
    with projections.store.write() as conn:
        conn.execute(update(engagement).values(reactions=50))

    with caplog.at_level(logging.INFO):
        report = projections.reconcile()

    assert not report.consistent
    corrupt_found = problems_for(report, "corrupt_history")
    assert [p.key for p in corrupt_found] == [f"position:{position}"]
    assert "cannot be decoded" in corrupt_found[0].detail
    differing = {p.key.split(":")[0] for p in problems_for(report, "row_differs")}
    assert "engagement" in differing  # found although the log is corrupt earlier
    if projected_first:  # the replay compared past the corrupt event: HEALTHY's tamper shows
        assert f"player_points:{player_id(HEALTHY)}" in {
            p.key for p in problems_for(report, "row_differs")
        }
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"

    fixed = projections.reconcile(fix=True)
    by_target = {f.target: f for f in fixed.fixes}
    refused = by_target["player_points"]
    assert refused.outcome == "refused" and str(position) in refused.detail
    swapped = [f for f in fixed.fixes if f.action == "swap" and f.outcome == "ok"]
    assert [f.target for f in swapped] == ["engagement"]
    after = projections.reconcile()
    assert not [p for p in problems_for(after, "row_differs") if p.projection == "engagement"]
    assert [p.key for p in problems_for(after, "corrupt_history")] == [f"position:{position}"]


def test_one_user_reconcile_of_a_corrupt_stream_reports_and_refuses(services: Services) -> None:
    projections = projections_of(services)
    played(services)
    projections.catch_up()
    position = corrupt_position(services, 2)
    corrupt(services, 2, delete=False)

    report = projections.reconcile(user=BROKEN)
    assert [p.key for p in problems_for(report, "corrupt_history")] == [f"position:{position}"]
    fixed = projections.reconcile(user=BROKEN, fix=True)
    assert fixed.fixes and all(f.outcome == "refused" for f in fixed.fixes)
    assert all(str(position) in f.detail for f in fixed.fixes)
    assert projections.reconcile(user=HEALTHY).consistent


def test_rebuild_of_a_corrupt_history_names_the_position_and_keeps_the_live_rows(
    services: Services,
) -> None:
    projections = projections_of(services)
    played(services)
    projections.catch_up()
    position = corrupt_position(services, 2)
    corrupt(services, 2, delete=False)
    before = {s.name: s.generation for s in projections.status()}

    with pytest.raises(RebuildError, match=f"failed at {position}"):
        projections.rebuild(["player_points"])

    after = {s.name: s for s in projections.status()}
    assert after["player_points"].generation == before["player_points"]  # not swapped
    projections.rebuild(["vip_members"])  # a projection that does not need the event
