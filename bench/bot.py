"""Bot benchmark: updates through the real dispatcher and the local Bot API, beside the ceiling.

Run (PostgreSQL at 127.0.0.1:5432, database `test`, trust auth; about 5 minutes):

    .venv/bin/python bench/bot.py --updates 10000 --users 500

Every run has its own processes: the local Bot API (`python -m
dianabot.adapters.telegram.local_api`), the bot, and for Diana `dianabot workers` (projectors,
policies, jobs) apart from `dianabot run --no-workers`, on a fresh SQLite file or PostgreSQL
schema. The benchmark process only injects updates (HTTP, the server's control endpoint) and
reads the server's record of the bot's calls afterwards.

- The ceiling: a bare aiogram dispatcher, aiogram's own polling, whose only handlers answer a
  message with a fixed text and a button press with a fixed answer (the transport: the local
  Bot API, HTTP, aiogram's parsing; no backend).
- Diana: `dianabot run`, the whole bot (throttle, registration, commands on the bus, group
  commit, replies from results and read models).

Workloads, N updates from U users over 20 channel posts: `storm`, presses of the posts' reaction
buttons only (each user on each post once: every press a command that awards, answered with
`answerCallbackQuery`); `mixed`, 60% presses, 20% `/checkin`, 20% `/profile` (every update
answered once). Two measures each:

- saturation: all N updates are queued before the bot starts; updates/s from the bot's first
  `getUpdates` to its last answer;
- latency: the bot running, updates offered at a fixed rate (default half the ceiling's
  saturation rate of the same workload, measured first in the same run); per update, the time
  from its injection to the bot's answer (the first answer to that query, or the next reply in
  that chat): p50 and p99.

Prints a table; `--save FILE` writes the raw figures as JSON. docs/performance.md has a recorded
run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DIANABOT = str(Path(sys.executable).with_name("dianabot"))
TOKEN = "7000003:bench-bot-token"
CHANNEL = -100_2001
POSTS = 20
FIRST_USER = 100_000
PG_BASE = os.environ.get("DIANABOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ----- the bare bot (the ceiling), run as `bench/bot.py --serve-bare URL` ------------------------


def serve_bare(api_url: str) -> None:
    from aiogram import Bot, Dispatcher, F
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

    dispatcher = Dispatcher()
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="💋", callback_data="react:0")]]
    )

    @dispatcher.channel_post()
    async def post(message: Message) -> None:
        await message.edit_reply_markup(reply_markup=markup)

    @dispatcher.message(F.text)
    async def reply(message: Message) -> None:
        await message.answer("ok")

    @dispatcher.callback_query()
    async def press(query: CallbackQuery) -> None:
        await query.answer("ok")

    async def main() -> None:
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
        await dispatcher.start_polling(bot, polling_timeout=1)

    asyncio.run(main())


# ----- processes ---------------------------------------------------------------------------------


@dataclass
class Processes:
    directory: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.started.append(process)
        return process

    def stop(self) -> None:
        """The bot first (it confirms its offset at the Bot API), the Bot API last."""
        for process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.started.clear()


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")}
    env.update(PYTHONUNBUFFERED="1", DIANABOT_LOG_LEVEL="WARNING", **extra)
    return env


class Store:
    """A fresh SQLite file or PostgreSQL schema for one run."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.env: dict[str, str] = {}
        if kind == "sqlite":
            self.url = f"sqlite:///{directory / f'bench-{uuid.uuid4().hex[:6]}.sqlite3'}"
            self.schema = None
        else:
            self.schema = f"bench_bot_{uuid.uuid4().hex[:8]}"
            base = PG_BASE.replace("postgresql://", "postgresql+psycopg://", 1)
            self.url = f"{base}{'&' if '?' in base else '?'}schema={self.schema}"
            # PostgreSQL has no default audit key file (docs/operations.md); libpq names the
            # run's connections, so their server processes' CPU can be told apart.
            self.env = {
                "DIANABOT_AUDIT_KEY_FILE": str(directory / "audit.key"),
                "PGAPPNAME": self.schema,
            }

    def server_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL server process serving this run's
        connections, by pid (none on SQLite)."""
        if self.schema is None:
            return {}
        import psycopg

        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.schema,)
            ).fetchall()
        found = {pid: cpu_of_pid(pid) for (pid,) in pids}
        return {pid: seconds for pid, seconds in found.items() if seconds is not None}

    def drop(self) -> None:
        if self.schema is None:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )


# ----- the client side ---------------------------------------------------------------------


class Client:
    def __init__(self, session: aiohttp.ClientSession, api_url: str) -> None:
        self.session = session
        self.api_url = api_url

    async def inject(self, kind: str, **arguments: Any) -> dict[str, Any]:
        url = f"{self.api_url}/local/bot{TOKEN}/inject/{kind}"
        async with self.session.post(url, json=arguments) as response:
            answer = await response.json()
        if not answer.get("ok"):
            raise RuntimeError(f"inject {kind}: {answer}")
        return dict(answer["result"])

    async def calls(self, method: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        url = f"{self.api_url}/local/bot{TOKEN}/calls"
        params = {"method": method} if method else {}
        if since:
            params["since"] = str(since)
        async with self.session.get(url, params=params) as response:
            answer = await response.json()
        return list(answer["result"])

    async def wait_for(self, method: str, count: int, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = await self.calls(method)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} {method} calls after {timeout} s")
            await asyncio.sleep(0.2)

    async def wait_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.calls("getMe")
                return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


@dataclass
class Planned:
    kind: str  # "press" or "message"
    user: int
    post: int = 0
    text: str = ""


def plan(workload: str, updates: int, users: int, seed: int = 7) -> list[Planned]:
    """Each user presses each post's button at most once (every press awards)."""
    rng = random.Random(seed)
    pairs = [(FIRST_USER + u, p) for u in range(users) for p in range(POSTS)]
    rng.shuffle(pairs)
    planned: list[Planned] = []
    presses = iter(pairs)
    for _ in range(updates):
        draw = rng.random() if workload == "mixed" else 0.0
        if draw < 0.6:
            user, post = next(presses)
            planned.append(Planned("press", user, post))
        else:
            user = FIRST_USER + rng.randrange(users)
            planned.append(Planned("message", user, text="/checkin" if draw < 0.8 else "/profile"))
    return planned


