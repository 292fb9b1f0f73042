"""Webhook mode (issue 14, item 5): the local Bot API POSTs updates to the bot; the secret token
is checked; an update that could not be recorded is answered 503 and delivered again; and two
`dianabot run --webhook` processes behind a round-robin proxy, sharing one PostgreSQL, lose and
double nothing, with one user's updates split between them."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.telegram.bot import build_dispatcher, make_bot
from dianabot.adapters.telegram.context import BotServices
from dianabot.adapters.telegram.local_api import LocalBotAPI
from dianabot.adapters.telegram.webhook import SECRET_HEADER, WebhookServer
from eventsourcing.persistence import OperationalError

from tests.conftest import make_settings
from tests.faults import _free_port
from tests.policies import logged
from tests.telegram_live import ANA, CHANNEL, LUIS, TOKEN, BotRun, until

SECRET = "s3cret-Token_for-tests"


def test_a_webhook_takes_updates_checks_the_secret_and_has_unrecorded_ones_sent_again(
    wired: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = wired.app._event_writer
    original = writer.record
    down = {"now": False}

    def record(*args: Any, **kwargs: Any) -> Any:
        if down["now"]:
            raise OperationalError("could not connect to server")
        return original(*args, **kwargs)

    monkeypatch.setattr(writer, "record", record)

    async def scenario() -> None:
        assert wired.coordinator is not None
        services = BotServices(
            coordinator=wired.coordinator,
            app=wired.app,
            projections=wired.projections,
            settings=wired.settings,
            clock=wired.clock,
        )
        async with LocalBotAPI(TOKEN) as api:
            api.add_channel(CHANNEL)
            bot = make_bot(TOKEN, api.url)
            port = _free_port()
            url = f"http://127.0.0.1:{port}/telegram/hook"
            server = WebhookServer(build_dispatcher(services), bot, url=url, secret=SECRET)
            await server.start("127.0.0.1", port)
            try:
                assert api.webhook_url == url
                api.inject_message(ANA, "/checkin")
                await api.wait_for_calls_async("sendMessage", 1, timeout=10)
                assert "+10 besitos" in api.sent_texts(ANA)[-1]
                # Without the secret, or with another one: refused, nothing handled.
                async with aiohttp.ClientSession() as client:
                    update = {
                        "update_id": 999,
                        "message": {
                            "message_id": 1,
                            "date": 0,
                            "chat": {"id": LUIS, "type": "private"},
                            "from": {"id": LUIS, "is_bot": False, "first_name": "L"},
                            "text": "/checkin",
                        },
                    }
                    for headers in ({}, {SECRET_HEADER: "wrong"}):
                        async with client.post(url, json=update, headers=headers) as answer:
                            assert answer.status == 403
                    async with client.post(
                        url, data=b"{not json", headers={SECRET_HEADER: SECRET}
                    ) as answer:
                        assert answer.status == 400
                assert server.refused == 2 and wired.app.get_player(LUIS) is None
                # The store fails: the user is told, the webhook answers 503, the Bot API
                # sends the update again, and once the store is back it is recorded once.
                down["now"] = True
                api.inject_message(LUIS, "/checkin")
                await until(lambda: any(d["status"] == 503 for d in api.webhook_deliveries), 10)
                assert "no puedo apuntarlo" in api.sent_texts(LUIS)[-1]
                down["now"] = False
                await until(lambda: any("+10" in t for t in api.sent_texts(LUIS)), 20)
                await until(lambda: api.pending_updates == [], 10)
            finally:
                server.stop()
                await server.wait_stopped()
                await bot.session.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert wired.app.get_player(LUIS).balance == 10  # type: ignore[union-attr]
    assert len(logged(wired, "CheckedIn")) == 2


# ----- two processes behind a proxy ----------------------------------------------------------


class RoundRobinProxy:
    """A reverse proxy that sends each request to the next backend in turn; it counts, per
    user, which backend got their updates."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))
        self.port = _free_port()
        self.by_user: dict[int, Counter[int]] = {}
        self.statuses: Counter[int] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        index = next(self.turn)
        update = json.loads(body)
        for kind in ("message", "callback_query"):
            sender = (update.get(kind) or {}).get("from", {}).get("id")
            if sender is not None:
                self.by_user.setdefault(sender, Counter())[index] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-telegram")}
        try:
            async with self.session.post(
                self.backends[index] + request.path, data=body, headers=headers
            ) as answer:
                text = await answer.text()
                self.statuses[answer.status] += 1
                return web.Response(status=answer.status, text=text)
        except aiohttp.ClientError:
            self.statuses[502] += 1
            return web.Response(status=502)

    def __enter__(self) -> RoundRobinProxy:
        async def start() -> None:
            self.session = aiohttp.ClientSession()
            app = web.Application()
            app.router.add_route("POST", "/{tail:.*}", self._forward)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self._thread.start()
        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.session.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class BotProcess(BotRun):
    """`dianabot run --webhook HOOK --port PORT` (with the workers: one of the two leads)."""

    def __init__(
        self, url: str, api: str, hook: str, directory: Path, name: str, port: int
    ) -> None:
        self.port = port
        super().__init__(
            url,
            api,
            directory,
            name,
            "--webhook",
            hook,
            "--port",
            str(port),
            channel_id=str(CHANNEL),
            webhook_secret=SECRET,
            workers_port="0",
            workers_standby_retry="0.3",
        )

    def wait_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "served on" not in self.output() and "webhook http" not in self.output():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)
        while True:  # listening
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.output()
                time.sleep(0.1)


