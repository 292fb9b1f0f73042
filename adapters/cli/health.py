"""`dianabot health [--json]` and `dianabot status [--json]`: the coordinator's reports.

Both only read (a read-only bootstrap: no store, table or schema is created). `health` exits 1
when the system is failing (the store unreachable, a projection failed), 0 when it is ok or
degraded (said plainly, with the reasons and what to do); `status` exits 0 unless the store
cannot be opened (4).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import console, fail, print_json, services
from dianabot.adapters.eventstore.database import DatabaseUnavailable
from dianabot.application.coordinator import Coordinator
from dianabot.application.health import (
    DEGRADED,
    FAILING,
    LAG_THRESHOLD,
    NOT_RUNNING,
    OK,
    HealthReport,
    HealthRules,
    StatusReport,
    SubscriberHealth,
)
from rich.markup import escape
from rich.table import Table

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
COLOURS = {OK: "green", DEGRADED: "yellow", FAILING: "red", NOT_RUNNING: "dim"}


def _coordinator(coordinator: Coordinator | None, as_json: bool) -> Coordinator:
    if coordinator is None:  # bootstrap always builds it; a guard for wiring mistakes
        fail(exits.USAGE, "bad setup", "no coordinator configured", as_json)
    return coordinator


def health(
    as_json: AsJson = False,
    lag_threshold: Annotated[
        int,
        typer.Option(
            "--lag-threshold", min=0, help="Events behind the head that make a subscriber degraded."
        ),
    ] = LAG_THRESHOLD,
) -> None:
    """Overall status (ok, degraded, failing), each module's, integrity, recommendations.

    Exit 1 when failing, 0 otherwise (degraded is printed, with what to do).
    """
    rules = HealthRules(lag_threshold=lag_threshold)

    def unreachable(error: DatabaseUnavailable) -> None:
        _show_health(rules.unreachable(datetime.now(UTC), str(error)), as_json)

    with services(read_only=True, as_json=as_json, unreachable=unreachable) as wired:
        coordinator = _coordinator(wired.coordinator, as_json)
        coordinator.rules = rules
        report = coordinator.health()
    _show_health(report, as_json)


def _show_health(report: HealthReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
    else:
        render_health(report)
    if report.failing:
        raise typer.Exit(exits.DIFFERENCES)
    raise typer.Exit(exits.OK)


def render_health(report: HealthReport) -> None:
    colour = COLOURS.get(report.status, "white")
    console.print(
        f"[bold]Health:[/bold] [bold {colour}]{report.status.upper()}[/bold {colour}] "
        f"[dim]({report.checked_at.isoformat(timespec='seconds')})[/dim]"
    )
    store = report.store
    if store.reachable:
        latency = "" if store.latency_ms is None else f", {store.latency_ms:.1f} ms"
        console.print(f"event store: [green]reachable[/green] (head {store.head}{latency})")
    else:
        console.print(f"event store: [red]unreachable[/red]: {escape(store.error or '')}")
    subscribers = [*report.projections, *report.policies]
    if subscribers:
        console.print(_subscriber_table(subscribers))
    telegram = report.telegram
    shown = "connected" if telegram.connected else telegram.status
    detail = f": {escape(telegram.detail)}" if telegram.detail else ""
    console.print(f"telegram: [{COLOURS.get(telegram.status, 'white')}]{shown}[/]{detail}")
    integrity = report.integrity
    if not integrity.available:
        console.print("integrity: [dim]unknown (no incident log)[/dim]")
    elif not integrity.ran:
        console.print("integrity: [yellow]no reconciliation yet[/yellow]")
    else:
        verdict = (
            "[green]consistent[/green]"
            if integrity.consistent and not integrity.differences
            else f"[red]{integrity.differences} differences[/red]"
        )
        console.print(
            f"integrity: last reconciliation {escape(str(integrity.reconciled_at))} at position "
            f"{integrity.position}: {verdict}"
        )
    for module, error in report.errors.items():
        console.print(f"[red]could not read {escape(module)}:[/red] {escape(error)}")
    if report.reasons:
        console.print(f"[bold {colour}]Why {report.status}:[/bold {colour}]")
        for reason in report.reasons:
            console.print(f"  - {escape(reason)}")
    if report.recommendations:
        console.print("[bold]Recommendations:[/bold]")
        for advice in report.recommendations:
            console.print(f"  - {escape(advice)}")


def _subscriber_table(subscribers: list[SubscriberHealth]) -> Table:
    table = Table(title="Subscriptions")
    for column in ("kind", "name", "status", "position", "lag", "state", "parked", "error"):
        right = column in {"position", "lag", "parked"}
        table.add_column(column, justify="right" if right else "left")
    for s in subscribers:
        colour = COLOURS.get(s.status, "white")
        where = f"at {s.failed_at}: " if s.failed_at is not None else ""
        error = "" if s.last_error is None else f"{where}{s.last_error}"
        table.add_row(
            s.kind,
            escape(s.name),
            f"[{colour}]{s.status}[/{colour}]",
            str(s.position),
            str(s.lag),
            s.state,
            str(s.parked),
            escape(error[:100]),
        )
    return table


def status(as_json: AsJson = False) -> None:
    """The head of the log, the number of players, and each subscriber's position."""
    with services(read_only=True, as_json=as_json) as wired:
        report = _coordinator(wired.coordinator, as_json).status()
    if as_json:
        print_json(report.to_dict())
        return
    render_status(report)


def render_status(report: StatusReport) -> None:
    counts = ", ".join(f"{name} {count}" for name, count in report.counts.items())
    console.print(
        f"[bold]head[/bold] {report.head if report.head is not None else '?'}"
        + (f" · {counts}" if counts else "")
    )
    table = Table(title="Subscribers")
    for column in ("group", "name", "position", "lag", "state", "running here"):
        table.add_column(column, justify="right" if column in {"position", "lag"} else "left")
    for s in report.subscriptions:
        table.add_row(
            s.group,
            escape(s.name),
            str(s.position),
            str(s.lag),
            s.state,
            "yes" if s.running else "",
        )
    console.print(table)
    for module, error in report.errors.items():
        console.print(f"[red]could not read {escape(module)}:[/red] {escape(error)}")
