"""Reconciliation as a replay: rebuild the read models at a fixed position and diff them.

The old bot's reconciliation compared a table with itself. Here the history is the truth:

1. Fix a position P (the head of the log when the run starts) and replay 1..P into fresh shadow
   tables (`projections.rebuild.ShadowBuild`).
2. Compare with the live tables at the same position: the live projections are caught up to P,
   then read in one snapshot whose positions must equal the shadow's (a live runner that moved on
   meanwhile is followed by the shadow), so events arriving during the run never cause a false
   alarm.
3. Run every check of DOMAIN.md section 5 on both sides. A problem the replay shows too is in the
   history (a domain-level problem); one only the live rows show is a read-model problem.
4. `fix=True`: read-model problems are repaired by swapping in the rebuilt tables (or, for one
   user, the rebuilt rows); history problems by issuing the compensating command, which adds
   events. No event is ever edited or deleted.

Per-user mode replays only that user's streams (player, story progress, badge awards, plus the
badge and story definitions the checks need), in log order, up to the live rows' positions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dianabot.application.app import CONSOLE_ADMIN_ID
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.ids import badge_award_id, badge_id, player_id, progress_id, story_id
from dianabot.domain.rules import LEVELS, level_for
from dianabot.projections.base import Projector, Row, rows_by_key
from dianabot.projections.log import LogReader, stream_notifications
from dianabot.projections.rebuild import RebuildError, ShadowBuild, drop_abandoned_shadows
from dianabot.projections.registry import PROJECTORS
from dianabot.projections.runner import FAILED, Progress
from dianabot.projections.schema import TABLES, TableSet, from_json_list
from sqlalchemy import Connection, Table, and_, case, delete, func, or_, select, tuple_, update

log = logging.getLogger(__name__)

HISTORY = "history"
READ_MODEL = "read model"
VIP_GRACE = timedelta(minutes=15)
"""How long after a VIP period ends its VipExpired may still be missing (the expiry job's lag)."""
MAX_EXAMPLES = 5
OPTIMISTIC_ATTEMPTS = 3

CHECKS: dict[str, str] = {
    "negative_balance": "balance below zero",
    "level_mismatch": "level differs from the one lifetime besitos give",
    "orphaned_badge": "badge held with no standing award event",
    "duplicate_badge": "badge held twice by one user",
    "badge_definition": "badge held whose definition is unknown, or retired before the award",
    "invalid_story_reference": "story state on a fragment the published story does not have",
    "vip_role": "VIP flag disagrees with the VIP period",
    "row_differs": "row differs from the replay (missing, extra or changed)",
    "projection_health": "projection failed, or could not be compared at one position",
}


# ----- report ---------------------------------------------------------------------------------


@dataclass
class Problem:
    check: str
    projection: str
    key: str
    where: str
    detail: str
    live: dict[str, Any] | None = None
    rebuilt: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "key": self.key,
            "where": self.where,
            "detail": self.detail,
            "live": _jsonable(self.live),
            "rebuilt": _jsonable(self.rebuilt),
        }


@dataclass
class CheckResult:
    name: str
    description: str
    count: int = 0
    history: int = 0
    examples: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "description": self.description,
            "count": self.count,
            "in_history": self.history,
            "examples": [p.to_dict() for p in self.examples],
        }


@dataclass(frozen=True)
class Fix:
    action: str
    target: str
    outcome: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass
class ReconcileReport:
    position: int
    positions: dict[str, int]
    user: int | None
    checked_at: datetime
    checks: dict[str, CheckResult]
    seconds: float = 0.0
    fixes: list[Fix] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list, repr=False)

    @property
    def consistent(self) -> bool:
        return all(check.count == 0 for check in self.checks.values())

    @property
    def differences(self) -> int:
        return sum(check.count for check in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "position": self.position,
            "positions": self.positions,
            "user": self.user,
            "checked_at": self.checked_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "differences": self.differences,
            "checks": [check.to_dict() for check in self.checks.values()],
            "fixes": [fix.to_dict() for fix in self.fixes],
        }


