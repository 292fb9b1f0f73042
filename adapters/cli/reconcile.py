"""`dianabot reconcile [--user ID] [--fix [--dry-run] [--yes]] [--json]`: replay the history and
diff the read models.

Exit code 0: consistent. 1: differences were found (with --fix, they were also repaired; the
report says how). 2: unknown user or bad settings. 3: --fix not confirmed. 4: no store, or an
empty or unreachable one (a reconcile never creates a store).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import confirm, console, fail, print_json, services
from dianabot.adapters.eventstore.chain import AuditChain, AuditKeyError
from dianabot.projections.reconcile import ReconcileReport
from rich.markup import escape
from rich.table import Table

EXIT_DIFFERENCES = exits.DIFFERENCES


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
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --fix: report what it would repair, change nothing."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --fix: do not ask.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replay the history up to a fixed position and compare it with the live read models."""
    if dry_run and not fix:
        fail(exits.USAGE, "bad usage", "--dry-run goes with --fix", as_json)
    with services(read_only=True, as_json=as_json) as wired:
        if wired.projections is None:
            fail(exits.USAGE, "bad setup", "no read models configured", as_json)
        if user is not None and wired.app.get_player(user) is None:
            fail(exits.USAGE, "unknown user", f"no player with Telegram id {user}", as_json)
        if fix and not dry_run:
            _refuse_unverified(wired.app, as_json)
            confirm(
                "repair the read models and issue compensating commands", yes=yes, as_json=as_json
            )
        report = wired.projections.reconcile(user=user, fix=fix and not dry_run)
    if dry_run and not as_json:
        console.print(
            "[yellow]dry run:[/yellow] nothing repaired; --fix would repair the differences below"
        )
    if as_json:
        print_json(report.to_dict())
    else:
        render(report)
    if not report.consistent:
        raise typer.Exit(EXIT_DIFFERENCES)


def _refuse_unverified(app: Any, as_json: bool) -> None:
    """Repairing read models copies the history into them: never from a history whose chain
    fails verification (an edited amount would become the balance)."""
    try:
        verdict = AuditChain(app).verify()
    except AuditKeyError as error:
        fail(
            exits.USAGE,
            "audit key",
            f"cannot verify the history before repairing: {error}",
            as_json,
        )
    if not verdict.ok:
        assert verdict.problem is not None
        fail(
            exits.REFUSED,
            "refused",
            f"the history fails verification ({verdict.problem.kind} at position "
            f"{verdict.problem.position}: {verdict.problem.detail}); read models are not "
            "repaired from it (see `dianabot audit verify`)",
            as_json,
        )


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
        examples = "\n".join(escape(f"{p.key}: {p.detail}") for p in check.examples if p.detail)
        table.add_row(
            f"{escape(check.name)}\n[dim]{escape(check.description)}[/dim]",
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
            fixes.add_row(
                escape(fix.action), escape(fix.target), _outcome(fix.outcome), escape(fix.detail)
            )
        console.print(fixes)
    console.print(f"[dim]{report.seconds:.2f} s[/dim]")


def _outcome(outcome: Any) -> str:
    text = escape(str(outcome))
    return f"[green]{text}[/green]" if outcome == "ok" else f"[yellow]{text}[/yellow]"
