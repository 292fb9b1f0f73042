"""`dianabot demo`: scripted users going through every flow of the bot, written to the
configured store.

The demo runs the real bot: the local Bot API (`adapters.telegram.local_api.LocalBotAPI`) in
this process, and the bot's aiogram `Dispatcher` long-polling it through aiogram's own
`TelegramAPIServer` setting, exactly as it would poll Telegram or a self-hosted Bot API server.
Scripted users act by injecting updates into the local Bot API: channel posts get reaction
buttons and users press them, group messages, an admin's `/poll` and its answers, `/checkin`
over eight simulated days, `/story` with a paid choice and a VIP gate, a VIP token by deep link
(`/start vip-<code>`), an admin's `/grant`, and one update delivered twice (awarded once).
Each update is handled before the next is injected (`handle_as_tasks=False`), so a run is
reproducible. A manual clock makes cooldowns and streaks play out in seconds.

Badges, the story's decision bonuses and the VIP invitation come from the policies, as in
production: the script lets them catch up with the log at the end of each simulated step
(`Script.settle`), as the workers would between a user's actions; the read models run live
(the bot's replies read them).
The demo writes where every other command reads (--database-url, else DIANABOT_DATABASE_URL, else
the default file), so `dianabot reconcile` right after it sees its data. Its clock starts
`DEMO_SPAN` in the past and is moved to the present at the end: nothing it leaves is due later
than the real clock says.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from aiogram import BaseMiddleware, Dispatcher
from aiogram.types import TelegramObject
from dianabot.adapters.bootstrap import Services
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
from dianabot.adapters.settings import Settings
from dianabot.adapters.story_file import load_bundled_story
from dianabot.adapters.telegram.bot import build_dispatcher, make_bot
from dianabot.adapters.telegram.callbacks import ChoiceButton, ConsentButton, ReactionButton
from dianabot.adapters.telegram.context import BotMonitor, BotServices
from dianabot.adapters.telegram.local_api import JSON, LocalBotAPI, TelegramUser
from dianabot.adapters.telegram.polling import UpdatePoller
from dianabot.application.clock import ManualClock
from dianabot.application.commands import DEFAULT_STORY
from dianabot.application.coordinator import ActionResult
from dianabot.application.health import HealthReport
from dianabot.application.results import Origin
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
ADMIN_ID = 900
"""The demo's admin (a Telegram user id, added to DIANABOT_ADMIN_IDS for the demo)."""
CHANNEL = -1001000000001
GROUP = -1001000000002
TOKEN = "123456789:DEMO-local-bot-api-token"
USERS = {1001: "Ana", 1002: "Bruno", 1003: "Carla", 1004: "Darío", 1005: "Elena"}
UPDATE_TIMEOUT = 30.0
"""How long the script waits for the bot to handle one update before giving up."""
QUIET_LOGGERS = ("aiogram.event", "aiogram.dispatcher", "dianabot.adapters.telegram.polling")
"""aiogram's per-update INFO lines (a thousand of them would bury the summary) and the polling
loop's start and stop."""


class DemoStalled(RuntimeError):
    """The bot did not handle an injected update in time."""


def demo_settings(resolved: Settings) -> Settings:
    """The settings with the demo's channel, group and admin (the bot's chats for the run)."""
    return resolved.model_copy(
        update={
            "admin_ids": frozenset({*resolved.admin_ids, ADMIN_ID}),
            "channel_id": CHANNEL,
            "group_id": GROUP,
        }
    )


@dataclass
class DemoBotServices(BotServices):
    """The bot's services, noting every result the handlers got (the script's score)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    last: dict[int, ActionResult] = field(default_factory=dict)

    def wrote(self, user_id: int, result: ActionResult) -> None:
        self.outcomes[result.outcome] += 1
        self.last[user_id] = result
        super().wrote(user_id, result)


class HandledUpdates(BaseMiddleware):
    """Counts the updates the dispatcher finished handling (so the script can wait for each)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        finally:
            self.count += 1
            self.changed.set()