class Findings:
    """Collects problems: one per (check, key), counted, a few kept as examples per check."""

    def __init__(self, max_examples: int = MAX_EXAMPLES) -> None:
        self.checks = {name: CheckResult(name, text) for name, text in CHECKS.items()}
        self.max_examples = max_examples
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, problem: Problem) -> None:
        if (problem.check, problem.key) in self._seen:
            return
        self._seen.add((problem.check, problem.key))
        self.problems.append(problem)
        result = self.checks[problem.check]
        result.count += 1
        if problem.where == HISTORY:
            result.history += 1
        if len(result.examples) < self.max_examples:
            result.examples.append(problem)


# ----- the rows checks look at ----------------------------------------------------------------


@dataclass
class Side:
    """One side's rows of the tables the checks read (live, or rebuilt by the replay)."""

    player_points: list[Row]
    badges_held: list[Row]
    badge_definitions: list[Row]
    story_state: list[Row]
    story_versions: list[Row]
    vip_members: list[Row]

    CHECKED_TABLES = (
        "player_points",
        "badges_held",
        "badge_definitions",
        "story_state",
        "story_versions",
        "vip_members",
    )


def _candidates(conn: Connection, tables: dict[str, Table], now: datetime) -> Side:
    """The rows of one side that may fail a check, narrowed in SQL (necessary conditions only;
    the Python checks below decide). Reading every row of a million-event history's tables
    through the ORM layer would cost more than the comparison itself."""

    def fetch(statement: Any) -> list[Row]:
        return [dict(r) for r in conn.execute(statement).mappings()]

    side = Side([], [], [], [], [], [])
    if (points := tables.get("player_points")) is not None:
        expected = case(
            *((points.c.lifetime >= level.threshold, level.number) for level in reversed(LEVELS)),
            else_=1,
        )
        side.player_points = fetch(
            select(points).where(or_(points.c.balance < 0, points.c.level != expected))
        )
    if (held := tables.get("badges_held")) is not None:
        definitions = tables["badge_definitions"]
        side.badge_definitions = fetch(select(definitions))
        twice = (
            select(held.c.telegram_id, held.c.badge_slug)
            .where(held.c.held)
            .group_by(held.c.telegram_id, held.c.badge_slug)
            .having(func.count() > 1)
        )
        defined = select(definitions.c.slug).where(definitions.c.slug == held.c.badge_slug)
        retired = defined.where(
            definitions.c.retired_at.is_not(None), definitions.c.retired_at <= held.c.awarded_at
        )
        side.badges_held = fetch(
            select(held).where(
                held.c.held,
                or_(
                    tuple_(held.c.telegram_id, held.c.badge_slug).in_(twice),
                    ~defined.exists(),
                    retired.exists(),
                ),
            )
        )
    if (state := tables.get("story_state")) is not None:
        side.story_versions = fetch(select(tables["story_versions"]))
        latest: dict[str, Row] = {}
        for row in side.story_versions:
            if row["slug"] not in latest or row["version"] > latest[row["slug"]]["version"]:
                latest[row["slug"]] = row
        side.story_state = fetch(select(state).where(state.c.story_slug.not_in(list(latest))))
        for slug, version in latest.items():
            fragments = from_json_list(version["fragment_ids"])
            side.story_state += fetch(
                select(state).where(
                    state.c.story_slug == slug, state.c.fragment_id.not_in(fragments)
                )
            )
    if (vip := tables.get("vip_members")) is not None:
        side.vip_members = fetch(
            select(vip).where(
                or_(
                    and_(
                        vip.c.is_vip,
                        or_(vip.c.vip_until.is_(None), vip.c.vip_until <= now - VIP_GRACE),
                    ),
                    and_(~vip.c.is_vip, vip.c.vip_until > now),
                )
            )
        )
    return side


def _orphan_candidates(conn: Connection, live: Table, rebuilt: Table) -> list[Row]:
    """Live held badges without a held row of the same award in the replay."""
    standing = select(rebuilt.c.award_id).where(
        rebuilt.c.award_id == live.c.award_id, rebuilt.c.held
    )
    statement = select(live).where(live.c.held, ~standing.exists())
    return [dict(r) for r in conn.execute(statement).mappings()]