async def make_posts(client: Client) -> list[tuple[int, str]]:
    """The channel posts and their first button's data (the bot attached them)."""
    posts = []
    for index in range(POSTS):
        update = await client.inject("channel_post", chat_id=CHANNEL, text=f"Post {index}")
        posts.append(int(update["channel_post"]["message_id"]))
    edits = await client.wait_for("editMessageReplyMarkup", POSTS, 60)
    data: dict[int, str] = {}
    for call in edits:
        markup = call["params"].get("reply_markup") or {}
        first = markup["inline_keyboard"][0][0]["callback_data"]
        data[int(call["params"]["message_id"])] = first
    return [(message_id, data[message_id]) for message_id in posts]


async def inject_planned(
    client: Client, item: Planned, posts: list[tuple[int, str]]
) -> tuple[str, Any, float]:
    """Inject one planned update; (answer kind, key, injection time)."""
    at = time.time()
    if item.kind == "press":
        message_id, data = posts[item.post]
        update = await client.inject(
            "callback_query",
            user={"id": item.user, "first_name": f"U{item.user}"},
            message=[CHANNEL, message_id],
            data=data,
        )
        return "answerCallbackQuery", update["callback_query"]["id"], at
    await client.inject(
        "message", user={"id": item.user, "first_name": f"U{item.user}"}, text=item.text
    )
    return "sendMessage", item.user, at


def sample(args: argparse.Namespace, processes: Processes, stamp: str) -> None:
    """py-spy the bot and the workers (all threads) for 30 s from now, into `--py-spy DIR`."""
    spy = str(Path(PYTHON).parent / "py-spy")
    roles = [("bot", processes.started[-1])]
    if len(processes.started) > 2:
        roles.append(("workers", processes.started[-2]))
    for role, process in roles:
        subprocess.Popen(
            [spy, "record", "--pid", str(process.pid), "--threads", "--format", "raw"]
            + ["--rate", "100", "--duration", "30", "--nonblocking"]
            + ["--output", f"{args.py_spy}/{role}-{stamp}.txt"],
            stdout=subprocess.DEVNULL,
        )


