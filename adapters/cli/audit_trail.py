"""The auditor's reading commands on `dianabot audit`: `history`, `balance --as-of`,
`leaderboard --as-of`, `explain` and `badges --format openbadges`.

All read the event log (never today's read-model rows, except `explain`, which compares its
totals with them), create nothing, and answer bad input in one line: an unknown user or an
unparseable or future date exits 2, a store that is missing or empty exits 4. People get rich
tables; `--json` gives JSON (JSON Lines for `history`, one event per line, streamed).
The logic is in `projections/auditing/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

import typer
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import console, errors, fail, print_json, services
from dianabot.adapters.eventstore.chain import AuditChain
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.service import DianaApplication
from dianabot.domain.rules import MAX_TELEGRAM_ID
from dianabot.projections import queries
from dianabot.projections.auditing.asof import (
    CommitTimes,
    EventTimeBound,
    FutureMoment,
    as_utc,
    balance_as_of,
    leaderboard_as_of,
    position_as_of,
)
from dianabot.projections.auditing.explain import Explanation, ReadModelView, explain
from dianabot.projections.auditing.openbadges import DEFAULT_ISSUER, credentials
from dianabot.projections.auditing.trail import UnknownUser, UserTrail
from dianabot.projections.history import EventHistory
from dianabot.projections.ports import EventLog
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

UserArg = Annotated[int, typer.Argument(help="The user's Telegram id.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
AsOfOpt = Annotated[
    str,
    typer.Option(
        "--as-of",
        help="A past moment: ISO 8601 (2026-03-01, 2026-03-01T12:00, ...+02:00; UTC when no "
        "offset; a bare date means the end of that day) or `now`.",
        show_default=False,
    ),
]


# ----- wiring ------------------------------------------------------------------------------


COMMIT_TIME = "commit time (the audit chain)"
EVENT_TIME = "the events' own times (no audit chain on this store): an upper bound"


class ChainCommitTimes:
    """`CommitTimes` from the audit chain, which records each event's commit time. A store
    whose first events predate the chain (an unchained prefix) answers a moment before the
    first link from those events' own times (`EventTimeBound`, capped at the prefix)."""

    def __init__(self, chain: AuditChain, log: EventLog) -> None:
        self.chain = chain
        self.log = log

    def last_position_committed_by(self, when: datetime) -> int:
        found = self.chain.last_position_committed_by(when)
        first = self.chain.store.chain_first()
        if found or first is None or first.position <= 1:
            return found
        return min(EventTimeBound(self.log).last_position_committed_by(when), first.position - 1)


def commit_times(app: DianaApplication, log: EventLog) -> tuple[CommitTimes, str]:
    """What answers "the last position committed by T", and on what basis: the audit chain's
    commit times; for a store with events and no chain at all, the events' own timestamps."""
    try:
        chain = AuditChain(app)
    except TypeError:  # a recorder that writes no chain
        return EventTimeBound(log), EVENT_TIME
    if chain.head() is None and log.head() > 0:
        return EventTimeBound(log), EVENT_TIME
    return ChainCommitTimes(chain, log), COMMIT_TIME


@contextmanager
def _log(as_json: bool, *, projections: bool = False) -> Iterator[tuple[Services, EventLog]]:
    with services(
        read_only=True, as_json=as_json, projections=projections, policies=False
    ) as wired:
        yield wired, event_log(wired.app)


def _trail(log: EventLog, app: DianaApplication, user: int, as_json: bool) -> UserTrail:
    trail = UserTrail(EventHistory(log, app.scan_notifications))
    try:
        if not 1 <= user <= MAX_TELEGRAM_ID:
            raise UnknownUser(user)
        trail.require_user(user)
    except UnknownUser as error:
        fail(exits.USAGE, "unknown user", str(error), as_json)
    return trail


