"""Running the bot by long polling (`dianabot run`): check the token, wire the dispatcher to the
services, report to the coordinator's health, and stop on SIGINT/SIGTERM (aiogram's own signal
handling ends the polling loop; the caller then stops the workers and closes the store)."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.utils.token import TokenValidationError, validate_token
from dianabot.adapters.telegram.bot import build_dispatcher, make_bot
from dianabot.adapters.telegram.context import BotMonitor, BotServices

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
    services: BotServices, token: str, api_server: str | None = None, *, handle_signals: bool = True
) -> None:
    """Long polling until a signal (or `Dispatcher.stop_polling`)."""
    bot = make_bot(check_token(token), api_server)
    monitor = services.monitor or BotMonitor(services.clock)
    services.monitor = monitor
    try:
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError as error:
            raise InvalidToken(f"the Bot API server refused the token: {error.message}") from None
        log.info("bot @%s (%s) polling %s", me.username, me.id, api_server or "api.telegram.org")
        dispatcher = build_dispatcher(services)
        services.coordinator.attach_telegram(monitor)
        await dispatcher.start_polling(
            bot,
            handle_signals=handle_signals,
            close_bot_session=False,
            allowed_updates=dispatcher.resolve_used_update_types(),
        )
    finally:
        monitor.running = False
        services.coordinator.attach_telegram(None)
        await bot.session.close()
