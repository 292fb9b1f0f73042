"""The read models' tables (SQLAlchemy Core), buildable under any name so shadow copies match.

Why a builder per table rather than module-level `Table` objects: a rebuild or a reconciliation
writes a shadow copy of a projection's tables (same columns, same keys, same indexes) under a
suffixed name, then swaps it in by renaming. Building every copy with the same function is what
makes the copies identical and the schema reproducible.

Conventions that keep live and rebuilt rows comparable with plain equality (SQL `EXCEPT` or
Python `==`): no column depends on when or how a row was written (only on the events); lists are
stored as canonical JSON text; times are timezone-aware UTC on every dialect (`UtcDateTime`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
)

POSITIONS_TABLE = "projection_positions"
SHADOW_SEPARATOR = "__"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the dialect stores (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc(moment: datetime) -> datetime:
    """Normalise an event timestamp the way the database will return it."""
    return moment.astimezone(UTC)


def json_list(values: Iterable[Any], *, sort: bool = True) -> str:
    """Canonical JSON for a list column (sorted by default, compact), so equal means equal."""
    items = sorted(values) if sort else list(values)
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


def from_json_list(text: str | None) -> list[Any]:
    return list(json.loads(text)) if text else []


def table_name(base: str, suffix: str = "") -> str:
    """`player_points` live, `player_points__s1a2b3c4` for a shadow copy."""
    return f"{base}{SHADOW_SEPARATOR}{suffix}" if suffix else base


@dataclass(frozen=True)
class TableSpec:
    """How to build one read-model table under any name: columns, primary key, indexes."""

    base: str
    key: tuple[str, ...]
    columns: Callable[[], list[Column[Any]]]
    index_columns: tuple[tuple[str, ...], ...] = ()

    def build(self, metadata: MetaData, name: str) -> Table:
        table = Table(name, metadata, *self.columns())
        table.append_constraint(PrimaryKeyConstraint(*self.key, name=self.primary_key_name(name)))
        for columns in self.index_columns:
            Index(self.index_name(name, columns), *(table.c[c] for c in columns))
        return table

    def index_names(self, name: str) -> list[str]:
        return [self.index_name(name, columns) for columns in self.index_columns]

    @staticmethod
    def index_name(name: str, columns: tuple[str, ...]) -> str:
        return f"ix_{name}_{'_'.join(columns)}"

    @staticmethod
    def primary_key_name(name: str) -> str:
        return f"pk_{name}"


def _spec(
    base: str, key: tuple[str, ...], index_columns: tuple[tuple[str, ...], ...] = ()
) -> Callable[[Callable[[], list[Column[Any]]]], TableSpec]:
    def register(columns: Callable[[], list[Column[Any]]]) -> TableSpec:
        spec = TableSpec(base, key, columns, index_columns)
        TABLES[base] = spec
        return spec

    return register


TABLES: dict[str, TableSpec] = {}


@_spec("player_points", ("player_id",), (("telegram_id",),))
def _player_points() -> list[Column[Any]]:
    return [
        Column("player_id", Uuid, nullable=False),
        Column("telegram_id", BigInteger, nullable=True),
        Column("display_name", String(64), nullable=True),
        Column("language_code", String(8), nullable=True),
        Column("balance", BigInteger, nullable=False),
        Column("lifetime", BigInteger, nullable=False),
        Column("level", Integer, nullable=False),
        Column("registered_at", UtcDateTime, nullable=True),
        Column("updated_at", UtcDateTime, nullable=True),
    ]


@_spec("leaderboard", ("period", "player_id"), (("period", "points"),))
def _leaderboard() -> list[Column[Any]]:
    # period: "all" (all time) or an ISO week "2026-W05" (the week of the event's timestamp).
    return [
        Column("period", String(10), nullable=False),
        Column("player_id", Uuid, nullable=False),
        Column("points", BigInteger, nullable=False),
    ]


@_spec("badges_held", ("award_id",), (("telegram_id",),))
def _badges_held() -> list[Column[Any]]:
    # One row per award stream; `held` turns false on revocation (kept, so a re-award knows who).
    return [
        Column("award_id", Uuid, nullable=False),
        Column("telegram_id", BigInteger, nullable=False),
        Column("badge_slug", String(48), nullable=False),
        Column("held", Boolean, nullable=False),
        Column("awarded_at", UtcDateTime, nullable=False),
        Column("evidence", Text, nullable=False),
        Column("revoked_at", UtcDateTime, nullable=True),
        Column("revoke_reason", Text, nullable=True),
    ]


@_spec("badge_definitions", ("badge_id",), (("slug",),))
def _badge_definitions() -> list[Column[Any]]:
    # Keyed by the Badge stream: BadgeChanged and BadgeRetired do not repeat the slug.
    return [
        Column("badge_id", Uuid, nullable=False),
        Column("slug", String(48), nullable=False),
        Column("name", String(64), nullable=False),
        Column("description", Text, nullable=False),
        Column("icon", String(16), nullable=False),
        Column("criteria", Text, nullable=False),
        Column("defined_at", UtcDateTime, nullable=False),
        Column("retired_at", UtcDateTime, nullable=True),
        Column("retire_reason", Text, nullable=True),
    ]


@_spec("story_state", ("progress_id",), (("telegram_id",),))
def _story_state() -> list[Column[Any]]:
    return [
        Column("progress_id", Uuid, nullable=False),
        Column("telegram_id", BigInteger, nullable=False),
        Column("story_slug", String(48), nullable=False),
        Column("story_version", Integer, nullable=False),
        Column("fragment_id", String(48), nullable=False),
        Column("chapter", Integer, nullable=True),
        Column("clues", Text, nullable=False),
        Column("chapters_completed", Text, nullable=False),
        Column("choices_made", Integer, nullable=False),
        Column("last_choice", String(48), nullable=True),
        Column("started_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
    ]


@_spec("story_versions", ("slug", "version"))
def _story_versions() -> list[Column[Any]]:
    return [
        Column("slug", String(48), nullable=False),
        Column("version", Integer, nullable=False),
        Column("content_hash", String(64), nullable=False),
        Column("start", String(48), nullable=False),
        Column("fragment_ids", Text, nullable=False),
        Column("published_at", UtcDateTime, nullable=False),
    ]


@_spec("vip_members", ("player_id",), (("is_vip", "vip_until"),))
def _vip_members() -> list[Column[Any]]:
    return [
        Column("player_id", Uuid, nullable=False),
        Column("is_vip", Boolean, nullable=False),
        Column("vip_until", UtcDateTime, nullable=True),
        Column("source", String(16), nullable=True),
        Column("last_reference", String(200), nullable=True),
        Column("grants", Integer, nullable=False),
        Column("first_granted_at", UtcDateTime, nullable=True),
        Column("expired_at", UtcDateTime, nullable=True),
    ]


@_spec("engagement", ("player_id",))
def _engagement() -> list[Column[Any]]:
    return [
        Column("player_id", Uuid, nullable=False),
        Column("reactions", Integer, nullable=False),
        Column("messages", Integer, nullable=False),
        Column("polls", Integer, nullable=False),
        Column("checkins", Integer, nullable=False),
        Column("streak", Integer, nullable=False),
        Column("best_streak", Integer, nullable=False),
        Column("last_active_at", UtcDateTime, nullable=True),
    ]


@_spec("vip_funnel", ("player_id",), (("converted_at",),))
def _vip_funnel() -> list[Column[Any]]:
    # A row per player who hit a VIP gate; converted once a VIP grant follows a gate hit.
    return [
        Column("player_id", Uuid, nullable=False),
        Column("telegram_id", BigInteger, nullable=False),
        Column("gate_hits", Integer, nullable=False),
        Column("first_gate_at", UtcDateTime, nullable=False),
        Column("last_gate_at", UtcDateTime, nullable=False),
        Column("last_gate_fragment", String(48), nullable=True),
        Column("converted_at", UtcDateTime, nullable=True),
        Column("conversion_source", String(16), nullable=True),
    ]


@_spec("vip_funnel_progress", ("progress_id",))
def _vip_funnel_progress() -> list[Column[Any]]:
    # Whose story progress is whose: VipGateHit carries only the progress stream's id.
    return [
        Column("progress_id", Uuid, nullable=False),
        Column("telegram_id", BigInteger, nullable=False),
    ]


@_spec("parked_events", ("parked_id",), (("policy", "state"),))
def _parked_events() -> list[Column[Any]]:
    # One row per event a policy parked (keyed by the ParkedEvent stream): the event, why, and
    # whether a retry resolved it.
    return [
        Column("parked_id", Uuid, nullable=False),
        Column("policy", String(64), nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("event_name", String(64), nullable=False),
        Column("stream_id", String(64), nullable=False),
        Column("stream_version", Integer, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("parked_at", UtcDateTime, nullable=False),
        Column("state", String(16), nullable=False),
        Column("resolved_at", UtcDateTime, nullable=True),
        Column("outcome", Text, nullable=True),
    ]


@_spec("command_failures", ("position",), (("telegram_id",),))
def _command_failures() -> list[Column[Any]]:
    # One row per CommandFailed (keyed by its log position).
    return [
        Column("position", BigInteger, nullable=False),
        Column("failed_at", UtcDateTime, nullable=False),
        Column("command", String(64), nullable=False),
        Column("command_key", Text, nullable=False),
        Column("telegram_id", BigInteger, nullable=True),
        Column("outcome", String(32), nullable=False),
        Column("message", Text, nullable=False),
        Column("causation", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("stream", String(64), nullable=True),
        Column("version", Integer, nullable=True),
    ]


@_spec("consistency_checks", ("position",), (("telegram_id",),))
def _consistency_checks() -> list[Column[Any]]:
    # One row per ConsistencyChecked: what a check of one user found, and what caused it.
    return [
        Column("position", BigInteger, nullable=False),
        Column("checked_at", UtcDateTime, nullable=False),
        Column("telegram_id", BigInteger, nullable=False),
        Column("consistent", Boolean, nullable=False),
        Column("differences", Integer, nullable=False),
        Column("checked_position", BigInteger, nullable=False),
        Column("problems", Text, nullable=False),
        Column("causation", Text, nullable=False),
        Column("actor", Text, nullable=False),
    ]


@_spec("reconciliations", ("position",))
def _reconciliations() -> list[Column[Any]]:
    # One row per ReconciliationCompleted (a full run's summary; checks as canonical JSON).
    return [
        Column("position", BigInteger, nullable=False),
        Column("completed_at", UtcDateTime, nullable=False),
        Column("checked_position", BigInteger, nullable=False),
        Column("consistent", Boolean, nullable=False),
        Column("differences", Integer, nullable=False),
        Column("checks", Text, nullable=False),
        Column("fixes", Integer, nullable=False),
        Column("milliseconds", BigInteger, nullable=False),
    ]


def positions_table(metadata: MetaData) -> Table:
    """Where each projection (live, or a shadow copy under construction) stands, and its health.

    `generation` changes whenever a projection's rows are replaced from outside its runner (a
    rebuild swap, a reconciliation fix), so a runner knows its cached rows are stale.
    """
    return Table(
        POSITIONS_TABLE,
        metadata,
        Column("name", String(120), primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("state", String(16), nullable=False),
        Column("last_error", Text, nullable=True),
        Column("failed_position", BigInteger, nullable=True),
        Column("generation", Integer, nullable=False),
        Column("version", Integer, nullable=False),
        Column("updated_at", UtcDateTime, nullable=True),
    )


class TableSet:
    """One projection's tables under one suffix ('' = live), plus the shared positions table."""

    def __init__(self, bases: Iterable[str], suffix: str = "") -> None:
        self.suffix = suffix
        self.metadata = MetaData()
        self.positions = positions_table(self.metadata)
        self.tables: dict[str, Table] = {
            base: TABLES[base].build(self.metadata, table_name(base, suffix)) for base in bases
        }

    def __getitem__(self, base: str) -> Table:
        return self.tables[base]

    def spec(self, base: str) -> TableSpec:
        return TABLES[base]