@dataclass
class Script:
    """Scripted Telegram users: each action is an update injected into the local Bot API,
    handled by the bot's dispatcher before the next one."""

    wired: Services
    clock: ManualClock
    api: LocalBotAPI
    bot: DemoBotServices
    handled: HandledUpdates
    injected: int = 0
    story_messages: dict[int, int] = field(default_factory=dict)
    health: HealthReport | None = None

    @property
    def outcomes(self) -> Counter[str]:
        return self.bot.outcomes

    @property
    def policies(self) -> Policies | None:
        return self.wired.policies

    @staticmethod
    def user(user: int) -> TelegramUser:
        return TelegramUser(id=user, first_name=USERS.get(user, "Admin"), language_code="es")

    async def deliver(self, update: JSON) -> JSON:
        """Inject `update` (queued as it is: the same update again is delivered again) and wait
        until the dispatcher has handled it."""
        return await self._handled(self.api.inject_update(update))

    async def _handled(self, update: JSON) -> JSON:
        self.injected += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + UPDATE_TIMEOUT
        while self.handled.count < self.injected:
            self.handled.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DemoStalled(f"the bot did not handle update {update.get('update_id')}")
            try:
                await asyncio.wait_for(self.handled.changed.wait(), remaining)
            except TimeoutError:
                continue
        return update

    async def say(self, user: int, text: str) -> JSON:
        """A private message (a command) from `user` to the bot."""
        return await self._handled(self.api.inject_message(self.user(user), text))

    async def in_group(self, user: int, text: str) -> JSON:
        return await self._handled(self.api.inject_group_message(GROUP, self.user(user), text))

    async def post(self, text: str) -> int:
        """A post in the channel; the bot attaches reaction buttons. Its message id."""
        update = await self._handled(self.api.inject_channel_post(CHANNEL, text))
        return int(update["channel_post"]["message_id"])

    async def press(
        self, user: int, chat_id: int, message_id: int, data: str
    ) -> ActionResult | None:
        """`user` presses an inline button; the result of the command it ran (None when the
        bot refused the button without running one: a stale or unknown button)."""
        self.bot.last.pop(user, None)
        await self._handled(
            self.api.inject_callback_query(self.user(user), (chat_id, message_id), data)
        )
        return self.bot.last.get(user)

    async def react(self, user: int, post: int, emoji: int = 0) -> ActionResult | None:
        return await self.press(user, CHANNEL, post, ReactionButton(emoji=emoji).pack())

    async def answer_poll(self, user: int, poll_id: str, option: int) -> JSON:
        return await self._handled(self.api.inject_poll_answer(self.user(user), poll_id, [option]))

    async def settle(self) -> None:
        """The policies catch up with the log (their commands included), at the simulated
        time: what the workers do between one step of the users and the next."""
        if self.policies is not None:
            await asyncio.to_thread(self.policies.catch_up)

    async def open_story(self, user: int) -> None:
        """`/story`: the bot answers with the fragment and its choice buttons."""
        await self.say(user, "/story")
        mine = [m for m in self.api.messages(user) if m.get("from", {}).get("id") != user]
        if mine:
            self.story_messages[user] = int(mine[-1]["message_id"])

    async def choose(self, user: int, choice: str) -> ActionResult | None:
        """Press the button of `choice` on the user's story message."""
        view = self.wired.app.current_fragment(user)
        fragment = view.fragment_id if view is not None else "none"
        data = ChoiceButton(fragment=fragment, choice=choice).pack()
        return await self.press(user, user, self.story_messages[user], data)

    async def walk(self, user: int, steps: int, *, vip: bool = False) -> str:
        """Take up to `steps` choices (varying by user), stopping at an ending or a refusal;
        without `vip`, away from the VIP arc."""
        for step in range(steps):
            view = self.wired.app.current_fragment(user)
            if view is None or not view.choices:
                return "ending"
            open_ = [
                c
                for c in view.choices
                if vip or view.vip_active or not (c.vip_only or c.leads_to_vip)
            ]
            if not open_:
                return "gate"
            affordable = [c for c in open_ if c.affordable] or open_
            result = await self.choose(user, affordable[(user + step) % len(affordable)].id)
            await self.settle()
            if result is None:
                return "stale"
            if not result.ok:
                return result.outcome
            self.clock.advance(minutes=3)
        return "walking"


