"""The invariant catalogue: plain functions over the wired services (event history, aggregates,
read models). Each raises AssertionError saying what broke; `check_all` runs them all.

A new invariant is a function `(services) -> None` added to `CHEAP` (after every step) or
`FULL` (at the end of an example)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dianabot.adapters.bootstrap import Services
from dianabot.adapters.eventstore.chain import AuditChain
from dianabot.adapters.eventstore.log import event_log
from dianabot.domain.rules import level_for
from sqlalchemy import select

Invariant = Callable[[Services], None]


_seen: dict[str, Any] = {"app": None, "head": 0, "events": []}
"""The last application's decoded log, read on from where it was: the cheap invariants run after
every step, and a re-read of the whole log each time dominated the machine's run time."""


def history(services: Services) -> list[Any]:
    """Every event of the log, decoded, in log order."""
    app = services.app
    if _seen["app"] is not app:
        _seen.update(app=app, head=0, events=[])
    log = event_log(app)
    head = log.head()
    if head > _seen["head"]:
        events: list[Any] = _seen["events"]
        for page in log.pages(_seen["head"], head, 10_000):
            events.extend(log.decode(row) for row in page)
        _seen["head"] = head
    return list(_seen["events"])


def _name(event: Any) -> str:
    return type(event).__name__


def _players(events: list[Any]) -> dict[Any, int]:
    return {e.originator_id: e.telegram_id for e in events if _name(e) == "PlayerRegistered"}


def balance_never_negative(services: Services) -> None:
    balances: dict[Any, int] = defaultdict(int)
    for event in history(services):
        balances[event.originator_id] += _signed_points(event)
        assert balances[event.originator_id] >= 0, (
            f"balance of {event.originator_id} went to {balances[event.originator_id]} "
            f"at {_name(event)} v{event.originator_version}"
        )


def _signed_points(event: Any) -> int:
    name = _name(event)
    if name in ("PointsAwarded", "PointsAdjusted"):
        return int(event.amount)
    if name == "PointsSpent":
        return -int(event.amount)
    return 0


def balance_is_sum_of_points_events(services: Services) -> None:
    events = history(services)
    sums: dict[Any, int] = defaultdict(int)
    for event in events:
        sums[event.originator_id] += _signed_points(event)
    for telegram_id in _players(events).values():
        player = services.app.get_player(telegram_id)
        assert player is not None
        expected = sums[player.id]
        assert player.balance == expected, (
            f"player {telegram_id}: balance {player.balance} != signed sum {expected}"
        )


def level_is_function_of_lifetime(services: Services) -> None:
    for telegram_id in _players(history(services)).values():
        player = services.app.get_player(telegram_id)
        assert player is not None
        want = level_for(player.lifetime_earned).number
        assert player.level == want, (
            f"player {telegram_id}: level {player.level} but lifetime "
            f"{player.lifetime_earned} gives {want}"
        )


def badges_held_once_with_standing_award(services: Services) -> None:
    awards: dict[Any, list[str]] = defaultdict(list)
    for event in history(services):
        if _name(event) in ("BadgeAwarded", "BadgeRevoked", "BadgeReawarded"):
            awards[event.originator_id].append(_name(event))
    for award, names in awards.items():
        held = False
        for name in names:
            assert held != (name != "BadgeRevoked"), f"award {award}: {names} (held twice?)"
            held = name != "BadgeRevoked"


def _effects_once(services: Services, prefix: str, what: str) -> None:
    """No stream holds two events of one cause (causation starting with `prefix`) with the same
    name and payload: that cause had its effect again (one cause's distinct events, e.g. a
    check-in's award and streak bonus, differ in payload)."""
    seen: set[tuple[Any, ...]] = set()
    skip = {"originator_version", "timestamp"}
    for event in history(services):
        causation = getattr(event, "causation", "")
        if not causation.startswith(prefix):
            continue
        payload = tuple(sorted((k, repr(v)) for k, v in vars(event).items() if k not in skip))
        key = (event.originator_id, _name(event), payload)
        assert key not in seen, (
            f"{what} {causation} had effects twice: {_name(event)} on {event.originator_id}"
        )
        seen.add(key)


def no_update_causes_effects_twice(services: Services) -> None:
    """A re-delivered Telegram update has its effect once."""
    _effects_once(services, "tg:", "update")


def no_event_causes_effects_twice(services: Services) -> None:
    """A policy's reaction to one event (causation `event:<stream>:<version>`) happens once,
    however often the event is delivered (a restart, a lost position)."""
    _effects_once(services, "event:", "event")


ONCE_ONLY_SOURCES = frozenset({"reaction", "poll", "story_decision"})
"""Point sources whose reference is earned once per player, forever (a post, a poll, a story's
chapter): docs/rules.md."""


