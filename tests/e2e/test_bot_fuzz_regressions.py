"""Regressions of the bugs the bot fuzz (`tests/property/test_bot_fuzz.py`) found: input that
made the bot log a traceback, or stop taking updates, instead of refusing it."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Chat as TgChat
from aiogram.types import ChatInviteLink, ChatMemberMember, ChatMemberUpdated, User
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.telegram.local_api import LocalBotAPI
from dianabot.adapters.telegram.polling import UpdatePoller
from dianabot.adapters.telegram.routers.vip import intended_for, payload_valid
from dianabot.application.clock import ManualClock

from tests.conftest import ADMIN_ID
from tests.kit import strategies as kst
from tests.kit.bot_driver import TOKEN, BotDriver, ErrorLog, run, wired_bot_services
from tests.telegram_fake import FakeSession
from tests.telegram_live import ANA, Live, until
from tests.telegram_live import run as run_live

HUGE = "9" * 5000


@pytest.fixture
def driven() -> Iterator[tuple[Services, BotDriver, asyncio.AbstractEventLoop]]:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'events.sqlite3'}"
    services = wired_bot_services(url, ManualClock())
    loop = asyncio.new_event_loop()
    try:
        yield services, BotDriver(services), loop
    finally:
        loop.close()
        services.close()


@pytest.mark.parametrize(
    "args", [f"{HUGE} 10 kit", f"1 {HUGE} kit", "٣ 10 kit", "1 ١٠ kit", "-1 10 kit"]
)
def test_a_grant_with_a_huge_or_foreign_number_gets_the_usage_not_a_traceback(
    driven: tuple[Services, BotDriver, asyncio.AbstractEventLoop], args: str
) -> None:
    """It was `int()` of a 5000-digit string: ValueError, logged with its traceback."""
    services, driver, loop = driven
    raw = {"update_id": 1, "message": kst.message_in(ADMIN_ID, ADMIN_ID, f"/grant {args}")}
    with ErrorLog() as errors:
        delivery = run(loop, driver, raw)
    assert errors.records == []
    texts = [str(p.get("text")) for name, p in delivery.calls if name == "sendMessage"]
    assert len(texts) == 1 and "/grant" in texts[0], texts
    assert services.app.get_player(1) is None


def test_payload_and_link_numbers_out_of_bounds_are_not_ours() -> None:
    assert not payload_valid(f"vip-stars:{ANA}:{HUGE}", ANA, "XTR", 250)
    assert not payload_valid(f"vip-stars:{ANA}:٢٥٠", ANA, "XTR", 250)
    assert payload_valid(f"vip-stars:{ANA}:250", ANA, "XTR", 250)
    chat = TgChat(id=kst.VIP_CHANNEL, type="channel")
    user = User(id=ANA, is_bot=False, first_name="Ana")

    def joined(name: str) -> ChatMemberUpdated:
        link = ChatInviteLink(
            invite_link="https://t.me/+x",
            creator=user,
            creates_join_request=False,
            is_primary=False,
            is_revoked=False,
            name=name,
        )
        member = ChatMemberMember(user=user)
        return ChatMemberUpdated(
            chat=chat,
            from_user=user,
            date=kst.DATE,
            old_chat_member=member,
            new_chat_member=member,
            invite_link=link,
        )

    assert intended_for(joined(f"vip:{HUGE}")) is None
    assert intended_for(joined("vip:١٢")) is None
    assert intended_for(joined(f"vip:{ANA}")) == ANA


def test_an_update_that_does_not_parse_does_not_stop_the_polling_loop(
    wired: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """aiogram parses a `getUpdates` answer whole: one update it cannot read failed the whole
    batch, logged at ERROR, again and again, and no one was answered any more. Now it is
    skipped (a warning) and confirmed; the rest of its batch is handled."""

    async def scenario(live: Live) -> None:
        bad = live.api.inject_update({"message": {"text": "no chat, no date"}})
        assert "/checkin" in await live.ask(ANA, "/help")
        assert live.poller.stats.unparsed == 1
        await live.settle()
        assert bad not in live.api.pending_updates  # confirmed: not delivered again
        worse = live.api.inject_update({"callback_query": 7})  # a batch of only unreadable ones
        await until(lambda: live.poller.stats.unparsed == 2, 10)
        assert "/checkin" in await live.ask(ANA, "/help")
        assert worse not in live.api.pending_updates

    with caplog.at_level(logging.WARNING):
        run_live(wired, scenario)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert sum("does not parse" in r.getMessage() for r in caplog.records) == 2


def test_a_getupdates_answer_is_parsed_update_by_update_and_the_offset_moves_past_the_bad() -> None:
    poller = UpdatePoller(Dispatcher(), Bot(TOKEN, session=FakeSession()))
    good = {"update_id": 5, "message": kst.message_in(1, 1, "/help")}
    parsed = poller._parse([{"update_id": 4, "message": 1}, good, {"update_id": 7, "message": {}}])
    assert [u.update_id for u in parsed] == [5]
    assert (poller.stats.unparsed, poller._batch_end, poller.offset) == (2, 7, None)
    assert poller._parse([{"update_id": 9, "message": 2}]) == []
    assert poller.offset == 10  # nothing to handle: past it at once
    assert poller._parse(["junk", {"update_id": "x"}]) == []
    assert (poller._batch_end, poller.offset) == (None, 10)  # no id to move by


def test_the_local_bot_api_refuses_an_update_it_could_not_send_and_goes_on() -> None:
    """An integer beyond 64 bits was queued, and every later `getUpdates` answered 500 (orjson
    cannot write it): the polling bot never heard of anything again."""
    api = LocalBotAPI(TOKEN)
    huge = {"message": kst.message_in(2**64, 2**64, "/start")}
    with pytest.raises(ValueError, match="Bot API could send"):
        api.inject_update(huge)
    assert api.pending_updates == []
    assert api.inject_message(ANA, "/help")["update_id"] in [
        u["update_id"] for u in api.pending_updates
    ]