def cpu_of_pid(pid: int) -> float | None:
    """User + system CPU seconds of a running process (Linux's /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(process: subprocess.Popen[bytes]) -> float | None:
    return cpu_of_pid(process.pid)


def cpu_of(processes: Processes, bot: str, store: Store | None = None) -> dict[str, float]:
    """CPU seconds so far of the bot (the last process started), Diana's workers, the
    PostgreSQL server processes serving them, the local Bot API and this client."""
    roles = {"bot": processes.started[-1], "api": processes.started[0]}
    if bot == "diana":
        roles["workers"] = processes.started[-2]
    found = {role: cpu_seconds(process) for role, process in roles.items()}
    times = os.times()  # this process: the injecting client
    found["client"] = times.user + times.system
    if store is not None:  # one entry a server process: one opened later counts from zero
        found.update({f"server:{pid}": s for pid, s in store.server_cpu().items()})
    return {role: seconds for role, seconds in found.items() if seconds is not None}


async def cpu_once_polling(
    client: Client, processes: Processes, since: float, bot: str, store: Store | None
) -> dict[str, float]:
    """The CPU figures once the restarted bot asks for updates (its start-up left out)."""
    for _ in range(1200):
        polls = await client.calls("getUpdates")
        if any(c["at"] >= since for c in polls[-5:]):
            break
        await asyncio.sleep(0.05)
    return cpu_of(processes, bot, store)


def latencies(
    injected: list[tuple[str, Any, float]], calls: list[dict[str, Any]]
) -> tuple[list[float], float]:
    """Per update, injection to answer (seconds); and the time of the last answer."""
    answers: dict[Any, float] = {}
    replies: dict[Any, deque[float]] = defaultdict(deque)
    last = 0.0
    for call in calls:
        if call["method"] == "answerCallbackQuery":
            answers.setdefault(call["params"]["callback_query_id"], call["at"])
        elif call["method"] == "sendMessage":
            replies[call["params"]["chat_id"]].append(call["at"])
        else:
            continue
        last = max(last, call["at"])
    found: list[float] = []
    for method, key, at in injected:
        if method == "answerCallbackQuery":
            if key in answers:
                found.append(answers[key] - at)
        else:
            queue = replies[key]
            while queue and queue[0] < at:
                queue.popleft()
            if queue:
                found.append(queue.popleft() - at)
    return found, last


# ----- one run -------------------------------------------------------------------------------


async def one_run(
    bot: str, store_kind: str, workload: str, mode: str, args: argparse.Namespace, rate: float
) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-bot-"))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    processes = Processes(directory)
    store = Store(store_kind, directory) if bot == "diana" else None
    planned = plan(workload, args.updates, args.users)
    cpu_at_start: dict[str, float] = {}
    cpu_at_end: dict[str, float] = {}
    try:
        processes.start(
            "api",
            [
                PYTHON,
                "-m",
                "dianabot.adapters.telegram.local_api",
                "--token",
                TOKEN,
                "--port",
                str(port),
                "--lenient-chats",
            ],
            base_env(),
        )
        async with aiohttp.ClientSession() as session:
            client = Client(session, api_url)
            await client.wait_up()

            def start_bot() -> None:
                if bot == "bare":
                    processes.start("bot", [PYTHON, __file__, "--serve-bare", api_url], base_env())
                    return
                assert store is not None
                env = base_env(
                    DIANABOT_DATABASE_URL=store.url,
                    DIANABOT_BOT_TOKEN=TOKEN,
                    DIANABOT_TELEGRAM_API_SERVER=api_url,
                    DIANABOT_CHANNEL_ID=str(CHANNEL),
                    DIANABOT_WORKERS_PORT="0",
                    **store.env,
                )
                processes.start("workers", [DIANABOT, "workers"], env)
                command = [PYTHON, DIANABOT, "run", "--no-workers"]
                stamp = f"{store_kind}-{workload}-{mode}-{time.time():.0f}"
                if args.profile:
                    command[1:1] = ["-m", "cProfile", "-o", f"{args.profile}/bot-{stamp}.prof"]
                processes.start("bot", command, env)

            start_bot()
            posts = await make_posts(client)
            before = len(await client.calls())
            injected: list[tuple[str, Any, float]] = []
            if mode == "saturation":
                # Stop taking updates while they are queued: the bot is restarted after.
                processes.started[-1].send_signal(signal.SIGTERM)
                processes.started[-1].wait(30)
                processes.started.pop()
                if bot == "diana":
                    processes.started[-1].send_signal(signal.SIGTERM)
                    processes.started[-1].wait(30)
                    processes.started.pop()
                for item in planned:
                    injected.append(await inject_planned(client, item, posts))
                restarted = time.time()
                start_bot()
                cpu_at_start = await cpu_once_polling(client, processes, restarted, bot, store)
                if args.py_spy and bot == "diana":
                    sample(args, processes, f"{store_kind}-{workload}-{time.time():.0f}")
            else:
                t0 = time.monotonic()
                for index, item in enumerate(planned):
                    delay = t0 + index / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    injected.append(await inject_planned(client, item, posts))
            expected = len(injected)
            deadline = time.monotonic() + args.timeout
            calls: list[dict[str, Any]] = []
            while True:  # only the calls since the last look: the whole list costs both sides
                calls.extend(await client.calls(since=before + len(calls)))
                found, last = latencies(injected, calls)
                if len(found) >= expected or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            cpu_at_end = cpu_of(processes, bot, store)
            if mode == "saturation":
                polls = [
                    c["at"] for c in calls if c["method"] == "getUpdates" and c["at"] >= restarted
                ]
                first_poll = min(polls, default=0.0)
    finally:
        processes.stop()
        if store is not None:
            store.drop()
    result: dict[str, Any] = {
        "bot": bot,
        "store": store_kind if bot == "diana" else "-",
        "workload": workload,
        "mode": mode,
        "updates": expected,
        "answered": len(found),
        "throttled": sum("Despacio" in str(c["params"].get("text", "")) for c in calls),
    }
    if mode == "saturation":
        for role, seconds in cpu_at_end.items():
            if role in cpu_at_start and found and not role.startswith("server:"):
                used = seconds - cpu_at_start[role]
                result[f"{role}_cpu_us"] = round(1e6 * used / len(found))
        servers = [k for k in cpu_at_end if k.startswith("server:")]
        if servers and found:  # the run's PostgreSQL server processes (a closed one is lost)
            used = sum(cpu_at_end[k] - cpu_at_start.get(k, 0.0) for k in servers)
            result["server_cpu_us"] = round(1e6 * used / len(found))
        span = max(1e-9, last - first_poll)
        result["seconds"] = round(span, 2)
        result["updates_per_s"] = round(len(found) / span, 1)
    else:
        result["offered_per_s"] = round(rate, 1)
    if found:
        ordered = sorted(found)
        result["p50_ms"] = round(1000 * statistics.median(ordered), 1)
        result["p99_ms"] = round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)
    return result


def table(rows: list[dict[str, Any]]) -> str:
    columns = [
        "bot",
        "store",
        "workload",
        "mode",
        "updates",
        "answered",
        "updates_per_s",
        "offered_per_s",
        "p50_ms",
        "p99_ms",
        "vs_ceiling",
        "bot_cpu_us",
        "workers_cpu_us",
        "server_cpu_us",
        "api_cpu_us",
        "client_cpu_us",
    ]
    lines = [" | ".join(columns), " | ".join("---" for _ in columns)]
    for row in rows:
        lines.append(" | ".join(str(row.get(c, "")) for c in columns))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--workloads", default="storm,mixed")
    parser.add_argument(
        "--rate", type=float, help="offered rate for latency (default: half the ceiling)"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--save", metavar="FILE")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the Diana bot into DIR")
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="sample the Diana bot and workers (all threads) with py-spy into DIR",
    )
    parser.add_argument("--modes", default="saturation,latency")
    parser.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the bare dispatcher (then give --rate for latency runs)",
    )
    parser.add_argument("--serve-bare", metavar="API_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if args.users * POSTS < args.updates:
        parser.error(f"--users x {POSTS} posts must cover --updates (each press awards)")
    rows: list[dict[str, Any]] = []
    for workload in args.workloads.split(","):
        ceiling: dict[str, Any] = {}
        if not args.no_ceiling:
            ceiling = asyncio.run(one_run("bare", "-", workload, "saturation", args, 0))
            rows.append(ceiling)
            print(table(rows[-1:]), flush=True)
        rate = args.rate or ceiling.get("updates_per_s", 200.0) / 2
        for store in args.stores.split(","):
            for mode in args.modes.split(","):
                row = asyncio.run(one_run("diana", store, workload, mode, args, rate))
                if mode == "saturation" and ceiling:
                    row["vs_ceiling"] = round(row["updates_per_s"] / ceiling["updates_per_s"], 2)
                rows.append(row)
                print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    if args.save:
        Path(args.save).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
