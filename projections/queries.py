"""Questions the bot's screens ask the read models (never the event store): /profile, /top,
/badges, /story, /vip, and the VIP funnel for admins. Each is one indexed query."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dianabot.domain.ids import player_id
from dianabot.projections.leaderboard import ALL_TIME, week_of
from dianabot.projections.schema import from_json_list
from sqlalchemy import and_, desc, func, select


def profile(projections: Any, telegram_id: int) -> dict[str, Any] | None:
    """Balance, lifetime besitos, level and display name; None for an unknown user."""
    table = projections.table("player_points")
    with projections.store.read() as conn:
        row = (
            conn.execute(select(table).where(table.c.player_id == player_id(telegram_id)))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


def top(projections: Any, *, week: datetime | None = None, limit: int = 10) -> list[dict[str, Any]]:
    """The leaderboard (all time, or the ISO week of `week`): rank, user, name, points."""
    board, points = projections.table("leaderboard"), projections.table("player_points")
    period = ALL_TIME if week is None else week_of(week)
    statement = (
        select(board.c.points, points.c.telegram_id, points.c.display_name)
        .join(points, points.c.player_id == board.c.player_id)
        .where(board.c.period == period)
        .order_by(desc(board.c.points), points.c.telegram_id)
        .limit(limit)
    )
    with projections.store.read() as conn:
        found = conn.execute(statement).mappings().all()
    return [{"rank": rank, **dict(row)} for rank, row in enumerate(found, start=1)]


def badges(projections: Any, telegram_id: int) -> list[dict[str, Any]]:
    """The badges a user holds now, with their name and icon, oldest first."""
    held, definitions = projections.table("badges_held"), projections.table("badge_definitions")
    statement = (
        select(held.c.badge_slug, held.c.awarded_at, definitions.c.name, definitions.c.icon)
        .join(definitions, definitions.c.slug == held.c.badge_slug, isouter=True)
        .where(and_(held.c.telegram_id == telegram_id, held.c.held))
        .order_by(held.c.awarded_at, held.c.badge_slug)
    )
    with projections.store.read() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def story_position(projections: Any, telegram_id: int, slug: str) -> dict[str, Any] | None:
    """Where a user is in a story: fragment, chapter, clues, chapters completed."""
    table = projections.table("story_state")
    statement = select(table).where(table.c.telegram_id == telegram_id, table.c.story_slug == slug)
    with projections.store.read() as conn:
        row = conn.execute(statement).mappings().first()
    if row is None:
        return None
    found = dict(row)
    found["clues"] = from_json_list(found["clues"])
    found["chapters_completed"] = from_json_list(found["chapters_completed"])
    return found


def vip_members(projections: Any, at: datetime) -> list[dict[str, Any]]:
    """Users flagged VIP whose period runs at `at` (who may stay in the VIP channel)."""
    vip, points = projections.table("vip_members"), projections.table("player_points")
    statement = (
        select(points.c.telegram_id, vip.c.vip_until, vip.c.source)
        .join(points, points.c.player_id == vip.c.player_id)
        .where(vip.c.is_vip, vip.c.vip_until > at)
        .order_by(vip.c.vip_until)
    )
    with projections.store.read() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def funnel(projections: Any) -> dict[str, int]:
    """Free users who hit a VIP gate, and how many of them became VIP afterwards."""
    table = projections.table("vip_funnel")
    statement = select(
        func.count(),
        func.count(table.c.converted_at),
        func.coalesce(func.sum(table.c.gate_hits), 0),
    )
    with projections.store.read() as conn:
        users, converted, hits = conn.execute(statement).one()
    return {"users": users, "converted": converted, "gate_hits": hits}


def player_count(projections: Any) -> int:
    """How many players the read model knows (one row each)."""
    table = projections.table("player_points")
    with projections.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