def parse_moment(
    text: str, now: datetime, *, option: str, end_of_day: bool, as_json: bool
) -> datetime:
    """An ISO 8601 moment (UTC when it has no offset); a bare date is the start of that day, or
    its end (`end_of_day`; never later than now); `now`. Unparseable or future: exit 2."""
    value = text.strip()
    try:
        if value.lower() == "now":
            return as_utc(now)
        if _DATE_ONLY.match(value):
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            if end_of_day:
                moment = min(moment + timedelta(days=1) - timedelta(microseconds=1), as_utc(now))
                if day > as_utc(now).date():
                    moment = datetime.combine(day, time.min, tzinfo=UTC)
        else:
            moment = as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        fail(
            exits.USAGE, "bad date",
            f"{option} {text!r} is not a date or time (e.g. 2026-03-01 or 2026-03-01T12:00:00Z)",
            as_json,
        )  # fmt: skip
    if moment > as_utc(now):
        current = as_utc(now).isoformat(timespec="seconds")
        fail(exits.USAGE, "future date", f"{option} {text!r} is after now ({current})", as_json)
    return moment


def _resolve(times: CommitTimes, when: datetime, now: datetime, as_json: bool) -> int:
    try:
        return position_as_of(times, when, now)
    except FutureMoment as error:
        fail(exits.USAGE, "future date", str(error), as_json)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _undecodable(skipped: dict[int, str]) -> None:
    for position, detail in sorted(skipped.items()):
        errors.print(f"[yellow]skipped at {position}:[/yellow] {escape(detail)}", soft_wrap=True)


# ----- history -----------------------------------------------------------------------------


def history(
    user: UserArg,
    since: Annotated[
        str | None, typer.Option("--since", help="Only events decided at or after (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only events decided at or before (ISO 8601).")
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type (e.g. PointsAwarded); repeatable."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one event per line, streamed.")
    ] = False,
) -> None:
    """A user's events across all their aggregates (player, badge awards, story progress, VIP
    tokens), in log order, decoded, with causation and actor."""
    with _log(as_json) as (wired, log):
        now = wired.clock.now()
        start = None if since is None else parse_moment(
            since, now, option="--since", end_of_day=False, as_json=as_json)  # fmt: skip
        end = None if until is None else parse_moment(
            until, now, option="--until", end_of_day=True, as_json=as_json)  # fmt: skip
        if start is not None and end is not None and start > end:
            fail(exits.USAGE, "bad dates", "--since is after --until", as_json)
        trail = _trail(log, wired.app, user, as_json)
        head = log.head()
        entries = trail.events(user, since=start, until=end, types=tuple(types or ()), upto=head)
        if as_json:
            for item in entries:
                typer.echo(json.dumps(item.to_dict(), default=str, ensure_ascii=False))
            return
        table = Table(title=f"History of user {user} (log head {head})")
        for column in ("position", "time", "type", "aggregate"):
            table.add_column(
                column, no_wrap=True, justify="right" if column == "position" else "left"
            )
        table.add_column("summary · [dim]causation actor[/dim]", overflow="fold")
        count = 0
        for item in entries:
            e = item.entry
            why = f"{e.causation or ''} {e.actor or ''}".strip()
            table.add_row(
                str(e.position), _when(e.at), escape(e.type),
                f"{item.aggregate} v{e.version}",
                f"{escape(e.summary())}\n[dim]{escape(why)}[/dim]",
            )  # fmt: skip
            count += 1
        console.print(table)
        console.print(f"{count} event(s)")


# ----- as of -------------------------------------------------------------------------------