Issue = tuple[str, str, str, dict[str, Any]]
"""(projection, key, detail, row) of one problem found on one side."""


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
        elif definition["retired_at"] is not None and definition["retired_at"] <= row["awarded_at"]:
            detail = (
                f"user {row['telegram_id']} was awarded {row['badge_slug']!r} at "
                f"{row['awarded_at'].isoformat()}, after it was retired"
            )
        else:
            continue
        issues.append(("badges_held", f"badges_held:{row['award_id']}", detail, row))
    return issues


def check_story_references(side: Side) -> list[Issue]:
    latest: dict[str, Row] = {}
    for row in side.story_versions:
        if row["slug"] not in latest or row["version"] > latest[row["slug"]]["version"]:
            latest[row["slug"]] = row
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
        live, rebuilt = Side([], orphans, [], [], [], []), Side([], [], [], [], [], [])
    for projection, key, detail, row in check_orphaned_badges(live, rebuilt):
        findings.add(Problem("orphaned_badge", projection, key, READ_MODEL, detail, row, None))


# ----- full reconciliation --------------------------------------------------------------------


def reconcile(
    projections: Any,
    *,
    user: int | None = None,
    fix: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    max_examples: int = MAX_EXAMPLES,
) -> ReconcileReport:
    """Replay, compare, check, and (with `fix`) repair. See the module docstring."""
    started = time.perf_counter()
    now = now or projections.app.clock.now()
    if user is not None:
        report = _reconcile_user(projections, user, fix=fix, now=now, max_examples=max_examples)
    else:
        report = _reconcile_all(projections, fix=fix, now=now, progress=progress,
                                max_examples=max_examples)  # fmt: skip
    report.seconds = time.perf_counter() - started
    log.info(
        "reconciliation at %s: %s (%d difference(s), %d fix(es))",
        report.position,
        "consistent" if report.consistent else "DIFFERENCES",
        report.differences,
        len(report.fixes),
    )
    return report


def _reconcile_all(
    projections: Any,
    *,
    fix: bool,
    now: datetime,
    progress: Progress | None,
    max_examples: int,
) -> ReconcileReport:
    app, store, live = projections.app, projections.store, projections.runner
    drop_abandoned_shadows(store)
    position = live.reader.head()
    live.catch_up(until=position)
    live_positions = {s.name: s.position for s in live.status()}
    findings = Findings(max_examples)
    shadow = ShadowBuild(app, store, projections.names).create()
    try:
        for slot in shadow.runner.slots:
            slot.until = live_positions.get(slot.name, position)
        try:
            shadow.build(until=max([position, *live_positions.values()]), progress=progress)
        except RebuildError as error:
            log.warning("replay stopped: %s", error)
        compared, differing = _compare_at_one_position(projections, shadow, findings, now)
        report = ReconcileReport(
            position, compared, None, now, findings.checks, problems=findings.problems
        )
        if fix and not report.consistent:
            report.fixes.extend(_swap_differing(shadow, differing))
            report.fixes.extend(_compensate(projections, findings.problems, position))
            projections.catch_up()
        return report
    finally:
        shadow.discard()


def _compare_at_one_position(
    projections: Any, shadow: ShadowBuild, findings: Findings, now: datetime
) -> tuple[dict[str, int], set[str]]:
    """Compare live and rebuilt rows with both sides at the same position per projection.

    PostgreSQL: share-lock the live position rows (a live runner's next write waits; event
    writers and readers do not), bring the shadow up to them, compare in that transaction.
    SQLite and memory: a few optimistic tries with a read snapshot (nobody waits); if the live
    runner keeps moving, compare inside a write transaction, which holds it (and, on SQLite,
    the event writers) off for the comparison.
    """
    store = projections.store
    live_tables = TableSet([t for n in shadow.names for t in PROJECTORS[n].tables])
    names = list(shadow.names)
    if store.dialect == "postgresql":
        with store.transaction() as conn:
            live_at = _live_positions(conn, live_tables, names, lock=True)
            _follow(shadow, live_at)
            return _compare(conn, shadow, live_tables, live_at, findings, now)
    for _attempt in range(OPTIMISTIC_ATTEMPTS):
        with store.snapshot() as conn:
            live_at = _live_positions(conn, live_tables, names)
            if not _ahead(shadow, live_at):
                return _compare(conn, shadow, live_tables, live_at, findings, now)
        _follow(shadow, live_at)
    with store.write() as conn:
        live_at = _live_positions(conn, live_tables, names)
        for slot in shadow.runner.slots:
            slot.until = live_at[slot.name].position if slot.name in live_at else slot.until
        while _ahead(shadow, live_at):
            if shadow.runner.step(conn=conn) is None:
                break
        return _compare(conn, shadow, live_tables, live_at, findings, now)