def test_two_webhook_processes_behind_a_proxy_share_one_postgres_and_lose_or_double_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    users = (3001, 3002, 3003)
    with LocalBotAPI(TOKEN, strict_chats=False).running_in_thread() as api:
        api.add_channel(CHANNEL)
        first_port, second_port = _free_port(), _free_port()
        backends = [f"http://127.0.0.1:{first_port}", f"http://127.0.0.1:{second_port}"]
        with RoundRobinProxy(backends) as proxy:
            hook = f"http://127.0.0.1:{proxy.port}/telegram/hook"
            bots = [
                BotProcess(postgres_url, api.url, hook, tmp_path, name, port)
                for name, port in (("one", first_port), ("two", second_port))
            ]
            try:
                for bot in bots:
                    bot.wait_serving()
                posts = []
                for index in range(10):
                    post = api.inject_channel_post(CHANNEL, f"Post {index}")["channel_post"]
                    posts.append(int(post["message_id"]))
                edits = api.wait_for_calls("editMessageReplyMarkup", 10, timeout=30)
                data = edits[0].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
                presses = []
                for message_id in posts:
                    for user in users:
                        presses.append(api.inject_callback_query(user, (CHANNEL, message_id), data))
                for user in users:
                    api.inject_message(user, "/checkin")
                api.wait_for_calls("answerCallbackQuery", len(presses), timeout=60)
                api.wait_for_calls("sendMessage", len(users), timeout=60)
                # A re-delivery of one press (as after a lost answer): recorded once.
                api.inject_update(presses[0])
                deadline = time.monotonic() + 30
                while api.pending_updates:
                    assert time.monotonic() < deadline, api.pending_updates
                    time.sleep(0.1)
                leaders = [bot for bot in bots if "holding the workers" in bot.output()]
                followers = [bot for bot in bots if "VIP follower: running" in bot.output()]
            finally:
                codes = [bot.stop() for bot in bots]
            outputs = "\n".join(bot.output() for bot in bots)
            assert codes == [0, 0], outputs
            for user in users:  # each user's updates went to both processes
                assert len(proxy.by_user[user]) == 2, proxy.by_user
            assert set(proxy.statuses) <= {200, 503}, proxy.statuses
    assert len(leaders) == 1, outputs  # while both served, one of them ran the workers
    assert len(followers) == 1, outputs  # and one of them (its own lock) the VIP follower
    assert sum("VIP follower: standing by" in bot.output() for bot in bots) == 1, outputs
    with bootstrap(make_settings(postgres_url)) as services:
        awards = Counter(
            (event.originator_id, event.source) for event in logged(services, "PointsAwarded")
        )
        for user in users:
            player = services.app.get_player(user)
            assert player is not None
            assert awards[(player.id, "reaction")] == len(posts)
            assert awards[(player.id, "checkin")] == 1
            total = sum(
                e.amount for e in logged(services, "PointsAwarded") if e.originator_id == player.id
            )
            assert player.balance == total
        assert len(logged(services, "CheckedIn")) == len(users)
