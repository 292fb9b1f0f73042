"""The per-user check: replay only one user's streams and diff that user's rows.

Checking one user must not cost a replay of the whole log. Their history is a handful of
streams (player, story progress, badge awards) plus the badge and story definitions the checks
need; those are read in log order, each projector folding them up to its live position, into
rows held in memory. Those rows are compared with the user's live rows, and with `fix=True`
replace them, only if neither the user's streams nor the projections moved during the check.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.ids import badge_award_id, badge_id, player_id, progress_id, story_id
from dianabot.projections.base import Projector, Row, rows_by_key
from dianabot.projections.fold import corrupt_detail
from dianabot.projections.ports import EventLog
from dianabot.projections.positions import FAILED
from dianabot.projections.reconcile.checks import Side, row_problem, run_checks
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
from dianabot.projections.schema import TABLES, TableSet
from sqlalchemy import Connection, delete, select, update

if TYPE_CHECKING:
    from dianabot.projections.service import Projections

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


def user_streams(projections: Projections, telegram_id: int) -> list[UUID]:
    """The streams holding one user's history: player, story progress, badge awards."""
    store = projections.store
    tables = projections.tables
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


def _shared_streams(projections: Projections) -> list[UUID]:
    """The definitions the checks need: every badge and story stream."""
    tables = projections.tables
    with projections.store.read() as conn:
        badges = {r[0] for r in conn.execute(select(tables["badge_definitions"].c.slug))}
        stories = {r[0] for r in conn.execute(select(tables["story_versions"].c.slug).distinct())}
    badges |= {spec.slug for spec in INITIAL_BADGES}
    return [badge_id(s) for s in sorted(badges)] + [story_id(s) for s in sorted(stories)]


def reconcile_user(
    projections: Projections, telegram_id: int, *, fix: bool, now: datetime, max_examples: int
) -> ReconcileReport:
    """One user: replay their streams to the live positions, diff their rows, check, and (with
    `fix`) replace their rows and compensate the history's problems."""
    app, store, live = projections.app, projections.store, projections.runner
    position = projections.events.head()
    live.catch_up(until=position)
    streams = user_streams(projections, telegram_id)
    shared = _shared_streams(projections)
    tables = projections.tables
    names = list(projections.names)
    with store.snapshot() as conn:
        positions = tables.positions
        live_at = {
            row.name: row
            for row in conn.execute(select(positions).where(positions.c.name.in_(names)))
        }
        live_rows = _user_rows(conn, tables, telegram_id, names)
    upto = {name: live_at[name].position for name in names if name in live_at}
    corrupt: dict[int, str] = {}
    rebuilt_rows = _replay_user(projections.events, names, streams + shared, upto, corrupt)
    findings = Findings(max_examples)
    for name in names:
        row = live_at.get(name)
        if row is not None and row.state == FAILED:
            if (at := row.failed_position) is not None and at not in corrupt:
                detail = undecodable_at(projections.events, at)
                if detail is not None:
                    corrupt[at] = detail
            findings.add(
                Problem("projection_health", name, f"projection:{name}", READ_MODEL,
                        f"live failed at {row.failed_position}: {row.last_error}")
            )  # fmt: skip
    for at, detail in sorted(corrupt.items()):
        findings.add(Problem("corrupt_history", "events", f"position:{at}", HISTORY, detail))
    differing: set[str] = set()
    for name in names:
        row = live_at.get(name)
        if row is not None and row.state == FAILED and row.failed_position in corrupt:
            differing.add(name)  # it needs a repair, which the fix refuses
        for base in PROJECTORS[name].tables:
            if base not in USER_FILTERS:
                continue
            if _diff_rows(name, base, live_rows[base], rebuilt_rows[base], findings):
                differing.add(name)
    run_checks(findings, _side(live_rows), _side(rebuilt_rows), now)
    report = ReconcileReport(
        position, upto, telegram_id, now, findings.checks, problems=findings.problems
    )
    if fix and not report.consistent and corrupt:
        blocked = {name: sorted(corrupt) for name in differing}
        report.fixes.extend(refuse_blocked(blocked, differing))
    elif fix and not report.consistent:
        report.fixes.extend(
            _replace_user_rows(projections, telegram_id, differing, upto, rebuilt_rows, streams)
        )
        report.fixes.extend(compensate_history(app, findings.problems, position))
        projections.catch_up()
    return report


def _user_rows(
    conn: Connection, tables: TableSet, telegram_id: int, names: list[str]
) -> dict[str, dict[Hashable, Row]]:
    pid = player_id(telegram_id)
    rows: dict[str, dict[Hashable, Row]] = {}
    for name in names:
        for base in PROJECTORS[name].tables:
            column = USER_FILTERS.get(base)
            if column is None and base not in Side.CHECKED_TABLES:
                continue  # neither a user's rows nor what the checks read (the incidents)
            table = tables[base]
            statement = select(table)
            if column is not None:
                value = pid if column == "player_id" else telegram_id
                statement = statement.where(table.c[column] == value)
            rows[base] = rows_by_key(conn.execute(statement).mappings(), TABLES[base].key)
    return rows


def _replay_user(
    events: EventLog,
    names: list[str],
    streams: list[UUID],
    upto: dict[str, int],
    corrupt: dict[int, str],
) -> dict[str, dict[Hashable, Row]]:
    """Fold only these streams, in log order, each projector up to its live position; an
    event that cannot be decoded is skipped and noted in `corrupt` by position."""
    projectors: list[Projector] = [
        PROJECTORS[name](TableSet(PROJECTORS[name].tables)) for name in names
    ]
    handlers: dict[str, list[tuple[Projector, int]]] = {}
    for projector in projectors:
        for event_name in projector.handlers:
            handlers.setdefault(event_name, []).append((projector, upto.get(projector.name, 0)))
    decode = events.decode
    names_by_topic: dict[str, str] = {}
    for notification in events.streams(streams, max(upto.values(), default=0)):
        name = names_by_topic.get(notification.topic)
        if name is None:
            name = names_by_topic[notification.topic] = events.name_of(notification.topic)
        targets = handlers.get(name)
        if not targets:
            continue
        try:
            event = decode(notification)
        except Exception as error:
            corrupt[notification.id] = corrupt_detail(notification, name, error)
            continue
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
        findings.add(row_problem(projection, base, item, live.get(item), rebuilt.get(item)))
    return bool(different)


def _replace_user_rows(
    projections: Projections,
    telegram_id: int,
    differing: set[str],
    upto: dict[str, int],
    rebuilt: dict[str, dict[Hashable, Row]],
    streams: list[UUID],
) -> list[Fix]:
    """Put the rebuilt rows in place of the user's live rows, if nothing moved meanwhile."""
    if not differing:
        return []
    store, tables = projections.store, projections.tables
    positions = tables.positions
    names = sorted(differing)
    heads = {s: projections.events.stream_head(s) for s in streams}
    with store.write() as conn:
        statement = select(positions).where(positions.c.name.in_(names))
        if store.dialect == "postgresql":
            statement = statement.order_by(positions.c.name).with_for_update()
        now_at = {row.name: row for row in conn.execute(statement)}
        moved = [n for n in names if now_at[n].position != upto[n]]
        changed = [s for s in streams if projections.events.stream_head(s) != heads[s]]
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