def _live_positions(
    conn: Connection, tables: TableSet, names: list[str], *, lock: bool = False
) -> dict[str, Any]:
    positions = tables.positions
    statement = select(positions).where(positions.c.name.in_(sorted(names)))
    if lock:
        statement = statement.order_by(positions.c.name).with_for_update(read=True)
    return {row.name: row for row in conn.execute(statement)}


def _ahead(shadow: ShadowBuild, live_at: dict[str, Any]) -> dict[str, int]:
    """Live projections that are past the shadow's position (the shadow must follow)."""
    at = shadow.positions()
    return {
        name: row.position
        for name, row in live_at.items()
        if name in at and row.position > at[name]
    }


def _follow(shadow: ShadowBuild, live_at: dict[str, Any]) -> None:
    ahead = _ahead(shadow, live_at)
    if not ahead:
        return
    for slot in shadow.runner.slots:
        if slot.name in ahead:
            slot.until = ahead[slot.name]
    try:
        shadow.build(until=max(ahead.values()))
    except RebuildError as error:
        log.warning("replay stopped: %s", error)


def _compare(
    conn: Connection,
    shadow: ShadowBuild,
    live_tables: TableSet,
    live_at: dict[str, Any],
    findings: Findings,
    now: datetime,
) -> tuple[dict[str, int], set[str]]:
    compared: dict[str, int] = {}
    differing: set[str] = set()
    comparable: list[str] = []
    for slot in shadow.runner.slots:
        row = live_at.get(slot.name)
        key = f"projection:{slot.name}"
        if slot.state == FAILED:
            findings.add(
                Problem("projection_health", slot.name, key, HISTORY,
                        f"the replay fails at {slot.failed_position}: {slot.last_error}")
            )  # fmt: skip
        if row is None or row.position != slot.position:
            at = "missing" if row is None else row.position
            findings.add(
                Problem("projection_health", slot.name, key, READ_MODEL,
                        f"live is at {at}, the replay at {slot.position}: not comparable")
            )  # fmt: skip
            differing.add(slot.name)
            continue
        if row.state == FAILED and slot.state != FAILED:
            findings.add(
                Problem("projection_health", slot.name, key, READ_MODEL,
                        f"live failed at {row.failed_position}: {row.last_error}")
            )  # fmt: skip
            differing.add(slot.name)  # the replay got past it: --fix swaps the replay in
        compared[slot.name] = slot.position
        comparable.append(slot.name)
    for name in comparable:
        for base in PROJECTORS[name].tables:
            if _diff_tables(conn, name, base, live_tables[base], shadow.table(base), findings):
                differing.add(name)
    checked = [b for b in Side.CHECKED_TABLES if _owner(b) in comparable]
    live_side = _candidates(conn, {b: live_tables[b] for b in checked}, now)
    rebuilt_side = _candidates(conn, {b: shadow.table(b) for b in checked}, now)
    orphans = (
        _orphan_candidates(conn, live_tables["badges_held"], shadow.table("badges_held"))
        if "badges_held" in checked
        else []
    )
    run_checks(findings, live_side, rebuilt_side, now, orphans)
    return compared, differing


def _owner(base: str) -> str:
    return next(name for name, cls in PROJECTORS.items() if base in cls.tables)


