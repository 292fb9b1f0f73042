"""The bot's Telegram calls from the console, outside the bot process.

`dianabot policies retry` runs the vip-channel policy on its parked events; the policy's port
is blocking (`followers.TelegramVipChannel`, made for the follower's worker thread), so here it
gets a `Bot` on an event loop of a thread of its own, through the configured token and Bot API
server, closed on the way out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dianabot.adapters.settings import Settings
from dianabot.adapters.telegram.bot import make_bot
from dianabot.adapters.telegram.followers import TelegramVipChannel
from dianabot.adapters.telegram.texts import Texts

CLOSE_TIMEOUT = 10.0


@contextmanager
def vip_channel_port(settings: Settings, token: str) -> Iterator[TelegramVipChannel]:
    """The follower's port for a blocking caller (see the module)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="telegram-console", daemon=True)
    thread.start()
    bot = make_bot(token, settings.telegram_api_server)
    try:
        yield TelegramVipChannel(bot, Texts.load(), settings.vip_channel_id, loop)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(bot.session.close(), loop).result(CLOSE_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CLOSE_TIMEOUT)
            loop.close()
