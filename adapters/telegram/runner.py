"""Running the bot (`dianabot run`): check the token, wire the dispatcher to the services,
report to the coordinator's health, take updates by long polling (`polling.UpdatePoller`) or by
webhook (`webhook.WebhookServer`), both losing no update on a stop or while the store is down,
and stop on SIGINT/SIGTERM once the updates in hand are finished; the caller then stops the
workers and closes the store."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from aiogram import Bot
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.types import User
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


@asynccontextmanager
async def _connected(
    services: BotServices, token: str, api_server: str | None
) -> AsyncIterator[tuple[Bot, User, BotMonitor]]:
    """The bot, checked against the Bot API server (`InvalidToken` if it refuses the token),
    reporting to the coordinator's health while in use; its session closed afterwards."""
    bot = make_bot(check_token(token), api_server)
    monitor = services.monitor or BotMonitor(services.clock)
    services.monitor = monitor
    try:
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError as error:
            raise InvalidToken(f"the Bot API server refused the token: {error.message}") from None
        services.coordinator.attach_telegram(monitor)
        yield bot, me, monitor
    finally:
        monitor.running = False
        services.coordinator.attach_telegram(None)
        await bot.session.close()


@contextmanager
def _stopped_by_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call `stop` (which finishes the updates in hand) while inside."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def stopper(sig: signal.Signals) -> Callable[[], None]:
        def on_signal() -> None:
            log.warning("%s: finishing the updates in hand, then stopping", sig.name)
            stop()

        return on_signal

    for sig in signals:
        loop.add_signal_handler(sig, stopper(sig))
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def run_polling(
    services: BotServices, token: str, api_server: str | None = None, *, polling_timeout: int = 10
) -> None:
    """Long polling until SIGINT/SIGTERM."""
    async with _connected(services, token, api_server) as (bot, me, monitor):
        log.info("bot @%s (%s) polling %s", me.username, me.id, api_server or "api.telegram.org")
        if (await bot.get_webhook_info()).url:  # polling and a webhook exclude each other
            log.warning("removing the webhook set before (pending updates are kept)")
            await bot.delete_webhook(drop_pending_updates=False)
        poller = UpdatePoller(
            build_dispatcher(services),
            bot,
            store_answers=services.app.store_answers,
            timeout=polling_timeout,
            monitor=monitor,
        )
        with _stopped_by_signals(poller.stop):
            await poller.run()


async def run_webhook(
    services: BotServices,
    token: str,
    api_server: str | None,
    *,
    url: str,
    secret: str,
    host: str,
    port: int,
) -> None:
    """Serve the webhook until SIGINT/SIGTERM."""
    async with _connected(services, token, api_server) as (bot, me, monitor):
        server = WebhookServer(
            build_dispatcher(services),
            bot,
            url=url,
            secret=secret,
            store_is_down=lambda: services.app.store_is_down,
            monitor=monitor,
        )
        with _stopped_by_signals(server.stop):
            await server.start(host, port)
            log.info("bot @%s (%s) on webhook %s", me.username, me.id, url)
            await server.wait_stopped()
