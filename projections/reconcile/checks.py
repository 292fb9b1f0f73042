"""The row checks of DOMAIN.md section 5, run on both sides: the live rows and the replay's.

Each check reads one `Side` (rows of the tables it needs) and returns its issues; `run_checks`
runs every check on both sides and decides where each problem is: one the replay shows too is in
the history, one only the live rows show is in a read model. The checks are plain functions of
rows, so the whole-log diff and the per-user check share them (each fetches its rows its own way).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from dianabot.domain.rules import level_for
from dianabot.projections.base import Row
from dianabot.projections.reconcile.report import HISTORY, READ_MODEL, Findings, Problem
from dianabot.projections.schema import from_json_list

VIP_GRACE = timedelta(minutes=15)
"""How long after a VIP period ends its VipExpired may still be missing (the expiry job's lag)."""


@dataclass
class Side:
    """One side's rows of the tables the checks read (live, or rebuilt by the replay)."""

    player_points: list[Row] = field(default_factory=list)
    badges_held: list[Row] = field(default_factory=list)
    badge_definitions: list[Row] = field(default_factory=list)
    story_state: list[Row] = field(default_factory=list)
    story_versions: list[Row] = field(default_factory=list)
    vip_members: list[Row] = field(default_factory=list)

    CHECKED_TABLES: ClassVar[tuple[str, ...]] = (
        "player_points",
        "badges_held",
        "badge_definitions",
        "story_state",
        "story_versions",
        "vip_members",
    )


Issue = tuple[str, str, str, dict[str, Any]]
"""(projection, key, detail, row) of one problem found on one side."""


def latest_versions(story_versions: list[Row]) -> dict[str, Row]:
    """The published (highest) version row of each story."""
    latest: dict[str, Row] = {}
    for row in story_versions:
        if row["slug"] not in latest or row["version"] > latest[row["slug"]]["version"]:
            latest[row["slug"]] = row
    return latest


def check_negative_balances(side: Side) -> list[Issue]:
    return [
        (
            "player_points",
            f"player_points:{row['player_id']}",
            f"user {row['telegram_id']} has a balance of {row['balance']}",
            row,
        )
        for row in side.player_points
        if row["balance"] < 0
    ]


def check_levels(side: Side) -> list[Issue]:
    issues = []
    for row in side.player_points:
        expected = level_for(max(0, row["lifetime"])).number
        if row["level"] != expected:
            issues.append(
                (
                    "player_points",
                    f"player_points:{row['player_id']}",
                    f"user {row['telegram_id']} is level {row['level']}; "
                    f"{row['lifetime']} lifetime besitos give level {expected}",
                    row,
                )
            )
    return issues


def check_duplicate_badges(side: Side) -> list[Issue]:
    holders: dict[tuple[int, str], list[Row]] = {}
    for row in side.badges_held:
        if row["held"]:
            holders.setdefault((row["telegram_id"], row["badge_slug"]), []).append(row)
    return [
        (
            "badges_held",
            f"badges_held:{telegram_id}:{slug}",
            f"user {telegram_id} holds badge {slug!r} {len(rows)} times",
            rows[0],
        )
        for (telegram_id, slug), rows in holders.items()
        if len(rows) > 1
    ]


def check_badge_definitions(side: Side) -> list[Issue]:
    definitions = {row["slug"]: row for row in side.badge_definitions}
    issues = []
    for row in side.badges_held:
        if not row["held"]:
            continue
        definition = definitions.get(row["badge_slug"])
        if definition is None:
            detail = f"user {row['telegram_id']} holds badge {row['badge_slug']!r}: never defined"
        # Strictly after: an award at the retirement's own instant was recorded before it (the
        # domain refuses awards once a badge is retired).
        elif definition["retired_at"] is not None and definition["retired_at"] < row["awarded_at"]:
            detail = (
                f"user {row['telegram_id']} was awarded {row['badge_slug']!r} at "
                f"{row['awarded_at'].isoformat()}, after it was retired"
            )
        else:
            continue
        issues.append(("badges_held", f"badges_held:{row['award_id']}", detail, row))
    return issues


def check_story_references(side: Side) -> list[Issue]:
    latest = latest_versions(side.story_versions)
    fragments = {slug: set(from_json_list(row["fragment_ids"])) for slug, row in latest.items()}
    issues = []
    for row in side.story_state:
        slug = row["story_slug"]
        if slug not in latest:
            detail = (
                f"user {row['telegram_id']} is in story {slug!r}, which has no published version"
            )
        elif row["fragment_id"] not in fragments[slug]:
            detail = (
                f"user {row['telegram_id']} stands on {row['fragment_id']!r}, which version "
                f"{latest[slug]['version']} of {slug!r} does not have"
            )
        else:
            continue
        issues.append(("story_state", f"story_state:{row['progress_id']}", detail, row))
    return issues


def check_vip_roles(side: Side, now: datetime, grace: timedelta = VIP_GRACE) -> list[Issue]:
    issues = []
    for row in side.vip_members:
        until = row["vip_until"]
        if row["is_vip"] and (until is None or now >= until + grace):
            ended = until.isoformat() if until else "never set"
            detail = f"flagged VIP, but the period ended ({ended}) with no VipExpired"
        elif not row["is_vip"] and until is not None and now < until:
            detail = f"not flagged VIP, but the period runs until {until.isoformat()}"
        else:
            continue
        issues.append(("vip_members", f"vip_members:{row['player_id']}", detail, row))
    return issues


def check_orphaned_badges(live: Side, rebuilt: Side) -> list[Issue]:
    """Live held badges with no held row of the same award in the replay (needs both sides)."""
    standing = {row["award_id"] for row in rebuilt.badges_held if row["held"]}
    return [
        (
            "badges_held",
            f"badges_held:{row['award_id']}",
            f"user {row['telegram_id']} holds {row['badge_slug']!r} with no standing award "
            "event in the history",
            row,
        )
        for row in live.badges_held
        if row["held"] and row["award_id"] not in standing
    ]


SIDE_CHECKS: dict[str, Callable[..., list[Issue]]] = {
    "negative_balance": check_negative_balances,
    "level_mismatch": check_levels,
    "duplicate_badge": check_duplicate_badges,
    "badge_definition": check_badge_definitions,
    "invalid_story_reference": check_story_references,
    "vip_role": check_vip_roles,
}
"""The checks that read one side alone, by the name they report under."""


def run_checks(
    findings: Findings,
    live: Side,
    rebuilt: Side,
    now: datetime,
    orphans: list[Row] | None = None,
) -> None:
    """Every check on both sides; a problem the replay shows too is in the history.

    `orphans`: live badge rows already known to lack a standing award in the replay (the full
    reconciliation finds them in SQL); by default they are found from both sides' rows.
    """
    for name, check in SIDE_CHECKS.items():
        args = (now,) if name == "vip_role" else ()
        in_history = {}
        for projection, key, detail, row in check(rebuilt, *args):
            in_history[key] = True
            findings.add(Problem(name, projection, key, HISTORY, detail, None, row))
        for projection, key, detail, row in check(live, *args):
            if key not in in_history:
                findings.add(Problem(name, projection, key, READ_MODEL, detail, row, None))
    if orphans is not None:
        live, rebuilt = Side(badges_held=orphans), Side()
    for projection, key, detail, row in check_orphaned_badges(live, rebuilt):
        findings.add(Problem("orphaned_badge", projection, key, READ_MODEL, detail, row, None))


def row_problem(
    projection: str,
    base: str,
    item: Hashable,
    live: Row | None,
    rebuilt: Row | None,
    *,
    counted_only: bool = False,
) -> Problem:
    """The `row_differs` problem of one key, found by either diff (whole log or one user).

    `counted_only`: past the examples kept, a problem only counts; it carries no rows.
    """
    key = f"{base}:{_key_text(item)}"
    if counted_only:
        return Problem("row_differs", projection, key, READ_MODEL, "")
    if live is None:
        detail = "missing from the live table"
    elif rebuilt is None:
        detail = "in the live table, but the history has no such row"
    else:
        changed = sorted(c for c in live if live[c] != rebuilt.get(c))
        detail = "differs in " + ", ".join(changed)
    return Problem("row_differs", projection, key, READ_MODEL, detail, live, rebuilt)


def _key_text(item: Hashable) -> str:
    return ":".join(str(part) for part in item) if isinstance(item, tuple) else str(item)
