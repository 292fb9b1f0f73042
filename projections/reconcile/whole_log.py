"""The whole-log diff: replay the history into shadow tables and compare them with the live ones.

1. Fix a position P (the head of the log when the run starts) and replay 1..P into fresh shadow
   tables (`projections.rebuild.ShadowBuild`).
2. Compare with the live tables at the same position: the live projections are caught up to P,
   then read in one snapshot whose positions must equal the shadow's (a live runner that moved on
   meanwhile is followed by the shadow), so events arriving during the run never cause a false
   alarm. Rows are compared in SQL (set differences); the row checks read only the rows that
   SQL finds may fail them.
3. `fix=True`: the projections whose tables differ get the rebuilt tables swapped in.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from dianabot.domain.rules import LEVELS
from dianabot.projections.base import Row
from dianabot.projections.fold import Progress
from dianabot.projections.positions import FAILED
from dianabot.projections.rebuild import RebuildError, ShadowBuild, drop_abandoned_shadows
from dianabot.projections.reconcile.checks import (
    VIP_GRACE,
    Side,
    latest_versions,
    row_problem,
    run_checks,
)
from dianabot.projections.reconcile.compensation import compensate_history
from dianabot.projections.reconcile.corruption import refuse_blocked, undecodable_at
from dianabot.projections.reconcile.report import (
    HISTORY,
    READ_MODEL,
    Findings,
    Fix,
    Problem,
    ReconcileReport,
)
from dianabot.projections.registry import PROJECTORS
from dianabot.projections.schema import TABLES, TableSet, from_json_list
from sqlalchemy import Connection, Table, and_, case, func, or_, select, tuple_

if TYPE_CHECKING:
    from dianabot.projections.service import Projections

log = logging.getLogger(__name__)

OPTIMISTIC_ATTEMPTS = 3
"""Snapshot reads tried before the comparison holds the live runner off (SQLite and memory)."""


def reconcile_all(
    projections: Projections,
    *,
    fix: bool,
    now: datetime,
    progress: Progress | None,
    max_examples: int,
) -> ReconcileReport:
    """Every projection at once: replay into shadow tables, compare, check, and (with `fix`)
    swap the differing tables and compensate the history's problems."""
    app, store, live = projections.app, projections.store, projections.runner
    drop_abandoned_shadows(store)
    position = projections.events.head()
    live.catch_up(until=position)
    live_positions = {s.name: s.position for s in live.status()}
    findings = Findings(max_examples)
    shadow = ShadowBuild(
        projections.events, store, projections.names, skip_undecodable=True
    ).create()
    try:
        for slot in shadow.runner.slots:
            slot.until = live_positions.get(slot.name, position)
        try:
            shadow.build(until=max([position, *live_positions.values()]), progress=progress)
        except RebuildError as error:
            log.warning("replay stopped: %s", error)
        compared, differing, blocked = _compare_at_one_position(projections, shadow, findings, now)
        report = ReconcileReport(
            position, compared, None, now, findings.checks, problems=findings.problems
        )
        if fix and not report.consistent:
            report.fixes.extend(refuse_blocked(blocked, differing))
            report.fixes.extend(swap_differing(shadow, differing - set(blocked)))
            report.fixes.extend(compensate_history(app, findings.problems, position))
            projections.catch_up()
        return report
    finally:
        shadow.discard()


Comparison = tuple[dict[str, int], set[str], dict[str, list[int]]]
"""Positions compared per projection, the projections whose rows differ (or whose live copy
failed), and those a fix must not rebuild: by the undecodable positions their replay needs."""


def _compare_at_one_position(
    projections: Projections, shadow: ShadowBuild, findings: Findings, now: datetime
) -> Comparison:
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
) -> Comparison:
    compared: dict[str, int] = {}
    differing: set[str] = set()
    comparable: list[str] = []
    corrupt = dict(shadow.runner.undecodable or {})
    blocked: dict[str, list[int]] = {}
    for slot in shadow.runner.slots:
        row = live_at.get(slot.name)
        key = f"projection:{slot.name}"
        if slot.skipped:
            blocked[slot.name] = sorted(set(slot.skipped))
        if row is not None and row.state == FAILED and row.failed_position is not None:
            failed_at = row.failed_position
            detail = corrupt.get(failed_at) or undecodable_at(shadow.event_log, failed_at)
            if detail is not None:
                corrupt[failed_at] = detail
                blocked.setdefault(slot.name, []).append(failed_at)
                findings.add(
                    Problem("projection_health", slot.name, key, HISTORY,
                            f"live stopped before {failed_at}: that event cannot be decoded")
                )  # fmt: skip
                differing.add(slot.name)  # it needs a repair, which the fix refuses
                compared[slot.name] = slot.position
                comparable.append(slot.name)
                continue
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
    for position, detail in sorted(corrupt.items()):
        findings.add(Problem("corrupt_history", "events", f"position:{position}", HISTORY, detail))
    return compared, differing, blocked


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
        findings.add(row_problem(projection, base, item, live_row, rebuilt_row))
    for item in only_live | only_rebuilt:
        findings.add(row_problem(projection, base, item, None, None, counted_only=True))
    return True


def _row_by_key(conn: Connection, table: Table, key: tuple[str, ...], item: Hashable) -> Row | None:
    values = (item,) if len(key) == 1 else cast(tuple[Any, ...], item)  # a compound key's tuple
    statement = select(table).where(*(table.c[k] == v for k, v in zip(key, values, strict=True)))
    row = conn.execute(statement).mappings().first()
    return dict(row) if row is not None else None


def _candidates(conn: Connection, tables: dict[str, Table], now: datetime) -> Side:
    """The rows of one side that may fail a check, narrowed in SQL (necessary conditions only;
    the row checks in `checks` decide). Reading every row of a million-event history's tables
    through the ORM layer would cost more than the comparison itself."""

    def fetch(statement: Any) -> list[Row]:
        return [dict(r) for r in conn.execute(statement).mappings()]

    side = Side()
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
        latest = latest_versions(side.story_versions)
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


def swap_differing(shadow: ShadowBuild, differing: set[str]) -> list[Fix]:
    """Put the replay's tables in place of the live ones of the projections that differ."""
    if not differing:
        return []
    names = sorted(differing)
    try:
        position = shadow.swap(names)
    except RebuildError as error:
        return [Fix("swap", ", ".join(names), "failed", str(error))]
    return [Fix("swap", ", ".join(names), "ok", f"rebuilt tables swapped in at {position}")]
