"""Running the bot by long polling (`dianabot run`): check the token, wire the dispatcher to the
services, report to the coordinator's health, poll with `polling.UpdatePoller` (no update lost
on a stop or while the store is down), and stop on SIGINT/SIGTERM: the batch in hand is
finished and confirmed; the caller then stops the workers and closes the store."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.utils.token import TokenValidationError, validate_token
from dianabot.adapters.telegram.bot import build_dispatcher, make_bot
from dianabot.adapters.telegram.context import BotMonitor, BotServices
from dianabot.adapters.telegram.polling import UpdatePoller
from dianabot.adapters.telegram.webhook import WebhookServer

log = logging.getLogger(__name__)


class InvalidToken(ValueError):
    """The bot token is malformed, or Telegram (or the configured Bot API server) refused it."""


def check_token(token: str | None) -> str:
    """The token if it is shaped like one (`<bot id>:<secret>`), else `InvalidToken`."""
    if not token:
        raise InvalidToken("DIANABOT_BOT_TOKEN is not set")
    try:
        validate_token(token)
    except TokenValidationError as error:
        raise InvalidToken(f"DIANABOT_BOT_TOKEN is not a bot token ({error})") from None
    return token


async def run_polling(
    services: BotServices,
    token: str,
    api_server: str | None = None,
    *,
    handle_signals: bool = True,
    polling_timeout: int = 10,
    started: asyncio.Future[UpdatePoller] | None = None,
) -> None:
    """Long polling until SIGINT/SIGTERM (or the poller's `stop()`; `started` is given the
    poller once it runs)."""
    bot = make_bot(check_token(token), api_server)
    monitor = services.monitor or BotMonitor(services.clock)
    services.monitor = monitor
    loop = asyncio.get_running_loop()
    try:
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError as error:
            raise InvalidToken(f"the Bot API server refused the token: {error.message}") from None
        log.info("bot @%s (%s) polling %s", me.username, me.id, api_server or "api.telegram.org")
        if (await bot.get_webhook_info()).url:  # polling and a webhook exclude each other
            log.warning("removing the webhook set before (pending updates are kept)")
            await bot.delete_webhook(drop_pending_updates=False)
        dispatcher = build_dispatcher(services)
        poller = UpdatePoller(
            dispatcher,
            bot,
            store_answers=services.app.store_answers,
            timeout=polling_timeout,
            monitor=monitor,
        )
        services.coordinator.attach_telegram(monitor)
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, _stopper(poller, sig))
        if started is not None:
            started.set_result(poller)
        await poller.run()
    finally:
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        monitor.running = False
        services.coordinator.attach_telegram(None)
        await bot.session.close()


def _stopper(poller: UpdatePoller, sig: signal.Signals) -> Callable[[], None]:
    def stop() -> None:
        log.warning("%s: finishing the updates in hand, then stopping", sig.name)
        poller.stop()

    return stop


async def run_webhook(
    services: BotServices,
    token: str,
    api_server: str | None,
    *,
    url: str,
    secret: str,
    host: str,
    port: int,
    handle_signals: bool = True,
    started: asyncio.Future[WebhookServer] | None = None,
) -> None:
    """Serve the webhook until SIGINT/SIGTERM (or the server's `stop()`)."""
    bot = make_bot(check_token(token), api_server)
    monitor = services.monitor or BotMonitor(services.clock)
    services.monitor = monitor
    remove_handlers: Callable[[], None] | None = None
    try:
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError as error:
            raise InvalidToken(f"the Bot API server refused the token: {error.message}") from None
        dispatcher = build_dispatcher(services)
        server = WebhookServer(
            dispatcher,
            bot,
            url=url,
            secret=secret,
            store_is_down=lambda: services.app.store_is_down,
            monitor=monitor,
        )
        services.coordinator.attach_telegram(monitor)
        if handle_signals:
            remove_handlers = server.handle_signals()
        await server.start(host, port)
        log.info("bot @%s (%s) on webhook %s", me.username, me.id, url)
        if started is not None:
            started.set_result(server)
        await server.wait_stopped()
    finally:
        if remove_handlers is not None:
            remove_handlers()
        monitor.running = False
        services.coordinator.attach_telegram(None)
        await bot.session.close()
