"""The one SELECT both recorders load aggregates with (see `postgres.BinarySelect` and
`sqlite.LeanSelect`): the three columns that differ between an aggregate's rows."""

from __future__ import annotations

from functools import cache
from typing import Any
from uuid import UUID


def select_events_query(
    table: str,
    placeholder: str,
    originator_id: UUID | str,
    gt: int | None,
    lte: int | None,
    desc: bool,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The statement and parameters for `select_events(originator_id, gt=, lte=, desc=,
    limit=)` on `table` (already quoted), `placeholder` being the driver's (`%s`, `?`)."""
    statement = _statement(
        table, placeholder, gt is not None, lte is not None, desc, limit is not None
    )
    return statement, [originator_id, *(value for value in (gt, lte, limit) if value is not None)]


@cache
def _statement(table: str, placeholder: str, gt: bool, lte: bool, desc: bool, limit: bool) -> str:
    return (
        f"SELECT originator_version, topic, state FROM {table} "
        f"WHERE originator_id = {placeholder}"
        + f" AND originator_version > {placeholder}" * gt
        + f" AND originator_version <= {placeholder}" * lte
        + " ORDER BY originator_version "
        + ("DESC" if desc else "ASC")
        + f" LIMIT {placeholder}" * limit
    )