async def scenario(script: Script) -> None:
    """The scripted users' actions, through the bot."""
    app = script.wired.app
    app.ensure_badges(INITIAL_BADGES, Origin.system("demo", "catalogue"))
    app.publish_story(load_bundled_story(), Origin.system("demo", "story"))
    for user in USERS:
        await script.say(user, "/start")

    # Bruno opens the story at once: the paid choice in the salon is beyond his 0 besitos.
    bruno = 1002
    await script.open_story(bruno)
    await script.choose(bruno, "c1_llegada_a")
    await script.choose(bruno, "c1_salon_c")  # insufficient_points
    await script.settle()

    # Channel posts get reaction buttons; +10 per post, once per post whatever the emoji.
    posts = [await script.post(f"Diana, nota {n}") for n in range(1, 4 + 3 * (len(USERS) - 1))]
    for index, user in enumerate(USERS):
        for post in posts[: 3 + 3 * index]:
            await script.react(user, post)
        await script.react(user, posts[0], emoji=1)  # already_reacted
    await script.settle()

    # Group chat: +1 per message, 30 s cooldown.
    for user in USERS:
        for gap in (0, 10, 21, 31):  # the second message is 10 s after the first: too soon
            script.clock.advance(seconds=gap)
            await script.in_group(user, f"¡Hola, Diana! ({gap})")
        script.clock.advance(seconds=31)
    await script.settle()

    # Polls: the admin posts one through the bot (/poll); +2 once per poll.
    await script.say(ADMIN_ID, "/poll ¿Tu noche favorita? | La del salón | La de la terraza")
    poll_id = str(script.api.calls("sendPoll")[-1].result["poll"]["id"])
    for user in list(USERS)[:3]:
        await script.answer_poll(user, poll_id, user % 2)
        await script.answer_poll(user, poll_id, 0)  # already_answered
    await script.settle()

    # Daily check-ins over eight days: the 7th in a row brings the streak bonus.
    for day in range(8):
        for user in list(USERS)[: 2 + day % 3]:
            await script.say(user, "/checkin")
        await script.say(1001, "/checkin")  # too soon: refused
        await script.settle()
        script.clock.advance(hours=24, minutes=5)
    await script.say(1001, "/profile")

    # An update delivered twice (a restart before the offset was committed) is applied once.
    twice = await script.in_group(1003, "Esto llega dos veces")
    script.clock.advance(seconds=45)
    await script.deliver(twice)

    # The admin's grant; a stranger's /grant is refused politely.
    await script.say(ADMIN_ID, "/grant 1005 150 ganadora del sorteo")
    await script.say(1004, "/grant 1004 1000 por la cara")
    await script.settle()
    await play_story(script)
    await script.say(1001, "/top")


async def play_story(script: Script) -> None:
    """Everyone opens the story; Bruno now pays for the salon; Ana reaches the VIP gate,
    redeems a token and goes on."""
    for user in USERS:
        await script.open_story(user)
    await script.settle()
    bruno = 1002
    await script.choose(bruno, "c1_salon_c")  # the paid choice, affordable now
    await script.settle()
    for index, user in enumerate(USERS):
        await script.walk(user, steps=3 + 2 * index)
    # Ana walks the free arc until the VIP gate refuses her (recorded as VipGateHit; the
    # vip-conversion policy queues her an invitation) ...
    ana = 1001
    while await script.walk(ana, steps=1, vip=True) == "walking":
        pass
    # ... an admin issues a VIP token, she opens its deep link /start vip-<code> (the
    # vip-badge policy awards El Diván); the link used again is refused ...
    app = script.wired.app
    token = app.issue_vip_token(ADMIN_ID, 30, Origin.admin(ADMIN_ID)).details["token"]
    await script.say(ana, f"/start {token}")
    await script.say(ana, f"/start {token}")  # token_used
    await script.settle()
    # ... she confirms she is an adult (the age gate before the VIP arc, once) ...
    await script.press(ana, ana, script.story_messages[ana], ConsentButton().pack())
    # ... and the VIP arc opens.
    await script.walk(ana, steps=6, vip=True)
    await script.say(ana, "/vip")


@contextmanager
def quiet_aiogram() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


