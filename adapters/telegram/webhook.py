"""Webhook mode (`dianabot run --webhook URL`): Telegram POSTs each update to the bot, so several
bot processes behind a reverse proxy can share one PostgreSQL.

`WebhookServer` is an aiohttp application answering `POST <the URL's path>`:

- a request without the secret (`X-Telegram-Bot-Api-Secret-Token`, compared in constant time)
  is refused (403) and nothing is handled;
- a body that is not an update is answered 400 (Telegram does not send one again; nothing to
  record);
- while the store is known to be down, 503 at once: Telegram keeps the update and sends it
  again later (the process takes no work it could not record);
- otherwise the update is handled through `polling.InTurn` (one sender's updates in order
  within this process; across processes the bus's optimistic concurrency keeps each user's
  history consistent) and answered 200 once it is settled, or 503 when it could not be recorded
  (its sender was answered politely; Telegram delivers it again, and it is recorded once, by
  update id).

On SIGINT/SIGTERM the listener closes (the proxy sends new updates to the other processes, or
Telegram retries them), the updates in hand are finished, and the process exits. Every process
calls `setWebhook` with the same URL and secret on start (idempotent) and leaves the webhook in
place on stop: the others are still serving.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp import web
from dianabot.adapters.telegram.context import BotMonitor
from dianabot.adapters.telegram.polling import InTurn
from pydantic import ValidationError

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookServer:
    """See the module docstring."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        url: str,
        secret: str,
        store_is_down: Callable[[], bool] | None = None,
        monitor: BotMonitor | None = None,
        concurrency: int = 64,
        stop_timeout: float = 30.0,
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret token")
        self.dispatcher = dispatcher
        self.bot = bot
        self.url = url
        self.path = urlsplit(url).path or "/"
        self.secret = secret
        self.store_is_down = store_is_down or (lambda: False)
        self.monitor = monitor
        self.turns = InTurn(dispatcher, bot, concurrency=concurrency)
        self.stats = self.turns.stats
        self.stop_timeout = stop_timeout
        self.refused = 0
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.path, self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            self.refused += 1
            log.warning("webhook request without the secret token from %s", request.remote)
            return web.Response(status=403)
        if self._stopping.is_set():
            return web.Response(status=503, text="stopping")
        if self.store_is_down():
            return web.Response(status=503, text="store unavailable")
        try:
            update = Update.model_validate_json(await request.read(), context={"bot": self.bot})
        except (ValidationError, ValueError) as error:
            log.warning("webhook body is not an update: %s", str(error).splitlines()[0])
            return web.Response(status=400)
        if self.monitor is not None:
            self.monitor.connected = True
        receipt = self.turns.start(update)
        await receipt.settled.wait()
        if receipt.unrecorded:
            return web.Response(status=503, text="not recorded; send it again")
        return web.Response(text="ok")

    async def start(self, host: str, port: int) -> None:
        """Listen, then run the startup hooks (the command menu) and set the webhook."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=self.stop_timeout)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        await self.dispatcher.emit_startup(
            bot=self.bot, dispatcher=self.dispatcher, bots=[self.bot]
        )
        await self.bot.set_webhook(
            self.url,
            secret_token=self.secret,
            allowed_updates=self.dispatcher.resolve_used_update_types(),
        )
        log.info("webhook %s served on %s:%s", self.url, host, self.port)

    def stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        """Until `stop()`; then finish the updates in hand and close the listener."""
        await self._stopping.wait()
        await self.turns.drain(self.stop_timeout)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.dispatcher.emit_shutdown(
            bot=self.bot, dispatcher=self.dispatcher, bots=[self.bot]
        )
        log.info("webhook server stopped")