def _diff_tables(
    conn: Connection, projection: str, base: str, live: Table, rebuilt: Table, findings: Findings
) -> bool:
    """Set differences in SQL: rows of one side that the other does not have, exactly."""
    key = TABLES[base].key

    def keys_of(statement: Any) -> set[Hashable]:
        sub = statement.subquery()
        rows = conn.execute(select(*(sub.c[k] for k in key)))
        return {row[0] if len(key) == 1 else tuple(row) for row in rows}

    only_live = keys_of(select(live).except_(select(rebuilt)))
    only_rebuilt = keys_of(select(rebuilt).except_(select(live)))
    if not only_live and not only_rebuilt:
        return False
    for item in sorted(only_live | only_rebuilt, key=str)[: findings.max_examples * 4]:
        live_row = _row_by_key(conn, live, key, item)
        rebuilt_row = _row_by_key(conn, rebuilt, key, item)
        findings.add(_row_problem(projection, base, item, live_row, rebuilt_row))
    for item in only_live | only_rebuilt:
        findings.add(_row_problem(projection, base, item, None, None, counted_only=True))
    return True


def _row_by_key(conn: Connection, table: Table, key: tuple[str, ...], item: Hashable) -> Row | None:
    values = (item,) if len(key) == 1 else item
    statement = select(table).where(*(table.c[k] == v for k, v in zip(key, values, strict=True)))  # type: ignore[arg-type]
    row = conn.execute(statement).mappings().first()
    return dict(row) if row is not None else None


def _row_problem(
    projection: str,
    base: str,
    item: Hashable,
    live: Row | None,
    rebuilt: Row | None,
    *,
    counted_only: bool = False,
) -> Problem:
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


# ----- fixing ---------------------------------------------------------------------------------


def _swap_differing(shadow: ShadowBuild, differing: set[str]) -> list[Fix]:
    if not differing:
        return []
    names = sorted(differing)
    try:
        position = shadow.swap(names)
    except RebuildError as error:
        return [Fix("swap", ", ".join(names), "failed", str(error))]
    return [Fix("swap", ", ".join(names), "ok", f"rebuilt tables swapped in at {position}")]


def _compensate(projections: Any, problems: list[Problem], position: int) -> list[Fix]:
    """Commands that add the events history is missing; they never edit or delete events."""
    app = projections.app
    fixes: list[Fix] = []
    vip_due = False
    for problem in problems:
        if problem.where != HISTORY or problem.rebuilt is None:
            continue
        row = problem.rebuilt
        origin = Origin.system("reconcile", f"{problem.check}:{problem.key}:{position}")
        if problem.check == "vip_role" and row["is_vip"]:
            vip_due = True
        elif problem.check == "invalid_story_reference":
            result = app.relocate_progress(row["telegram_id"], origin, row["story_slug"])
            fixes.append(_command_fix("relocate_progress", problem, result))
        elif problem.check == "badge_definition":
            result = app.revoke_badge(
                row["badge_slug"], row["telegram_id"], "reconcile: " + problem.detail[:200], origin
            )
            fixes.append(_command_fix("revoke_badge", problem, result))
        elif problem.check == "negative_balance" and row["telegram_id"] is not None:
            result = app.grant_points(
                CONSOLE_ADMIN_ID,
                row["telegram_id"],
                -row["balance"],
                "reconcile: restore a negative balance to zero",
                origin,
            )
            fixes.append(_command_fix("grant_points", problem, result))
        else:
            fixes.append(
                Fix(
                    "none", problem.key, "not fixed", f"no compensating command for {problem.check}"
                )
            )
    if vip_due:
        run = app.expire_due_vips()
        outcome = "ok" if not run.failed else "failed"
        fixes.append(Fix("expire_due_vips", "vip_members", outcome, f"expired {list(run.expired)}"))
    return fixes


def _command_fix(action: str, problem: Problem, result: CommandResult) -> Fix:
    return Fix(
        action, problem.key, result.outcome, result.message or ", ".join(result.event_names())
    )


# ----- one user -------------------------------------------------------------------------------


USER_FILTERS: dict[str, str] = {
    "player_points": "player_id",
    "leaderboard": "player_id",
    "engagement": "player_id",
    "vip_members": "player_id",
    "vip_funnel": "player_id",
    "badges_held": "telegram_id",
    "story_state": "telegram_id",
    "vip_funnel_progress": "telegram_id",
}
"""How to find one user's rows in each per-user table (the shared ones have no user)."""