async def play_async(wired: Services, clock: ManualClock) -> Script:
    """Start the local Bot API and the bot (polling it), run the scenario, stop both."""
    if wired.coordinator is None:
        raise RuntimeError("the demo needs the coordinator")
    monitor = BotMonitor(clock)
    bot_services = DemoBotServices(
        coordinator=wired.coordinator,
        app=wired.app,
        projections=wired.projections,
        settings=wired.settings,
        clock=clock,
        monitor=monitor,
        throttle=None,  # scripted users at machine speed over simulated days: not a flood
        follow=False,  # the VIP follower runs in real time; the script's clock is simulated
    )
    handled = HandledUpdates()
    dispatcher: Dispatcher = build_dispatcher(bot_services)
    dispatcher.update.outer_middleware(handled)
    api = LocalBotAPI(TOKEN, clock=lambda: clock.now().timestamp())
    api.add_channel(CHANNEL, "Diana")
    api.add_group(GROUP, "El círculo de Diana")
    if wired.projections is not None:
        wired.projections.start()
    wired.coordinator.attach_telegram(monitor)
    try:
        async with api:
            bot = make_bot(TOKEN, api.url)
            poller = UpdatePoller(
                dispatcher,
                bot,
                store_answers=wired.app.store_answers,
                timeout=1,
                sequential=True,
            )
            polling = asyncio.create_task(poller.run())
            script = Script(wired, clock, api, bot_services, handled)
            try:
                await scenario(script)
                script.health = await asyncio.to_thread(wired.coordinator.health)
            finally:
                poller.stop()
                await polling
                await bot.session.close()
    finally:
        wired.coordinator.attach_telegram(None)
        if wired.projections is not None:
            wired.projections.stop()
    return script


def play(wired: Services, clock: ManualClock) -> Script:
    """Run the scripted users through the bot (its own event loop); see `play_async`."""
    with quiet_aiogram():
        return asyncio.run(play_async(wired, clock))


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
    with services(url, clock=clock, as_json=as_json, configure=demo_settings) as wired:
        script = play(wired, clock)
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
                "telegram": dispatcher_summary(script),
                "health": health_summary(script.health),
                "vip_funnel": funnel,
                "policies": effects,
                "reconciliation": report.to_dict(),
            }
        )
        return
    print_summary(rows, script, funnel, effects)
    print_bot_summary(script)
    render_reconciliation(report)
    console.print(f"events and read models in [bold]{escape(shown)}[/bold]")
    console.print(
        "next: [bold]dianabot reconcile[/bold], [bold]dianabot projections status[/bold], "
        "[bold]dianabot admin grant 1001 50 -r gracias[/bold] (same store)"
    )


def dispatcher_summary(script: Script) -> dict[str, Any]:
    """What went through the bot: updates the dispatcher handled, calls it made to the API."""
    calls = Counter(call.method for call in script.api.calls())
    return {
        "updates": script.handled.count,
        "bot_calls": sum(calls.values()),
        "calls_by_method": dict(sorted(calls.items())),
    }


def health_summary(report: HealthReport | None) -> dict[str, Any] | None:
    """The coordinator's health as the bot ran (the last step of the script)."""
    if report is None:
        return None
    return {
        "status": report.status,
        "telegram": report.telegram.status,
        "reasons": list(report.reasons),
    }


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


def print_bot_summary(script: Script) -> None:
    """The dispatcher's traffic and the health the coordinator reported while the bot ran."""
    traffic = dispatcher_summary(script)
    busiest = sorted(traffic["calls_by_method"].items(), key=lambda item: -item[1])
    methods = ", ".join(f"{name} {count}" for name, count in busiest)
    console.print(
        f"Bot: {traffic['updates']} updates through the dispatcher, "
        f"{traffic['bot_calls']} Bot API calls ({escape(methods)})"
    )
    health = health_summary(script.health)
    if health is not None:
        colour = {"ok": "green", "degraded": "yellow"}.get(health["status"], "red")
        reasons = "; ".join(health["reasons"])
        console.print(
            f"Health while the bot ran: [{colour}]{escape(health['status'])}[/{colour}]"
            f" (telegram {escape(str(health['telegram']))})"
            + (f": {escape(reasons)}" if reasons else "")
        )
