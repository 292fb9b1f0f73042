"""`dianabot demo`: scripted users exercising every points flow, written to the configured store.

Until the Telegram adapter lands, the demo drives the application services directly with a manual
clock (so cooldowns and streaks play out in seconds), then prints balances, levels and badges.
Badges, the story's decision bonuses and the VIP invitation come from the policies, as in
production: the script lets them catch up with the log at the end of each simulated step
(`Script.settle`), as the workers would between a user's actions.
The demo writes where every other command reads (--database-url, else DIANABOT_DATABASE_URL, else
the default file), so `dianabot reconcile` right after it sees its data. Its clock starts
`DEMO_SPAN` in the past and is moved to the present at the end: nothing it leaves is due later
than the real clock says.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import (
    confirm,
    console,
    database_url,
    fail,
    print_json,
    services,
    settings,
)
from dianabot.adapters.cli.reconcile import render as render_reconciliation
from dianabot.adapters.eventstore.database import (
    Database,
    DatabaseMisconfigured,
    DatabaseUnavailable,
    StoreMissing,
    database_from_url,
    prepare,
    redact,
)
from dianabot.adapters.story_file import load_bundled_story
from dianabot.application.clock import ManualClock
from dianabot.application.commands import DEFAULT_STORY
from dianabot.application.results import CommandResult, Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.rules import level_for
from dianabot.projections import queries
from dianabot.projections.service import Projections
from dianabot.projections.subscriptions import Policies
from rich import box
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

DEMO_SPAN = timedelta(days=8, hours=4)
"""How much simulated time the script takes (a little more, checked by a test)."""
ADMIN_ID = 0
USERS = {1001: "Ana", 1002: "Bruno", 1003: "Carla", 1004: "Darío", 1005: "Elena"}


@dataclass
class Script:
    """Runs one scripted action at a time, as a Telegram update would, and keeps score."""

    app: DianaApplication
    clock: ManualClock
    policies: Policies | None = None
    next_update: int = 10_000
    outcomes: Counter[str] = field(default_factory=Counter)

    def origin(self, user: int) -> Origin:
        self.next_update += 1
        return Origin.telegram(self.next_update, user)

    def run(self, user: int, result: CommandResult) -> CommandResult:
        self.outcomes[result.outcome] += 1
        return result

    def settle(self) -> None:
        """The policies catch up with the log (their commands included), at the simulated
        time: what the workers do between one step of the users and the next."""
        if self.policies is not None:
            self.policies.catch_up()

    def walk(self, user: int, steps: int) -> str:
        """Take up to `steps` choices (varying by user), stopping at an ending or a refusal."""
        for step in range(steps):
            view = self.app.current_fragment(user)
            if view is None or not view.choices:
                return "ending"
            affordable = [c for c in view.choices if c.affordable] or list(view.choices)
            choice = affordable[(user + step) % len(affordable)]
            result = self.run(user, self.app.make_choice(user, choice.id, self.origin(user)))
            self.settle()
            if not result.ok:
                return result.outcome
            self.clock.advance(minutes=3)
        return "walking"


def play(app: DianaApplication, clock: ManualClock, policies: Policies | None = None) -> Script:
    """The scripted users' actions; with `policies`, their effects (badges, bonuses, the VIP
    invitation) too, at the end of each step."""
    script = Script(app, clock, policies)
    app.ensure_badges(INITIAL_BADGES, Origin.system("demo", "catalogue"))
    for user, name in USERS.items():
        script.run(user, app.register_player(user, name, script.origin(user)))

    # Reactions under channel posts: +10 each, once per post whatever the emoji.
    for index, user in enumerate(USERS):
        for post in range(1, 4 + 3 * index):
            script.run(user, app.react(user, f"channel:{post}", "❤️", script.origin(user)))
        script.run(user, app.react(user, "channel:1", "🔥", script.origin(user)))  # refused
    script.settle()

    # Group chat: +1 per message, 30 s cooldown.
    for user in USERS:
        for gap in (0, 10, 21, 31):  # the second message is 10 s after the first: too soon
            clock.advance(seconds=gap)
            message = f"group:{user}:{clock.now():%H%M%S}"
            script.run(user, app.count_message(user, message, script.origin(user)))
        clock.advance(seconds=31)
    script.settle()

    # Polls: +2 once per poll.
    for user in list(USERS)[:3]:
        script.run(user, app.answer_poll(user, "poll:favorita", script.origin(user)))
        script.run(user, app.answer_poll(user, "poll:favorita", script.origin(user)))
    script.settle()

    # Daily check-ins over eight days: the 7th in a row brings the streak bonus.
    for day in range(8):
        for user in list(USERS)[: 2 + day % 3]:
            script.run(user, app.check_in(user, script.origin(user)))
        script.run(1001, app.check_in(1001, script.origin(1001)))  # too soon: refused
        script.settle()
        clock.advance(hours=24, minutes=5)

    # An update delivered twice is applied once.
    twice = script.origin(1003)
    script.run(1003, app.count_message(1003, "group:1003:dup", twice))
    clock.advance(seconds=45)
    script.run(1003, app.count_message(1003, "group:1003:dup", twice))

    # Admin grant and deduct; spending more than the balance is refused, never partial.
    script.run(1005, app.grant_points(ADMIN_ID, 1005, 150, "ganadora del sorteo", Origin.console()))
    script.run(1004, app.deduct_points(ADMIN_ID, 1004, 5, "corrección", Origin.console()))
    script.run(1002, app.spend_points(1002, 10_000, "vip", "demo", script.origin(1002)))
    script.run(1002, app.spend_points(1002, 20, "story_choice", "demo", script.origin(1002)))
    script.settle()
    play_story(script)
    return script


def play_story(script: Script) -> None:
    """Everyone starts the story; Ana reaches the VIP gate, redeems a token and goes on."""
    app = script.app
    app.publish_story(load_bundled_story(), Origin.system("demo", "story"))
    for user in USERS:
        script.run(user, app.start_story(user, script.origin(user)))
    script.settle()
    for index, user in enumerate(USERS):
        script.walk(user, steps=3 + 2 * index)
    # Ana walks the free arc until the VIP gate refuses her (recorded as VipGateHit; the
    # vip-conversion policy queues her an invitation) ...
    ana = 1001
    while script.walk(ana, steps=1) == "walking":
        pass
    # ... an admin issues a VIP token (deep link /start vip-<code>), she redeems it (the
    # vip-badge policy awards El Diván) ...
    token = app.issue_vip_token(ADMIN_ID, 30, Origin.console()).details["token"]
    script.run(ana, app.redeem_vip_token(ana, token, script.origin(ana)))
    script.run(ana, app.redeem_vip_token(ana, token, script.origin(ana)))  # token_used
    script.settle()
    # ... and the VIP arc opens.
    script.walk(ana, steps=6)


def summary(projections: Projections, now: datetime) -> list[dict[str, Any]]:
    """What the screens would show, read from the read models (never from the aggregates)."""
    vip_now = {row["telegram_id"] for row in queries.vip_members(projections, now)}
    engagement = projections.table("engagement")
    with projections.store.read() as conn:
        streaks = {
            row.player_id: row.streak
            for row in conn.execute(select(engagement.c.player_id, engagement.c.streak))
        }
    rows = []
    for entry in queries.top(projections, limit=len(USERS)):
        user = entry["telegram_id"]
        profile = queries.profile(projections, user) or {}
        position = queries.story_position(projections, user, DEFAULT_STORY) or {}
        rows.append(
            {
                "rank": entry["rank"],
                "user": user,
                "name": entry["display_name"],
                "balance": profile.get("balance"),
                "lifetime": entry["points"],
                "level": profile.get("level"),
                "level_name": level_for(entry["points"]).name,
                "streak": streaks.get(profile.get("player_id"), 0),
                "vip": user in vip_now,
                "fragment": position.get("fragment_id"),
                "badges": [badge["badge_slug"] for badge in queries.badges(projections, user)],
            }
        )
    return rows


def demo(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say where the demo would write, change nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Replace an existing store's data without asking.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Scripted users doing every flow on the configured store (empty it first), then a summary."""
    url = database_url(settings(as_json))
    shown = redact(url)
    try:
        database = database_from_url(url)
        has_data = _has_data(database)
    except DatabaseMisconfigured as error:
        fail(exits.USAGE, "invalid setting", str(error), as_json)
    except DatabaseUnavailable as error:
        fail(exits.UNAVAILABLE, "database unavailable", str(error), as_json)
    if has_data and database.kind != "sqlite":
        fail(
            exits.REFUSED,
            "store not empty",
            f"{shown} already holds events; the demo writes only into an empty store: "
            "point --database-url at an empty database or schema",
            as_json,
        )
    if dry_run:
        action = f"replace the data in {shown}" if has_data else f"write into {shown}"
        if as_json:
            print_json({"dry_run": True, "database": shown, "replaces_data": has_data})
        else:
            console.print(f"[yellow]dry run:[/yellow] the demo would {escape(action)}")
        return
    if has_data:
        confirm(
            f"delete the events and read models in {shown} for the demo's", yes=yes, as_json=as_json
        )
        _remove_sqlite_files(Path(database.eventsourcing_env["SQLITE_DBNAME"]))
    clock = ManualClock(datetime.now(UTC) - DEMO_SPAN)
    with services(url, clock=clock, as_json=as_json) as wired:
        script = play(wired.app, clock, wired.policies)
        clock.set(max(clock.now(), datetime.now(UTC)))  # the demo ends at the present
        projections = wired.projections
        assert projections is not None
        projections.catch_up()
        rows = summary(projections, clock.now())
        funnel = queries.funnel(projections)
        report = projections.reconcile(now=clock.now())
        if wired.policies is not None:  # past the reconciliation's summary, as the workers go
            wired.policies.catch_up()
        effects = policy_summary(wired.policies)
    if as_json:
        print_json(
            {
                "database": shown,
                "players": rows,
                "outcomes": dict(script.outcomes),
                "vip_funnel": funnel,
                "policies": effects,
                "reconciliation": report.to_dict(),
            }
        )
        return
    print_summary(rows, script, funnel, effects)
    render_reconciliation(report)
    console.print(f"events and read models in [bold]{escape(shown)}[/bold]")
    console.print(
        "next: [bold]dianabot reconcile[/bold], [bold]dianabot projections status[/bold], "
        "[bold]dianabot admin grant 1001 50 -r gracias[/bold] (same store)"
    )