def once_only_awards_awarded_once(services: Services) -> None:
    seen: set[tuple[Any, str, str]] = set()
    for event in history(services):
        if _name(event) != "PointsAwarded" or str(event.source) not in ONCE_ONLY_SOURCES:
            continue
        key = (event.originator_id, str(event.source), event.reference)
        assert key not in seen, (
            f"{event.source} {event.reference!r} awarded twice to {event.originator_id} "
            f"(v{event.originator_version}, causation {event.causation})"
        )
        seen.add(key)


def story_state_on_published_fragment(services: Services) -> None:
    published = services.app.published_story("diana")
    if published is None:
        return
    story = published[1]
    for telegram_id in _players(history(services)).values():
        progress = services.app.get_progress(telegram_id, "diana")
        if progress is not None:
            assert story.has_fragment(progress.fragment_id), (
                f"player {telegram_id} stands on {progress.fragment_id}, not in the story"
            )


def live_projection_equals_replay(services: Services) -> None:
    projections = services.projections
    assert projections is not None
    projections.catch_up()
    report = projections.reconcile()
    assert report.consistent, f"live read models differ from a replay: {report}"


def _utc(moment: datetime | None) -> datetime | None:
    """A read model's timestamp as an aware UTC one (SQLite gives naive ones back)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _rows(services: Services, table: str) -> dict[Any, dict[str, Any]]:
    projections = services.projections
    assert projections is not None
    with projections.store.read() as conn:
        found = conn.execute(select(projections.table(table))).mappings().all()
    return {row["player_id"]: dict(row) for row in found}


def read_model_agrees_with_history(services: Services) -> None:
    """Once caught up, `player_points` shows each player's balance, lifetime and level as the
    Player's own history has them (a projector applying an event twice shows more)."""
    assert services.projections is not None
    services.projections.catch_up()
    rows = _rows(services, "player_points")
    for telegram_id in _players(history(services)).values():
        player = services.app.get_player(telegram_id)
        assert player is not None
        row = rows.get(player.id)
        assert row is not None, f"player {telegram_id} has no player_points row"
        shown = (row["balance"], row["lifetime"], row["level"])
        truth = (player.balance, player.lifetime_earned, player.level)
        assert shown == truth, (
            f"player {telegram_id}: read model (balance, lifetime, level) {shown} "
            f"!= history {truth}"
        )


def vip_flag_matches_period(services: Services) -> None:
    """Once the workers have caught up (the expiry job, then the projector), a player's VIP flag
    in `vip_members` says whether the VIP period the events give (the last `VipGranted` or
    `VipShortened`) runs now, and the row's end is that period's end."""
    services.app.expire_due_vips()
    assert services.projections is not None
    services.projections.catch_up()
    now = services.clock.now()
    until: dict[Any, datetime] = {}
    for event in history(services):
        if _name(event) in ("VipGranted", "VipShortened"):
            until[event.originator_id] = event.until
    rows = _rows(services, "vip_members")
    for stream in set(until) | set(rows):
        end = until.get(stream)
        row = rows.get(stream, {"is_vip": False, "vip_until": None})
        expected = end is not None and now < end
        assert bool(row["is_vip"]) == expected, (
            f"{stream}: VIP flag {row['is_vip']} but the period ends {end} (now {now})"
        )
        assert _utc(row["vip_until"]) == end, f"{stream}: vip_until {row['vip_until']} != {end}"


def audit_chain_verifies(services: Services) -> None:
    """The keyed hash chain over the log recomputes (`dianabot audit verify`): no event was
    altered, deleted, inserted or reordered behind the application's back."""
    report = AuditChain(services.app).verify()
    assert report.ok, f"the audit chain does not verify: {report.problem}"


CHEAP: list[Invariant] = [
    balance_never_negative,
    balance_is_sum_of_points_events,
    level_is_function_of_lifetime,
    badges_held_once_with_standing_award,
    no_update_causes_effects_twice,
    no_event_causes_effects_twice,
    once_only_awards_awarded_once,
    story_state_on_published_fragment,
]
FULL: list[Invariant] = [
    *CHEAP,
    read_model_agrees_with_history,
    vip_flag_matches_period,
    live_projection_equals_replay,
    audit_chain_verifies,
]
"""`FULL` lets the workers catch up (projectors, the VIP expiry job) before it looks."""
READ_MODEL: list[Invariant] = [
    read_model_agrees_with_history,
    vip_flag_matches_period,
    live_projection_equals_replay,
]
"""The invariants that need the read models (`services.projections`)."""


def check_all(services: Services, invariants: list[Invariant] | None = None) -> None:
    for invariant in FULL if invariants is None else invariants:
        invariant(services)
