"""Telegram's limits on the bot's side, through the real dispatcher and the local Bot API: a user
flooding the bot is throttled (told once, then silence, nothing awarded for what was dropped)
while others are answered; messages to many users go out at a bounded rate, overall and per
chat, and a user who blocked the bot is skipped."""

from __future__ import annotations

import asyncio

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.telegram.bot import make_bot
from dianabot.adapters.telegram.limits import RateLimitedSender, TokenBucket, UserThrottle
from dianabot.adapters.telegram.local_api import LocalBotAPI
from dianabot.adapters.telegram.texts import T, Texts

from tests.telegram_live import ANA, LUIS, TOKEN, Live, run

THROTTLED = Texts.load()(T.REFUSAL_THROTTLED)
PEPE = 1003


def test_token_bucket_and_user_throttle_tell_once_per_exhaustion() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.try_take() and not bucket.try_take()
    throttle = UserThrottle(burst=2, per_second=1.0, clock=lambda: now[0])
    verdicts = [throttle.check(ANA) for _ in range(5)]
    assert verdicts == ["pass", "pass", "warn", "drop", "drop"]
    assert throttle.check(LUIS) == "pass"  # another user has a bucket of their own
    now[0] += 1.0
    assert [throttle.check(ANA) for _ in range(3)] == ["pass", "warn", "drop"]


def test_a_flooding_user_is_told_once_then_silence_and_nothing_beyond_is_awarded(
    wired: Services,
) -> None:
    now = [0.0]
    throttle = UserThrottle(burst=3, per_second=1.0, clock=lambda: now[0])

    async def scenario(live: Live) -> None:
        api = live.api
        posts = [await live.post(f"post {n}") for n in range(8)]
        data = live.buttons(*posts[0])[0]
        presses = [api.inject_callback_query(ANA, post, data) for post in posts[:7]]
        assert "Soy Diana" in await live.ask(LUIS, "/start")  # others are answered
        answers = [await live.answer_to(press) for press in presses[:4]]
        assert all("+10 besitos" in a for a in answers[:3])
        assert answers[3] == THROTTLED
        await live.ask(LUIS, "/help")  # everything injected before is handled by now
        answered = {c.params["callback_query_id"] for c in api.calls("answerCallbackQuery")}
        assert not answered & {p["callback_query"]["id"] for p in presses[4:]}  # silence
        assert live.balance(ANA) == 30
        # A private flood: three answers, one word about it, then silence.
        for _ in range(6):
            api.inject_message(PEPE, "/help")
        await live.ask(LUIS, "/help")
        texts = [str(c.params["text"]) for c in live.sent_to(PEPE)]
        assert len(texts) == 4 and texts[-1] == THROTTLED and THROTTLED not in texts[:3]
        now[0] += 1.0  # a token back: the user is heard again
        assert "+10 besitos" in await live.press(ANA, posts[7], data)

    run(wired, scenario, throttle=throttle)
    assert wired.app.get_player(ANA).balance == 40  # type: ignore[union-attr]


def test_messages_to_many_users_keep_the_overall_and_per_chat_rates() -> None:
    users = list(range(5001, 5061))
    blocked = users[7]

    async def scenario() -> None:
        async with LocalBotAPI(TOKEN, strict_chats=False) as api:
            bot = make_bot(TOKEN, api.url)
            try:
                api.block(blocked)
                sender = RateLimitedSender(bot, overall=50.0, per_chat=5.0)
                started = asyncio.get_running_loop().time()
                report = await sender.broadcast(users, "Hola desde Diana")
                took = asyncio.get_running_loop().time() - started
                assert report.sent == len(users) - 1 and report.blocked == [blocked]
                # 60 messages at 50/s after a burst of 10: about a second.
                assert took >= (len(users) - 10) / 50 * 0.9
                stamps = sorted(c.monotonic for c in api.calls("sendMessage"))
                for i, first in enumerate(stamps):
                    within = [s for s in stamps[i:] if s - first < 0.5]
                    assert len(within) <= 50 * 0.5 + 10 + 1
                # One chat: at most 5 a second.
                for n in range(3):
                    await sender.send(users[0], f"aviso {n}")
                to_one = [
                    c.monotonic for c in api.calls("sendMessage") if c.params["chat_id"] == users[0]
                ]
                gaps = [b - a for a, b in zip(to_one, to_one[1:], strict=False)]
                assert len(to_one) == 4 and all(gap >= 0.18 for gap in gaps)
            finally:
                await bot.session.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
