"""`dianabot reconcile [--user ID] [--fix] [--json]`: replay the history and diff the read models.

Exit code 0: consistent. 1: differences were found (with --fix, they were also repaired; the
report says how). 2: the database is unavailable.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from dianabot.adapters.cli.common import console, errors, print_json, services
from dianabot.projections.reconcile import ReconcileReport
from rich.table import Table

EXIT_DIFFERENCES = 1


def reconcile(
    user: Annotated[
        int | None, typer.Option("--user", help="Check one Telegram user (replays only theirs).")
    ] = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Swap in the rebuilt rows and issue compensating commands (never edits events).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replay the history up to a fixed position and compare it with the live read models."""
    with services() as wired:
        if wired.projections is None:
            errors.print("[red]no read models configured[/red]")
            raise typer.Exit(EXIT_DIFFERENCES)
        report = wired.projections.reconcile(user=user, fix=fix)
    if as_json:
        print_json(report.to_dict())
    else:
        render(report)
    if not report.consistent:
        raise typer.Exit(EXIT_DIFFERENCES)


def render(report: ReconcileReport) -> None:
    scope = f"user {report.user}" if report.user is not None else "all users"
    verdict = "[green]consistent[/green]" if report.consistent else "[red]differences[/red]"
    table = Table(title=f"Reconciliation of {scope} at position {report.position}: {verdict}")
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column("in history", justify="right")
    table.add_column("examples")
    for check in report.checks.values():
        colour = "green" if check.count == 0 else "red"
        examples = "\n".join(f"{p.key}: {p.detail}" for p in check.examples if p.detail)
        table.add_row(
            f"{check.name}\n[dim]{check.description}[/dim]",
            f"[{colour}]{check.count}[/{colour}]",
            str(check.history),
            examples,
        )
    console.print(table)
    if report.fixes:
        fixes = Table(title="Fixes")
        for column in ("action", "target", "outcome", "detail"):
            fixes.add_column(column)
        for fix in report.fixes:
            fixes.add_row(fix.action, fix.target, _outcome(fix.outcome), fix.detail)
        console.print(fixes)
    console.print(f"[dim]{report.seconds:.2f} s[/dim]")


def _outcome(outcome: Any) -> str:
    return f"[green]{outcome}[/green]" if outcome == "ok" else f"[yellow]{outcome}[/yellow]"
