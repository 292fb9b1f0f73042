"""The local Bot API server answers a real aiogram bot like Telegram does: reached through
aiogram's own `TelegramAPIServer` setting, with real long polling, offsets, recorded calls,
update builders and scripted faults."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    Update,
)
from dianabot.adapters.telegram.local_api import LocalBotAPI, TelegramUser

TOKEN = "424242:local-test-token"
ANA = TelegramUser(id=1001, first_name="Ana", username="ana")
LUIS = TelegramUser(id=1002, first_name="Luis")
CHANNEL = -1001234567890
GROUP = -1009876543210


def run(scenario: Callable[[LocalBotAPI], Awaitable[None]]) -> None:
    async def main() -> None:
        async with LocalBotAPI(TOKEN) as api:
            await scenario(api)

    asyncio.run(main())


@asynccontextmanager
async def bot_for(api: LocalBotAPI, token: str = TOKEN) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    bot = Bot(token, session=session)
    try:
        yield bot
    finally:
        await bot.session.close()


async def raw(api: LocalBotAPI, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api.url}/bot{TOKEN}/{method}", json=params) as resp,
    ):
        return resp.status, await resp.json()


def test_a_real_aiogram_bot_calls_get_me_and_send_message_through_the_api_server() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        async with bot_for(api) as bot:
            me = await bot.get_me()
            assert (me.id, me.is_bot, me.username) == (424242, True, "diana_local_bot")

            api.inject_message(ANA, "hola")  # Ana's message is message 1 of her chat
            api.inject_message(LUIS, "/start")
            keyboard = InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="❤️", callback_data="r:1")]]
            )
            first = await bot.send_message(ANA.id, "Hola, Ana", reply_markup=keyboard)
            second = await bot.send_message(ANA.id, "<b>Otra</b> vez", parse_mode="HTML")
            other = await bot.send_message(LUIS.id, "Hola, Luis")

        assert isinstance(first, Message)
        assert (first.message_id, second.message_id, other.message_id) == (2, 3, 2)
        assert first.chat.id == ANA.id and first.chat.type == "private"
        assert first.from_user is not None and first.from_user.id == 424242
        assert first.reply_markup is not None
        assert first.reply_markup.inline_keyboard[0][0].callback_data == "r:1"
        assert second.text == "Otra vez"  # Telegram answers with the markup parsed away
        sent = api.calls("sendMessage")
        assert [call.params["chat_id"] for call in sent] == [ANA.id, ANA.id, LUIS.id]
        assert sent[0].params["text"] == "Hola, Ana"
        assert sent[0].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "r:1"
        assert all(call.ok and call.at > 0 for call in sent)
        assert api.sent_texts(ANA.id) == ["Hola, Ana", "Otra vez"]
        assert [call.method for call in api.calls()] == ["getMe", *["sendMessage"] * 3]

    run(scenario)


def test_unknown_token_is_401_and_unknown_method_404_like_telegram() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        async with bot_for(api, token="999:wrong") as bot:
            with pytest.raises(TelegramUnauthorizedError):
                await bot.get_me()
        status, body = await raw(api, "sendDice", chat_id=ANA.id)
        assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{api.url}/bot999:wrong/getMe") as resp,
        ):
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        status, body = await raw(api, "sendMessage", chat_id=555, text="x")
        assert (status, body["description"]) == (400, "Bad Request: chat not found")
        assert api.calls("getMe") == []  # the wrong token never reached a method

    run(scenario)


def test_parameters_as_json_form_and_query_string_mean_the_same() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        api.inject_message(ANA, "hola")
        markup = {"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]}
        url = f"{api.url}/bot{TOKEN}/sendMessage"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                url, json={"chat_id": ANA.id, "text": "json", "reply_markup": markup}
            ) as resp:
                assert resp.status == 200
            form = {"chat_id": str(ANA.id), "text": "form", "reply_markup": json.dumps(markup)}
            async with http.post(url, data=form) as resp:
                assert resp.status == 200
            async with http.get(url, params={"chat_id": str(ANA.id), "text": "query"}) as resp:
                body = await resp.json()
        assert body["ok"] is True and body["result"]["text"] == "query"
        params = [call.params for call in api.calls("sendmessage")]
        assert [p["chat_id"] for p in params] == [ANA.id] * 3
        assert params[0]["reply_markup"] == params[1]["reply_markup"] == markup
        assert [m["message_id"] for m in api.messages(ANA.id)] == [1, 2, 3, 4]

    run(scenario)


def test_long_poll_waits_for_its_timeout_when_nothing_comes() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        started = time.monotonic()
        status, body = await raw(api, "getUpdates", timeout=0.5)
        waited = time.monotonic() - started
        assert (status, body) == (200, {"ok": True, "result": []})
        assert 0.45 <= waited < 1.5
        started = time.monotonic()
        await raw(api, "getUpdates", timeout=0)
        assert time.monotonic() - started < 0.3

    run(scenario)


def test_an_injected_update_wakes_a_waiting_long_poll_promptly() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        poll = asyncio.create_task(raw(api, "getUpdates", timeout=10))
        await asyncio.sleep(0.2)
        assert not poll.done()
        injected_at = time.monotonic()
        # injected from another thread, as a sync test beside the server would
        thread = threading.Thread(target=api.inject_message, args=(ANA, "hola"))
        thread.start()
        status, body = await asyncio.wait_for(poll, 2)
        thread.join()
        assert time.monotonic() - injected_at < 0.3
        assert status == 200
        [update] = body["result"]
        assert update["message"]["text"] == "hola"
        assert update["message"]["from"]["id"] == ANA.id

    run(scenario)


def test_offset_confirms_earlier_updates_and_limit_caps_a_batch() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        ids = [api.inject_message(ANA, f"m{n}")["update_id"] for n in range(3)]
        assert ids == sorted(ids) and len(set(ids)) == 3
        _, first = await raw(api, "getUpdates", limit=2)
        assert [u["update_id"] for u in first["result"]] == ids[:2]
        _, again = await raw(api, "getUpdates")  # nothing confirmed yet: all three again
        assert [u["update_id"] for u in again["result"]] == ids
        _, rest = await raw(api, "getUpdates", offset=ids[1] + 1)
        assert [u["update_id"] for u in rest["result"]] == ids[2:]
        assert [u["update_id"] for u in api.pending_updates] == ids[2:]
        _, none = await raw(api, "getUpdates", offset=ids[2] + 1, timeout=0)
        assert none["result"] == [] and api.pending_updates == []
        # a negative offset keeps only the last updates
        more = [api.inject_message(LUIS, f"n{n}")["update_id"] for n in range(3)]
        _, last = await raw(api, "getUpdates", offset=-1)
        assert [u["update_id"] for u in last["result"]] == more[-1:]

    run(scenario)


def test_allowed_updates_keeps_other_kinds_from_the_bot() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        await raw(api, "getUpdates", allowed_updates=["message"], timeout=0)
        api.inject_channel_post(CHANNEL, "post")
        kept = api.inject_message(ANA, "hola")
        _, body = await raw(api, "getUpdates")
        assert [u["update_id"] for u in body["result"]] == [kept["update_id"]]
        assert [list(u)[1] for u in api.dropped_updates] == ["channel_post"]

    run(scenario)


def test_a_second_poller_terminates_the_first_with_409() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        first = asyncio.create_task(raw(api, "getUpdates", timeout=5))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(raw(api, "getUpdates", timeout=0.2))
        status, body = await asyncio.wait_for(first, 2)
        assert status == 409 and "terminated by other getUpdates request" in body["description"]
        assert (await second)[0] == 200

    run(scenario)


def test_a_real_dispatcher_polls_injected_updates_once_and_offsets_hold() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        seen: list[int] = []
        router = Router()

        @router.message(Command("start"))
        async def start(message: Message) -> None:
            seen.append(message.message_id)
            await message.answer(f"hola {message.from_user.first_name}")  # type: ignore[union-attr]

        dp = Dispatcher()
        dp.include_router(router)
        async with bot_for(api) as bot:
            polling = asyncio.create_task(
                dp.start_polling(bot, polling_timeout=1, handle_signals=False)
            )
            api.inject_message(ANA, "/start")
            api.inject_message(LUIS, "/start")
            await api.wait_for_calls_async("sendMessage", 2, timeout=5)
            await asyncio.sleep(0.2)  # a further poll confirms both
            await dp.stop_polling()
            await polling
        assert sorted(api.sent_texts(ANA.id) + api.sent_texts(LUIS.id)) == ["hola Ana", "hola Luis"]
        assert len(seen) == 2
        assert api.pending_updates == []
        polls = api.calls("getUpdates")
        assert polls[0].params["timeout"] == 1 and "offset" not in polls[0].params
        assert "message" in polls[0].params["allowed_updates"]
        assert max(call.params.get("offset", 0) for call in polls) > 0
        # a restarted bot gets nothing twice
        async with bot_for(api) as bot:
            polling = asyncio.create_task(
                dp.start_polling(bot, polling_timeout=1, handle_signals=False)
            )
            await asyncio.sleep(0.3)
            await dp.stop_polling()
            await polling
        assert len(seen) == 2 and len(api.calls("sendMessage")) == 2

    run(scenario)


def test_a_restart_before_the_offset_is_confirmed_delivers_the_update_again() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        received: list[int] = []
        entered = asyncio.Event()
        router = Router()

        @router.message(F.text == "/slow")
        async def slow(message: Message) -> None:
            received.append(message.message_id)
            entered.set()
            await asyncio.sleep(30)  # the bot stops before it is done

        dp = Dispatcher()
        dp.include_router(router)
        update = api.inject_message(ANA, "/slow")
        async with bot_for(api) as bot:
            polling = asyncio.create_task(
                dp.start_polling(
                    bot, polling_timeout=1, handle_signals=False, handle_as_tasks=False
                )
            )
            await asyncio.wait_for(entered.wait(), 5)
            await dp.stop_polling()
            await polling
        assert [u["update_id"] for u in api.pending_updates] == [update["update_id"]]

        entered.clear()
        async with bot_for(api) as bot:
            polling = asyncio.create_task(
                dp.start_polling(
                    bot, polling_timeout=1, handle_signals=False, handle_as_tasks=False
                )
            )
            await asyncio.wait_for(entered.wait(), 5)
            await dp.stop_polling()
            await polling
        assert received == [1, 1]  # the same message, delivered again after the restart

    run(scenario)


def test_a_scripted_429_makes_aiogram_raise_retry_after_with_its_delay() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        api.inject_message(ANA, "hola")
        api.fail_with_retry_after("sendMessage", 7)
        async with bot_for(api) as bot:
            with pytest.raises(TelegramRetryAfter) as raised:
                await bot.send_message(ANA.id, "uno")
            assert raised.value.retry_after == 7
            sent = await bot.send_message(ANA.id, "dos")  # one answer only
        first, second = api.calls("sendMessage")
        assert (first.status, first.error_code, first.result) == (429, 429, None)
        assert first.description == "Too Many Requests: retry after 7"
        assert second.ok and second.result["message_id"] == sent.message_id
        assert api.sent_texts(ANA.id) == ["dos"]

    run(scenario)


def test_a_blocked_user_is_403_and_bad_requests_come_for_the_next_n_calls() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        api.inject_message(ANA, "hola")
        api.inject_message(LUIS, "hola")
        api.block(ANA.id)
        api.fail_with_bad_request("sendMessage", times=2, chat_id=LUIS.id)
        async with bot_for(api) as bot:
            with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
                await bot.send_message(ANA.id, "x")
            for _ in range(2):
                with pytest.raises(TelegramBadRequest):
                    await bot.send_message(LUIS.id, "y")
            await bot.send_message(LUIS.id, "z")
            api.unblock(ANA.id)
            await bot.send_message(ANA.id, "again")
        assert [c.status for c in api.calls("sendMessage")] == [403, 400, 400, 200, 200]

    run(scenario)


def test_callback_queries_edits_and_channel_posts_behave_like_telegram() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        api.inject_message(ANA, "/story")
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Seguir", callback_data="story:2")]]
        )
        async with bot_for(api) as bot:
            sent = await bot.send_message(ANA.id, "Capítulo 1", reply_markup=keyboard)
            update = api.inject_callback_query(ANA, sent.model_dump(), "story:2")
            post = api.inject_channel_post(CHANNEL, "Nuevo post")
            updates = await bot.get_updates()
            assert [u.update_id for u in updates][-2:] == [
                update["update_id"],
                post["update_id"],
            ]
            query = updates[-2].callback_query
            assert query is not None and query.data == "story:2"
            assert isinstance(query.message, Message) and query.message.text == "Capítulo 1"
            assert await bot.answer_callback_query(query.id, text="¡Vamos!") is True
            with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
                await bot.answer_callback_query(query.id)
            edited = await bot.edit_message_text(
                "Capítulo 2", chat_id=ANA.id, message_id=sent.message_id
            )
            assert isinstance(edited, Message) and edited.edit_date is not None
            with pytest.raises(TelegramBadRequest, match="message is not modified"):
                await bot.edit_message_text(
                    "Capítulo 2", chat_id=ANA.id, message_id=sent.message_id
                )
            with pytest.raises(TelegramBadRequest, match="message to edit not found"):
                await bot.edit_message_text("x", chat_id=ANA.id, message_id=99)
            with pytest.raises(TelegramBadRequest, match="message can't be edited"):
                await bot.edit_message_text("x", chat_id=ANA.id, message_id=1)
            channel_post = updates[-1].channel_post
            assert channel_post is not None and channel_post.chat.type == "channel"
            buttons = InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="🔥 0", callback_data="react")]]
            )
            await bot.edit_message_reply_markup(
                chat_id=CHANNEL, message_id=channel_post.message_id, reply_markup=buttons
            )
        assert api.message(ANA.id, sent.message_id)["text"] == "Capítulo 2"
        assert "reply_markup" not in api.message(ANA.id, sent.message_id)
        assert api.callback_answer(query.id) == {"callback_query_id": query.id, "text": "¡Vamos!"}
        markup = api.message(CHANNEL, channel_post.message_id)["reply_markup"]
        assert markup["inline_keyboard"][0][0]["callback_data"] == "react"

    run(scenario)


def test_every_update_builder_parses_as_the_aiogram_type_it_stands_for() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        async with bot_for(api) as bot:
            api.inject_message(ANA, "hola")
            poll = await bot.send_poll(
                ANA.id, "¿Qué prefieres?", ["Luz", "Sombra"], is_anonymous=False
            )
            assert poll.poll is not None and poll.poll.options[1].text == "Sombra"
            api.inject_command(ANA, "/start vip-abc123")
            api.inject_group_message(GROUP, LUIS, "buenas")
            api.inject_channel_post(CHANNEL, "post")
            api.inject_poll_answer(ANA, poll.poll.id, [1])
            api.inject_pre_checkout_query(ANA, "vip:30d", 250)
            api.inject_successful_payment(ANA, "vip:30d", 250, charge_id="stx-1")
            api.inject_update({"update_id": 1, "message": {"broken": True}})
            updates = await bot.get_updates(limit=7)
        by_kind: dict[str, Update] = {u.event_type: u for u in updates}
        assert len(updates) == 7 and len(by_kind) == 4
        start = updates[1].message
        assert start is not None and start.text == "/start vip-abc123"
        assert start.entities is not None and start.entities[0].type == "bot_command"
        assert start.entities[0].length == len("/start")
        group = updates[2].message
        assert group is not None and group.chat.type == "supergroup"
        assert group.from_user is not None and group.from_user.id == LUIS.id
        assert by_kind["channel_post"].channel_post.chat.id == CHANNEL  # type: ignore[union-attr]
        answer = by_kind["poll_answer"].poll_answer
        assert answer is not None and answer.option_ids == [1] and answer.poll_id == poll.poll.id
        checkout = by_kind["pre_checkout_query"].pre_checkout_query
        assert checkout is not None and (checkout.currency, checkout.total_amount) == ("XTR", 250)
        paid = updates[6].message
        assert paid is not None and paid.successful_payment is not None
        assert paid.successful_payment.telegram_payment_charge_id == "stx-1"
        assert paid.successful_payment.invoice_payload == "vip:30d"
        # a raw update keeps the id it was given (here one below the others: delivered anyway)
        assert api.pending_updates[-1] == {"update_id": 1, "message": {"broken": True}}

    run(scenario)


def test_payment_membership_command_and_webhook_methods() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        api.add_channel(CHANNEL, "Diana VIP")
        api.inject_successful_payment(ANA, "vip:30d", 250, charge_id="stx-9")
        query = api.inject_pre_checkout_query(ANA, "vip:30d", 250)["pre_checkout_query"]
        async with bot_for(api) as bot:
            link = await bot.create_invoice_link(
                title="VIP", description="30 días", payload="vip:30d", currency="XTR",
                prices=[LabeledPrice(label="VIP", amount=250)],
            )  # fmt: skip
            assert link.startswith("https://t.me/$")
            assert await bot.answer_pre_checkout_query(query["id"], ok=True) is True
            assert await bot.refund_star_payment(ANA.id, "stx-9") is True
            with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
                await bot.refund_star_payment(ANA.id, "stx-9")
            invite = await bot.create_chat_invite_link(CHANNEL, name="ana", member_limit=1)
            assert invite.invite_link.startswith("https://t.me/+") and invite.member_limit == 1
            assert await bot.ban_chat_member(CHANNEL, ANA.id) is True
            assert api.banned(CHANNEL) == {ANA.id}
            assert await bot.unban_chat_member(CHANNEL, ANA.id, only_if_banned=True) is True
            assert api.banned(CHANNEL) == set()
            commands = [BotCommand(command="start", description="Empezar")]
            assert await bot.set_my_commands(commands) is True
            assert [c.model_dump() for c in await bot.get_my_commands()] == [
                c.model_dump() for c in commands
            ]
            assert await bot.set_webhook("https://example.org/hook") is True
            with pytest.raises(TelegramConflictError):
                await bot.get_updates()
            info = await bot.get_webhook_info()
            assert info.url == "https://example.org/hook" and info.pending_update_count == 2
            assert await bot.delete_webhook(drop_pending_updates=True) is True
            assert await bot.get_updates() == []
        assert api.commands == {"default:": [{"command": "start", "description": "Empezar"}]}
        assert api.refunded_charges == {"stx-9"}
        assert api.invoice_links[0]["prices"] == [{"label": "VIP", "amount": 250}]
        assert api.webhook_url == ""

    run(scenario)


def test_the_thread_runner_serves_sync_tests() -> None:
    with LocalBotAPI(TOKEN).running_in_thread() as api:
        api.inject_message(ANA, "hola")
        request = urllib.request.Request(
            f"{api.url}/bot{TOKEN}/sendMessage",
            data=json.dumps({"chat_id": ANA.id, "text": "hola"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.load(resp)["result"]["message_id"] == 2
        [call] = api.wait_for_calls("sendMessage", timeout=2)
        assert call.params == {"chat_id": ANA.id, "text": "hola"}
        with pytest.raises(TimeoutError):
            api.wait_for_calls("sendMessage", 2, timeout=0.2)

        # a bot on another loop, and a wait that a later call ends
        def later() -> None:
            time.sleep(0.2)
            asyncio.run(send_one(api))

        threading.Thread(target=later).start()
        started = time.monotonic()
        assert len(api.wait_for_calls("sendMessage", 2, timeout=5)) == 2
        assert time.monotonic() - started < 2
        url = api.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/bot{TOKEN}/getMe", timeout=1)


async def send_one(api: LocalBotAPI) -> None:
    async with bot_for(api) as bot:
        await bot.send_message(ANA.id, "otra")


def test_another_process_injects_and_reads_calls_over_http() -> None:
    async def scenario(api: LocalBotAPI) -> None:
        base = f"{api.url}/local/bot{TOKEN}"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/inject/message",
                json={"user": {"id": 7, "first_name": "Eva"}, "text": "/start"},
            ) as resp:
                injected = (await resp.json())["result"]
            async with http.post(f"{base}/inject/nothing", json={}) as resp:
                assert resp.status == 404
            async with http.post(f"{base}/inject/message", json={"text": "no user"}) as resp:
                assert resp.status == 400
            async with bot_for(api) as bot:
                [update] = await bot.get_updates()
                await bot.send_message(7, "hola Eva")
            async with http.get(f"{base}/calls", params={"method": "sendMessage"}) as resp:
                calls = (await resp.json())["result"]
            async with http.get(f"{api.url}/local/bot1:x/calls") as resp:
                assert resp.status == 401
        assert update.update_id == injected["update_id"]
        assert update.message is not None and update.message.text == "/start"
        assert [(c["params"]["text"], c["status"]) for c in calls] == [("hola Eva", 200)]

    run(scenario)


def test_python_m_serves_until_interrupted() -> None:
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "dianabot.adapters.telegram.local_api", "--token", TOKEN,
         "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/bot{TOKEN}/getMe", timeout=1
                ) as resp:
                    assert json.load(resp)["result"]["id"] == 424242
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=10)
    assert server.returncode == 0
    assert f"listening on http://127.0.0.1:{port}" in stderr
