"""`dianabot policies status|retry`: where each policy stands, and its parked events tried again.

`status` exits 1 while any event is parked (not resolved). `retry` exits 0 when every parked
event it tried is resolved (applied, refused by the rules, or nothing to do now), 1 when some
failed again (recorded, still parked) or could not be tried, 2 for an unknown policy, 3 when not
confirmed, 4 when the store is unavailable.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import confirm, console, fail, print_json, services
from dianabot.application.policies.base import TRACKING_PREFIX
from dianabot.application.results import Origin
from dianabot.projections.parked import FAILED, SKIPPED, UNAVAILABLE_OUTCOME, retry_parked
from dianabot.projections.service import Projections
from dianabot.projections.subscriptions import Policies
from rich.markup import escape
from rich.table import Table

policies_app = typer.Typer(
    help="Policies: where each stands, and their parked events tried again.",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _wired(wired: Services, as_json: bool) -> tuple[Projections, Policies]:
    if wired.projections is None or wired.policies is None:  # bootstrap builds both
        fail(exits.USAGE, "bad setup", "no read models or policies configured", as_json)
    return wired.projections, wired.policies


@policies_app.command()
def status(as_json: AsJson = False) -> None:
    """Each policy's position, the log's head, its lag, and its parked events (not resolved)."""
    with services(read_only=True, as_json=as_json) as wired:
        read_side, policies = _wired(wired, as_json)
        read_side.catch_up()  # the parked counts come from the incidents read model
        parked = read_side.incidents().parked_counts()
        rows: list[dict[str, Any]] = [
            {"name": s.name, "position": s.position, "head": s.head, "lag": s.lag,
             "parked": parked.get(s.name, 0)}
            for s in policies.status()
        ]  # fmt: skip
        head = read_side.events.head()
        for name in sorted(set(parked) - set(policies.names)):  # a policy since removed
            position = wired.app.subscriber_position(TRACKING_PREFIX + name)
            rows.append({"name": name, "position": position, "head": head,
                         "lag": max(0, head - position), "parked": parked[name]})  # fmt: skip
    if as_json:
        print_json(rows)
    else:
        table = Table(title="Policies")
        for column in ("policy", "position", "head", "lag", "parked"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for row in rows:
            count = row["parked"]
            table.add_row(
                escape(row["name"]),
                str(row["position"]),
                str(row["head"]),
                str(row["lag"]),
                f"[red]{count}[/red]" if count else "[green]0[/green]",
            )
        console.print(table)
        if any(row["parked"] for row in rows):
            console.print("[dim]dianabot policies retry: try the parked events again[/dim]")
    if any(row["parked"] for row in rows):
        raise typer.Exit(exits.DIFFERENCES)


@policies_app.command()
def retry(
    policy: Annotated[
        str | None, typer.Option("--policy", help="Only this policy's parked events.")
    ] = None,
    position: Annotated[
        int | None, typer.Option("--position", help="Only the event parked at this position.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what each policy would do now; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: AsJson = False,
) -> None:
    """Run the policies again on their parked events: an effect is applied once, together with
    the parked event's resolution; one that fails again stays parked (with its new error)."""
    with services(read_only=True, as_json=as_json) as wired:
        read_side, policies = _wired(wired, as_json)
        read_side.catch_up()
        incidents = read_side.incidents()
        parked = incidents.parked(policy=policy, position=position)
        if policy is not None and not parked and policy not in policies.names:
            known = ", ".join(policies.names)
            fail(exits.USAGE, "unknown policy", f"{policy!r}; known: {known}", as_json)
        if not parked:
            if as_json:
                print_json({"dry_run": dry_run, "retried": []})
            else:
                console.print("no parked events to retry")
            return
        if not dry_run:
            confirm(f"retry {len(parked)} parked event(s)", yes=yes, as_json=as_json)
        outcomes = retry_parked(
            wired.app.bus,
            read_side.events,
            policies.by_name(),
            parked,
            Origin.console("cli"),
            dry_run=dry_run,
        )
        if not dry_run:
            read_side.catch_up()
    if as_json:
        print_json({"dry_run": dry_run, "retried": [o.to_dict() for o in outcomes]})
    else:
        title = "Parked events (dry run: nothing changed)" if dry_run else "Parked events retried"
        table = Table(title=title)
        for column in ("policy", "position", "event", "outcome", "detail"):
            table.add_column(column, justify="right" if column == "position" else "left")
        for outcome in outcomes:
            colour = "green" if outcome.ok else "red"
            table.add_row(
                escape(outcome.policy),
                str(outcome.position),
                escape(outcome.event_name),
                f"[{colour}]{escape(outcome.outcome)}[/{colour}]",
                escape(outcome.detail),
            )
        console.print(table)
    kinds = {o.outcome for o in outcomes}
    if UNAVAILABLE_OUTCOME in kinds:
        raise typer.Exit(exits.UNAVAILABLE)
    if kinds & {FAILED, SKIPPED}:
        raise typer.Exit(exits.DIFFERENCES)
