"""The invariant catalogue: plain functions over the wired services (event history, aggregates,
read models). Each raises AssertionError saying what broke; `check_all` runs them all.

A new invariant is a function `(services) -> None` added to `CHEAP` (after every step) or
`FULL` (at the end of an example)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from dianabot.adapters.bootstrap import Services
from dianabot.adapters.eventstore.log import event_log
from dianabot.domain.rules import level_for

Invariant = Callable[[Services], None]


def history(services: Services) -> list[Any]:
    """Every event of the log, decoded, in log order."""
    log = event_log(services.app)
    return [log.decode(row) for page in log.pages(0, log.head(), 10_000) for row in page]


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


def no_update_causes_effects_twice(services: Services) -> None:
    """No stream holds two events of one Telegram update with the same name and payload: a
    re-delivered update had its effect again (one update's distinct events, e.g. a check-in's
    award and streak bonus, differ in payload)."""
    seen: set[tuple[Any, ...]] = set()
    skip = {"originator_version", "timestamp"}
    for event in history(services):
        causation = getattr(event, "causation", "")
        if not causation.startswith("tg:"):
            continue
        payload = tuple(sorted((k, repr(v)) for k, v in vars(event).items() if k not in skip))
        key = (event.originator_id, _name(event), payload)
        assert key not in seen, (
            f"update {causation} had effects twice: {_name(event)} on {event.originator_id}"
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


def audit_chain_verifies(services: Services) -> None:
    """Hook for issue 15: skipped (returns) until the store has a chain API."""
    verify = getattr(services.app, "verify_audit_chain", None)
    if verify is None:
        return
    assert verify(), "the audit chain does not verify"


CHEAP: list[Invariant] = [
    balance_never_negative,
    balance_is_sum_of_points_events,
    level_is_function_of_lifetime,
    badges_held_once_with_standing_award,
    no_update_causes_effects_twice,
    story_state_on_published_fragment,
]
FULL: list[Invariant] = [*CHEAP, live_projection_equals_replay, audit_chain_verifies]


def check_all(services: Services, invariants: list[Invariant] | None = None) -> None:
    for invariant in FULL if invariants is None else invariants:
        invariant(services)
