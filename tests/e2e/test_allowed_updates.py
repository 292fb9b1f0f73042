"""What the bot asks Telegram for (issue 14): long polling (`getUpdates`) and the webhook
(`setWebhook`) both list exactly the update types the feature routers handle, so `chat_member`
(which Telegram sends only when listed) reaches the VIP channel's handler in both modes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.telegram.bot import build_dispatcher, make_bot, routers
from dianabot.adapters.telegram.local_api import LocalBotAPI
from dianabot.adapters.telegram.webhook import WebhookServer
from dianabot.application.clock import ManualClock

from tests.conftest import make_settings
from tests.faults import _free_port
from tests.telegram_live import LUIS, TOKEN, VIP_CHANNEL, Live, bot_services_of, run

SECRET = "s3cret-Token_for-tests"


def handled() -> list[str]:
    """The update types some feature router has a handler for."""
    return sorted(
        {
            name
            for router in routers()
            for name, observer in router.observers.items()
            if name not in ("update", "error") and observer.handlers
        }
    )


@pytest.fixture
def vip_wired(tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    settings = make_settings(f"sqlite:///{tmp_path / 'events.sqlite3'}", vip_channel_id=VIP_CHANNEL)
    with bootstrap(settings, clock=clock) as services:
        yield services


def banned_on_joining(api: LocalBotAPI) -> None:
    """Someone who is not VIP joins the VIP channel: the bot must see it and take them out."""
    api.inject_chat_member(VIP_CHANNEL, LUIS, "left", "member")


def test_the_handled_types_include_the_vip_channels_members() -> None:
    assert {"message", "callback_query", "chat_member", "pre_checkout_query"} <= set(handled())


def test_polling_asks_for_exactly_the_handled_types(vip_wired: Services) -> None:
    async def scenario(live: Live) -> None:
        polls = await live.api.wait_for_calls_async("getUpdates", 1, timeout=10)
        asked = polls[0].params["allowed_updates"]
        assert sorted(asked) == handled()
        banned_on_joining(live.api)
        await live.api.wait_for_calls_async("banChatMember", 1, timeout=10)
        assert live.api.dropped_updates == []

    run(vip_wired, scenario)


def test_the_webhook_asks_for_exactly_the_handled_types(vip_wired: Services) -> None:
    async def scenario() -> None:
        services = bot_services_of(vip_wired, follow=False)
        async with LocalBotAPI(TOKEN) as api:
            api.add_channel(VIP_CHANNEL, title="El Diván")
            bot = make_bot(TOKEN, api.url)
            port = _free_port()
            url = f"http://127.0.0.1:{port}/telegram/hook"
            server = WebhookServer(build_dispatcher(services), bot, url=url, secret=SECRET)
            await server.start("127.0.0.1", port)
            try:
                (call,) = api.calls("setWebhook")
                asked: Any = call.params["allowed_updates"]
                assert sorted(asked) == handled()
                banned_on_joining(api)
                await api.wait_for_calls_async("banChatMember", 1, timeout=10)
                assert api.dropped_updates == []
            finally:
                server.stop()
                await server.wait_stopped()
                await bot.session.close()

    asyncio.run(asyncio.wait_for(scenario(), 50))
