"""`dianabot policies status|retry`: where each policy stands, and its parked events tried again.

Both know the workers' policies and the bot's (`BOT_POLICIES`: vip-channel, which the bot's
follower runs). Retrying the bot's parked events calls Telegram (invite links, messages)
through the configured bot token and Bot API server; a dry run calls nobody.

`status` exits 1 while any event is parked (not resolved). `retry` exits 0 when every parked
event it tried is resolved (applied, refused by the rules, or nothing to do now), 1 when some
failed again (recorded, still parked) or could not be tried, 2 for an unknown policy, 3 when not
confirmed, 4 when the store is unavailable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated, Any

import typer
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import confirm, console, fail, print_json, services
from dianabot.adapters.telegram.console import vip_channel_port
from dianabot.adapters.telegram.followers import RehearsedVipChannel
from dianabot.adapters.telegram.runner import InvalidToken, check_token
from dianabot.application.policies import BOT_POLICIES
from dianabot.application.policies.base import TRACKING_PREFIX, Policy
from dianabot.application.policies.vip_channel import VipChannel
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

BOT_POLICY_NAMES = tuple(cls.name for cls in BOT_POLICIES)
WORKERS, BOT = "workers", "bot"


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
            {"name": s.name, "runs_in": WORKERS, "position": s.position, "head": s.head,
             "lag": s.lag, "parked": parked.get(s.name, 0)}
            for s in policies.status()
        ]  # fmt: skip
        head = read_side.events.head()
        gone = sorted(set(parked) - set(policies.names) - set(BOT_POLICY_NAMES))
        for name, runs_in in [(n, BOT) for n in BOT_POLICY_NAMES] + [(n, "") for n in gone]:
            position = wired.app.subscriber_position(TRACKING_PREFIX + name)
            lag = max(0, head - position)
            rows.append({"name": name, "runs_in": runs_in, "position": position, "head": head,
                         "lag": lag, "parked": parked.get(name, 0)})  # fmt: skip
    if as_json:
        print_json(rows)
    else:
        table = Table(title="Policies")
        for column in ("policy", "runs in", "position", "head", "lag", "parked"):
            table.add_column(column, justify="left" if column in ("policy", "runs in") else "right")
        for row in rows:
            count = row["parked"]
            table.add_row(
                escape(row["name"]),
                row["runs_in"] or "[dim](removed)[/dim]",
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
        known = (*policies.names, *BOT_POLICY_NAMES)
        if policy is not None and not parked and policy not in known:
            fail(exits.USAGE, "unknown policy", f"{policy!r}; known: {', '.join(known)}", as_json)
        if not parked:
            if as_json:
                print_json({"dry_run": dry_run, "retried": []})
            else:
                console.print("no parked events to retry")
            return
        if not dry_run:
            confirm(f"retry {len(parked)} parked event(s)", yes=yes, as_json=as_json)
        on_bot = {str(row["policy"]) for row in parked} & set(BOT_POLICY_NAMES)
        with _bot_policies(wired, on_bot, dry_run, as_json) as bot_policies:
            outcomes = retry_parked(
                wired.app.bus,
                read_side.events,
                {**policies.by_name(), **bot_policies},
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


@contextmanager
def _bot_policies(
    wired: Services, names: set[str], dry_run: bool, as_json: bool
) -> Iterator[dict[str, Policy]]:
    """The bot's policies among `names`, with Telegram behind their port (a port that calls
    nobody for a dry run); a missing bot token is a usage error, before anything is tried."""
    if not names:
        yield {}
        return
    settings = wired.settings
    with ExitStack() as stack:
        if dry_run:
            port: Any = RehearsedVipChannel(settings.vip_channel_id)
        else:
            secret = settings.bot_token.get_secret_value() if settings.bot_token else None
            try:
                token = check_token(secret)
            except InvalidToken as error:
                fail(
                    exits.USAGE,
                    "no usable bot token",
                    f"{error}: retrying {', '.join(sorted(names))}'s parked events calls "
                    "Telegram (or pass --policy to retry another policy's)",
                    as_json,
                )
            port = stack.enter_context(vip_channel_port(settings, token))
        yield {VipChannel.name: VipChannel(wired.app, port)} if VipChannel.name in names else {}