def balance(user: UserArg, as_of: AsOfOpt, as_json: JsonOpt = False) -> None:
    """A user's balance, lifetime besitos, level and badges at a past moment: the events
    committed by then, replayed (not today's rows)."""
    with _log(as_json) as (wired, log):
        now = wired.clock.now()
        when = parse_moment(as_of, now, option="--as-of", end_of_day=True, as_json=as_json)
        trail = _trail(log, wired.app, user, as_json)
        times, basis = commit_times(wired.app, log)
        position = _resolve(times, when, now, as_json)
        rows, _kinds = trail.rows(user, position)
        found = balance_as_of(log, rows, user, when, position)
    if as_json:
        print_json({**found.to_dict(), "position_by": basis})
        return
    _undecodable(found.skipped)
    table = Table(
        title=f"User {user} as of {_when(found.when)} UTC", caption=f"log position {position}"
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    if not found.registered:
        table.add_row("registered", "not yet")
    table.add_row("balance", f"{found.balance:,}")
    table.add_row("lifetime besitos", f"{found.lifetime:,}")
    table.add_row("level", str(found.level))
    table.add_row("badges", escape(", ".join(found.badges)) or "none")
    table.add_row("events replayed", str(found.events))
    console.print(table)
    console.print(f"[dim]as of: the events committed by then, by {escape(basis)}[/dim]")


def leaderboard(
    as_of: AsOfOpt,
    week: Annotated[
        bool, typer.Option("--week", help="The board of the ISO week of --as-of, not all time.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many ranks.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """The leaderboard at a past moment: the log up to the last position committed by then,
    replayed in memory by the leaderboard's own projector (progress bar on long runs)."""
    with _log(as_json) as (wired, log):
        now = wired.clock.now()
        when = parse_moment(as_of, now, option="--as-of", end_of_day=True, as_json=as_json)
        times, basis = commit_times(wired.app, log)
        position = _resolve(times, when, now, as_json)
        with _bar("replaying", as_json) as advance:
            found = leaderboard_as_of(log, when, position, week=week, limit=limit, progress=advance)
    if as_json:
        print_json({**found.to_dict(), "position_by": basis})
        return
    _undecodable(found.skipped)
    scope = f"week {found.period}" if week else "all time"
    table = Table(
        title=f"Leaderboard ({scope}) as of {_when(found.when)} UTC",
        caption=f"log position {position}",
    )
    table.add_column("rank", justify="right")
    table.add_column("user", justify="right")
    table.add_column("name")
    table.add_column("besitos", justify="right")
    for row in found.rows:
        table.add_row(
            str(row["rank"]), str(row["telegram_id"]), escape(str(row["display_name"] or "")),
            f"{row['points']:,}",
        )  # fmt: skip
    console.print(table)
    console.print(f"{found.players} player(s) ranked, {found.events:,} events read")
    console.print(f"[dim]as of: the events committed by then, by {escape(basis)}[/dim]")


@contextmanager
def _bar(label: str, as_json: bool) -> Iterator[Callable[[int, int], None] | None]:
    if as_json or not errors.is_terminal:
        yield None
        return
    with Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=errors, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=None)

        def advance(position: int, target: int) -> None:
            bar.update(task, completed=position, total=max(target, 1))

        yield advance


# ----- explain and badges ------------------------------------------------------------------


def _read_model(wired: Services, user: int) -> ReadModelView | None:
    projections = wired.projections
    if projections is None:
        return None
    row = queries.profile(projections, user)
    if row is None:
        return ReadModelView(0, 0, 1, ())
    held = tuple(sorted(str(b["badge_slug"]) for b in queries.badges(projections, user)))
    positions = projections.tables.positions
    with projections.store.read() as conn:
        at = conn.execute(
            select(positions.c.position).where(positions.c.name == "player_points")
        ).scalar_one_or_none()
    return ReadModelView(int(row["balance"]), int(row["lifetime"]), int(row["level"]), held, at)


def _explained(user: int, as_json: bool, *, compare: bool) -> Explanation:
    """The user's explanation up to the head; with `compare`, checked against the read
    model's row at the read model's own position (which may be behind the head)."""
    with _log(as_json, projections=compare) as (wired, log):
        trail = _trail(log, wired.app, user, as_json)
        head, view = log.head(), _read_model(wired, user) if compare else None
        rows, _kinds = trail.rows(user, head)
        return explain(log, rows, user, head, view)


def explain_user(
    user: UserArg,
    as_json: JsonOpt = False,
) -> None:
    """Every besito, level and badge of a user traced to its event, its rule and the update,
    admin, job or policy that caused it; totals compared with the read model (exit 1 when
    they differ, or an amount or level breaks its rule)."""
    found = _explained(user, as_json, compare=True)
    if as_json:
        print_json(found.to_dict())
    else:
        _print_explanation(found)
    if not found.consistent:
        raise typer.Exit(exits.DIFFERENCES)


def _print_explanation(found: Explanation) -> None:
    _undecodable(found.undecodable)
    besitos = Table(title=f"Besitos of user {found.telegram_id} (log position {found.position})")
    for column in ("position", "time", "change", "balance", "kind · reference"):
        besitos.add_column(
            column, justify="right" if column in ("position", "change", "balance") else "left"
        )
    besitos.add_column("rule · [dim]cause[/dim]", overflow="fold")
    for line in found.besitos:
        flag = f"\n[red]{escape(line.irregular)}[/red]" if line.irregular else ""
        besitos.add_row(
            str(line.position), _when(line.at), f"{line.amount:+,}", f"{line.balance:,}",
            escape(f"{line.kind} · {line.reference}"),
            f"{escape(line.rule)}\n[dim]{escape(line.cause.text)}[/dim]{flag}",
        )  # fmt: skip
    console.print(besitos)
    levels = Table(title="Levels")
    for column in ("position", "time", "level", "lifetime", "rule · [dim]cause[/dim]"):
        levels.add_column(column)
    for level in found.levels:
        trigger = f" (crossed by the event at {level.trigger})" if level.trigger else ""
        levels.add_row(
            str(level.position), _when(level.at), f"{level.level} {escape(level.name)}",
            f"{level.lifetime:,}",
            f"{escape(level.rule)}{trigger}\n[dim]{escape(level.cause.text)}[/dim]",
        )  # fmt: skip
    console.print(levels)
    badges = Table(title="Badges")
    for column in ("position", "time", "event", "badge", "rule · evidence · [dim]cause[/dim]"):
        badges.add_column(column, overflow="fold")
    for badge in found.badges:
        evidence = ", ".join(
            f"{e.event} at {e.position}" if e.position is not None else e.reference
            for e in badge.evidence
        )
        reason = f"\nreason: {escape(badge.reason)}" if badge.reason else ""
        badges.add_row(
            str(badge.position), _when(badge.at), escape(badge.event),
            escape(f"{badge.slug} ({badge.name or '?'})"),
            f"{escape(badge.rule)}\nevidence: {escape(evidence or 'none')}{reason}"
            f"\n[dim]{escape(badge.cause.text)}[/dim]",
        )  # fmt: skip
    console.print(badges)
    t = found.totals
    console.print(
        f"[bold]totals[/bold]: awarded {t.awarded:,} + granted {t.granted:,} − spent {t.spent:,} "
        f"− deducted {t.deducted:,} = balance [bold]{t.balance:,}[/bold]; lifetime {t.lifetime:,}, "
        f"level {t.level}; badges held: {escape(', '.join(t.badges)) or 'none'}"
    )
    rm = found.read_model
    if rm is not None:
        console.print(
            f"read model (position {rm.position}): balance {rm.balance:,}, lifetime "
            f"{rm.lifetime:,}, level {rm.level}, badges {escape(', '.join(rm.badges)) or 'none'}"
        )
    if found.compared_at is not None:
        console.print(
            f"[yellow]the read model is behind the log[/yellow] (at {found.compared_at}, log at "
            f"{found.position}): compared with the events up to {found.compared_at}; "
            "`dianabot projections run --once` catches it up"
        )
    for difference in found.differences:
        console.print(f"[red]difference:[/red] {escape(difference)}")
    for irregular in found.irregular:
        console.print(f"[red]breaks its rule:[/red] {escape(irregular)}")
    if found.consistent:
        console.print("[green]the events add up to the read model[/green]")


def badges(
    user: UserArg,
    output_format: Annotated[
        str,
        typer.Option("--format", help="`openbadges`: Open Badges 3.0 achievement credentials."),
    ] = "openbadges",
    issuer: Annotated[
        str, typer.Option("--issuer", help="The issuer's id (a URI) in the credentials.")
    ] = DEFAULT_ISSUER,
    as_json: JsonOpt = False,
) -> None:
    """A user's badges as Open Badges 3.0 credentials (JSON), each with its evidence events."""
    if output_format != "openbadges":
        fail(exits.USAGE, "bad format", f"--format {output_format!r}: only `openbadges`", as_json)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", issuer):
        fail(exits.USAGE, "bad issuer", f"--issuer {issuer!r} is not a URI", as_json)
    found = _explained(user, as_json, compare=False)
    print_json(credentials(found, issuer=issuer))


def register(app: typer.Typer) -> None:
    """Add these commands to `dianabot audit`."""
    app.command()(history)
    app.command()(balance)
    app.command()(leaderboard)
    app.command("explain")(explain_user)
    app.command()(badges)