def policy_summary(policies: Policies | None) -> dict[str, dict[str, int]]:
    """Per policy: the commands it issued in this run, and how far behind the log it is."""
    if policies is None:
        return {}
    lags = {status.name: status.lag for status in policies.status()}
    return {
        slot.name: {"commands": slot.commands, "parked": slot.parked, "lag": lags[slot.name]}
        for slot in policies.runner.slots
    }


def _has_data(database: Database) -> bool:
    """Whether the store already holds events (a missing or empty store has none)."""
    try:
        prepare(database, read_only=True)
    except StoreMissing:
        return False
    return True


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def print_summary(
    rows: list[dict[str, Any]],
    script: Script,
    funnel: dict[str, Any],
    effects: dict[str, dict[str, int]],
) -> None:
    """The read models' view of the demo, narrow enough for an 80-column terminal: one table row
    per player, then each player's badges on lines of their own."""
    table = Table(title="Diana: tabla de besitos (read models)", box=box.SIMPLE_HEAD)
    for column in ("#", "player", "balance", "lifetime", "level", "streak", "vip", "fragment"):
        numeric = column in {"balance", "lifetime", "streak"}
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(
            str(row["rank"]),
            f"{escape(str(row['name']))} [dim]{row['user']}[/dim]",
            str(row["balance"]),
            str(row["lifetime"]),
            f"{row['level']} {escape(row['level_name'])}",
            str(row["streak"]),
            "★" if row["vip"] else "",
            escape(str(row["fragment"])),
        )
    console.print(table)
    for row in rows:
        badges = ", ".join(row["badges"]) or "none"
        console.print(f"[bold]{escape(str(row['name']))}[/bold]: {escape(badges)}")
    outcomes = Table(title="Command outcomes", box=box.SIMPLE_HEAD)
    outcomes.add_column("outcome")
    outcomes.add_column("count", justify="right")
    for outcome, count in sorted(script.outcomes.items()):
        outcomes.add_row(escape(outcome), str(count))
    console.print(outcomes)
    console.print(
        f"VIP funnel: free users who hit a VIP gate: {funnel['users']} "
        f"({funnel['gate_hits']} hits); of them became VIP: {funnel['converted']}"
    )
    if effects:
        behind = sum(effect["lag"] for effect in effects.values())
        state = "caught up" if behind == 0 else f"{behind} events behind"
        issued = ", ".join(f"{name} {effect['commands']}" for name, effect in effects.items())
        console.print(f"Policies ({state}), commands issued: {escape(issued)}")