def user_streams(projections: Any, telegram_id: int) -> list[UUID]:
    """The streams holding one user's history: player, story progress, badge awards."""
    store = projections.store
    tables = projections._tables  # noqa: SLF001 - the facade's live tables
    with store.read() as conn:
        slugs = {r[0] for r in conn.execute(select(tables["story_versions"].c.slug).distinct())}
        slugs |= {
            r[0]
            for r in conn.execute(
                select(tables["story_state"].c.story_slug).where(
                    tables["story_state"].c.telegram_id == telegram_id
                )
            )
        }
        badges = {r[0] for r in conn.execute(select(tables["badge_definitions"].c.slug))}
        held = list(
            conn.execute(
                select(tables["badges_held"].c.award_id, tables["badges_held"].c.badge_slug).where(
                    tables["badges_held"].c.telegram_id == telegram_id
                )
            )
        )
    badges |= {spec.slug for spec in INITIAL_BADGES} | {row.badge_slug for row in held}
    streams = [player_id(telegram_id)]
    streams += [progress_id(telegram_id, slug) for slug in sorted(slugs)]
    streams += [badge_award_id(slug, telegram_id) for slug in sorted(badges)]
    streams += [row.award_id for row in held]
    return list(dict.fromkeys(streams))


def _shared_streams(projections: Any) -> list[UUID]:
    """The definitions the checks need: every badge and story stream."""
    tables = projections._tables  # noqa: SLF001
    with projections.store.read() as conn:
        badges = {r[0] for r in conn.execute(select(tables["badge_definitions"].c.slug))}
        stories = {r[0] for r in conn.execute(select(tables["story_versions"].c.slug).distinct())}
    badges |= {spec.slug for spec in INITIAL_BADGES}
    return [badge_id(s) for s in sorted(badges)] + [story_id(s) for s in sorted(stories)]


def _reconcile_user(
    projections: Any, telegram_id: int, *, fix: bool, now: datetime, max_examples: int
) -> ReconcileReport:
    app, store, live = projections.app, projections.store, projections.runner
    position = live.reader.head()
    live.catch_up(until=position)
    streams = user_streams(projections, telegram_id)
    shared = _shared_streams(projections)
    tables = projections._tables  # noqa: SLF001
    names = list(projections.names)
    with store.snapshot() as conn:
        positions = tables.positions
        live_at = {
            row.name: row
            for row in conn.execute(select(positions).where(positions.c.name.in_(names)))
        }
        live_rows = _user_rows(conn, tables, telegram_id, names)
    upto = {name: live_at[name].position for name in names if name in live_at}
    rebuilt_rows = _replay_user(app, names, streams + shared, upto)
    findings = Findings(max_examples)
    for name in names:
        row = live_at.get(name)
        if row is not None and row.state == FAILED:
            findings.add(
                Problem("projection_health", name, f"projection:{name}", READ_MODEL,
                        f"live failed at {row.failed_position}: {row.last_error}")
            )  # fmt: skip
    differing: set[str] = set()
    for name in names:
        for base in PROJECTORS[name].tables:
            if base not in USER_FILTERS:
                continue
            if _diff_rows(name, base, live_rows[base], rebuilt_rows[base], findings):
                differing.add(name)
    run_checks(findings, _side(live_rows), _side(rebuilt_rows), now)
    report = ReconcileReport(
        position, upto, telegram_id, now, findings.checks, problems=findings.problems
    )
    if fix and not report.consistent:
        report.fixes.extend(
            _replace_user_rows(projections, telegram_id, differing, upto, rebuilt_rows, streams)
        )
        report.fixes.extend(_compensate(projections, findings.problems, position))
        projections.catch_up()
    return report


def _user_rows(
    conn: Connection, tables: TableSet, telegram_id: int, names: list[str]
) -> dict[str, dict[Hashable, Row]]:
    pid = player_id(telegram_id)
    rows: dict[str, dict[Hashable, Row]] = {}
    for name in names:
        for base in PROJECTORS[name].tables:
            table = tables[base]
            statement = select(table)
            column = USER_FILTERS.get(base)
            if column is not None:
                value = pid if column == "player_id" else telegram_id
                statement = statement.where(table.c[column] == value)
            rows[base] = rows_by_key(conn.execute(statement).mappings(), TABLES[base].key)
    return rows


