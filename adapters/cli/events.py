"""`dianabot events tail [--user ID] [--type NAME] [--limit N] [--follow] [--json]`.

The event history, served from the event store (never a read model): position, time, type,
stream and user, causation, actor, and a short summary of the event's own fields. `--follow`
keeps printing new events as they are written (woken by PostgreSQL's NOTIFY, polling on SQLite)
until Ctrl-C or SIGTERM. Read-only: no store, table or schema is created.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Annotated

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import console, fail, print_json, services
from dianabot.adapters.eventstore.log import event_log
from dianabot.projections.history import EventHistory, HistoryEntry
from rich.markup import escape
from rich.table import Table

events_app = typer.Typer(help="The event history, from the store.", no_args_is_help=True)

POLL_INTERVAL = 0.5
"""How often `--follow` looks for new events when the store cannot push them (SQLite)."""


@events_app.command()
def tail(
    user: Annotated[
        int | None, typer.Option("--user", help="Only this Telegram user's events.")
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type (e.g. PointsAwarded); repeatable."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="How many of the last events.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="JSON: an array; with --follow, one object per line."),
    ] = False,
) -> None:
    """The last events of the log (all, one user's, or some types), oldest first."""
    wanted = tuple(types or ())
    with services(read_only=True, as_json=as_json, projections=False, policies=False) as wired:
        app = wired.app
        if user is not None and not follow and app.get_player(user) is None:
            fail(exits.USAGE, "unknown user", f"no player with Telegram id {user}", as_json)
        history = EventHistory(event_log(app), app.scan_notifications)
        head = history.head()
        entries = history.tail(user=user, types=wanted, limit=limit, upto=head)
        if not follow:
            if as_json:
                print_json([e.to_dict() for e in entries])
            else:
                console.print(_table(entries, user, head))
            return
        _print_lines(entries, as_json)
        _follow(history, head, user, wanted, as_json)


def _follow(
    history: EventHistory, position: int, user: int | None, types: tuple[str, ...], as_json: bool
) -> None:
    stop = threading.Event()
    waker = history.log.waker()

    def stopped(*_: object) -> None:
        stop.set()
        waker.wake()

    previous = signal.signal(signal.SIGTERM, stopped)
    if not as_json:
        console.print("[dim]following; Ctrl-C to stop[/dim]")
        sys.stdout.flush()
    try:
        while not stop.is_set():
            entries, position = history.since(position, user=user, types=types)
            _print_lines(entries, as_json)
            if not stop.is_set():
                waker.wait(waker.patience(POLL_INTERVAL))
    except KeyboardInterrupt:
        pass
    finally:
        waker.close()
        signal.signal(signal.SIGTERM, previous)


def _print_lines(entries: list[HistoryEntry], as_json: bool) -> None:
    for entry in entries:
        if as_json:
            typer.echo(_one_line_json(entry))
        else:
            console.print(_line(entry), soft_wrap=True)
    sys.stdout.flush()


def _one_line_json(entry: HistoryEntry) -> str:
    return json.dumps(entry.to_dict(), default=str, ensure_ascii=False)


def _who(entry: HistoryEntry) -> str:
    stream = f"{str(entry.stream)[:8]} v{entry.version}"
    return f"user {entry.user}, {stream}" if entry.user is not None else stream


def _when(entry: HistoryEntry) -> str:
    return "" if entry.at is None else entry.at.strftime("%Y-%m-%d %H:%M:%S")


def _why(entry: HistoryEntry) -> str:
    return f"{entry.causation or ''} {entry.actor or ''}".strip()


def _line(entry: HistoryEntry) -> str:
    return (
        f"[bold]{entry.position}[/bold] {escape(_when(entry))} [cyan]{escape(entry.type)}[/cyan] "
        f"{escape(_who(entry))} {escape(entry.summary())} "
        f"[dim]{escape(_why(entry))}[/dim]"
    )


def _table(entries: list[HistoryEntry], user: int | None, head: int) -> Table:
    scope = f"user {user}" if user is not None else "all users"
    table = Table(title=f"Events of {scope} (head {head})")
    table.add_column("position", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("stream / user")
    table.add_column("summary · [dim]causation actor[/dim]", overflow="fold")
    for e in entries:
        table.add_row(
            str(e.position),
            escape(_when(e)),
            escape(e.type),
            escape(_who(e)),
            f"{escape(e.summary())}\n[dim]{escape(_why(e))}[/dim]",
        )
    return table
