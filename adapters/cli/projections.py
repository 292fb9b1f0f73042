"""`dianabot projections status|rebuild|run`: the read models' health, rebuilds, live runner."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import confirm, console, fail, print_json, services
from dianabot.projections.positions import FAILED, OK
from dianabot.projections.rebuild import RebuildError
from dianabot.projections.registry import ALL_NAMES
from dianabot.projections.service import Projections
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

projections_app = typer.Typer(
    help="Read models: status, zero-downtime rebuild, live runner.", no_args_is_help=True
)

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
EXIT_FAILED = exits.DIFFERENCES


def _read_side(projections: Projections | None, as_json: bool = False) -> Projections:
    if projections is None:  # bootstrap always builds it; a guard for wiring mistakes
        fail(exits.USAGE, "bad setup", "no read models configured", as_json)
    return projections


@projections_app.command()
def status(as_json: AsJson = False) -> None:
    """Each projection's position, lag behind the log's head, state and last error."""
    with services(read_only=True, as_json=as_json) as wired:
        statuses = _read_side(wired.projections, as_json).status()
    if as_json:
        print_json([s.to_dict() for s in statuses])
    else:
        table = Table(title="Read models")
        for column in ("projection", "position", "head", "lag", "state", "error"):
            table.add_column(
                column, justify="right" if column in {"position", "head", "lag"} else "left"
            )
        for s in statuses:
            colour = "green" if s.state == OK else "red" if s.state == FAILED else "yellow"
            error = "" if s.last_error is None else f"at {s.failed_position}: {s.last_error}"
            table.add_row(
                s.name,
                str(s.position),
                str(s.head),
                str(s.lag),
                f"[{colour}]{s.state}[/{colour}]",
                escape(error[:120]),
            )
        console.print(table)
    if any(s.state == FAILED for s in statuses):
        raise typer.Exit(EXIT_FAILED)


@projections_app.command()
def rebuild(
    name: Annotated[str, typer.Argument(help=f"A projection ({', '.join(ALL_NAMES)}) or 'all'.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be rebuilt, change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: AsJson = False,
) -> None:
    """Rebuild from the whole history into a shadow copy, then swap it in atomically.

    Readers keep reading the old tables until the swap; they never see an empty or half-built one.
    """
    names = list(ALL_NAMES) if name == "all" else [name]
    unknown = [n for n in names if n not in ALL_NAMES]
    if unknown:
        fail(
            exits.USAGE,
            "bad usage",
            f"unknown projection {unknown[0]!r}; known: {', '.join(ALL_NAMES)}, all",
            as_json,
        )
    with services(read_only=True, as_json=as_json) as wired:
        read_side = _read_side(wired.projections, as_json)
        if dry_run:
            head = max((s.head for s in read_side.status()), default=0)
            if as_json:
                print_json({"dry_run": True, "names": names, "events": head})
            else:
                console.print(
                    f"[yellow]dry run:[/yellow] would rebuild {', '.join(names)} "
                    f"from {head} events and swap them in; nothing changed"
                )
            return
        confirm(f"rebuild {', '.join(names)} from the whole history", yes=yes, as_json=as_json)
        try:
            if as_json:
                result = read_side.rebuild(names)
            else:
                with Progress(
                    TextColumn("[bold]rebuilding {task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                ) as bar:
                    # Short, so the bar keeps its room in an 80-column terminal.
                    label = names[0] if len(names) == 1 else f"{len(names)} read models"
                    task = bar.add_task(label, total=None)

                    def advance(position: int, target: int) -> None:
                        bar.update(task, completed=position, total=max(target, 1))

                    result = read_side.rebuild(names, progress=advance)
        except RebuildError as error:
            fail(exits.DIFFERENCES, "rebuild failed, live tables untouched", str(error), as_json)
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(
            f"[green]rebuilt {', '.join(result.names)}[/green]: {result.events} events in "
            f"{result.seconds:.2f} s, swapped in at position {result.position}"
        )


@projections_app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="Catch up to the head, then exit.")] = False,
) -> None:
    """Keep the read models up to date (PostgreSQL: LISTEN/NOTIFY; SQLite: polling)."""
    with services() as wired:
        read_side = _read_side(wired.projections)
        if once:
            position = read_side.catch_up()
            console.print(f"caught up to {position}")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        read_side.start()
        console.print("projecting; Ctrl-C to stop")
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            read_side.stop()