def _replay_user(
    app: Any, names: list[str], streams: list[UUID], upto: dict[str, int]
) -> dict[str, dict[Hashable, Row]]:
    """Fold only these streams, in log order, each projector up to its live position."""
    projectors: list[Projector] = [
        PROJECTORS[name](TableSet(PROJECTORS[name].tables)) for name in names
    ]
    handlers: dict[str, list[tuple[Projector, int]]] = {}
    for projector in projectors:
        for event_name in projector.handlers:
            handlers.setdefault(event_name, []).append((projector, upto.get(projector.name, 0)))
    decode = app.mapper.to_domain_event
    names_by_topic: dict[str, str] = {}
    reader = LogReader(app)
    for notification in stream_notifications(app, streams, max(upto.values(), default=0)):
        name = names_by_topic.get(notification.topic)
        if name is None:
            name = names_by_topic[notification.topic] = reader.name_of(notification.topic)
        targets = handlers.get(name)
        if not targets:
            continue
        event = decode(notification)
        for projector, limit in targets:
            if notification.id <= limit:
                projector.handlers[name](event, notification.id)
    rows: dict[str, dict[Hashable, Row]] = {}
    for projector in projectors:
        for base, cached in projector.rows.items():
            rows[base] = cached.snapshot()
    return rows


def _side(rows: dict[str, dict[Hashable, Row]]) -> Side:
    return Side(**{base: list(rows.get(base, {}).values()) for base in Side.CHECKED_TABLES})


def _diff_rows(
    projection: str,
    base: str,
    live: dict[Hashable, Row],
    rebuilt: dict[Hashable, Row],
    findings: Findings,
) -> bool:
    different = [k for k in live.keys() | rebuilt.keys() if live.get(k) != rebuilt.get(k)]
    for item in sorted(different, key=str):
        findings.add(_row_problem(projection, base, item, live.get(item), rebuilt.get(item)))
    return bool(different)


def _replace_user_rows(
    projections: Any,
    telegram_id: int,
    differing: set[str],
    upto: dict[str, int],
    rebuilt: dict[str, dict[Hashable, Row]],
    streams: list[UUID],
) -> list[Fix]:
    """Put the rebuilt rows in place of the user's live rows, if nothing moved meanwhile."""
    if not differing:
        return []
    store, tables = projections.store, projections._tables  # noqa: SLF001
    positions = tables.positions
    names = sorted(differing)
    heads = {s: projections.runner.reader.stream_head(s) for s in streams}
    with store.write() as conn:
        statement = select(positions).where(positions.c.name.in_(names))
        if store.dialect == "postgresql":
            statement = statement.order_by(positions.c.name).with_for_update()
        now_at = {row.name: row for row in conn.execute(statement)}
        moved = [n for n in names if now_at[n].position != upto[n]]
        changed = [s for s in streams if projections.runner.reader.stream_head(s) != heads[s]]
        if moved or changed:
            return [Fix("replace_rows", ", ".join(names), "skipped",
                        "the user's history moved during the check; run it again")]  # fmt: skip
        pid = player_id(telegram_id)
        for name in names:
            for base in PROJECTORS[name].tables:
                column = USER_FILTERS.get(base)
                if column is None:
                    continue
                table = tables[base]
                value = pid if column == "player_id" else telegram_id
                conn.execute(delete(table).where(table.c[column] == value))
                rows = list(rebuilt[base].values())
                if rows:
                    conn.execute(table.insert(), rows)
            conn.execute(
                update(positions)
                .where(positions.c.name == name)
                .values(generation=now_at[name].generation + 1)
            )
    return [Fix("replace_rows", ", ".join(names), "ok",
                f"user {telegram_id}'s rows replaced by the replay's")]  # fmt: skip


def _jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return json.loads(json.dumps(row, default=str))


def problems_for(report: ReconcileReport, check: str) -> list[Problem]:
    """Every problem of one check (the report keeps all; examples are a few)."""
    return [p for p in report.problems if p.check == check]


__all__ = [
    "CHECKS",
    "CheckResult",
    "Fix",
    "Problem",
    "ReconcileReport",
    "problems_for",
    "reconcile",
    "user_streams",
]
