"""The bot through the real aiogram dispatcher (`feed_update`), on a fake Bot API session:
each command's reply and its effect on the aggregates and read models, an update delivered
twice, forged buttons, admin-only commands, updates the bot cannot handle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiogram.types import Update
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.story_file import load_bundled_story
from dianabot.adapters.telegram.callbacks import ChoiceButton, ReactionButton
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES

from tests.conftest import ADMIN_ID, make_settings
from tests.telegram_harness import CHANNEL, GROUP, Harness

ANA = 1001
LUIS = 1002


@pytest.fixture
def wired(database_url: str, clock: ManualClock) -> Iterator[Services]:
    settings = make_settings(database_url, channel_id=CHANNEL, group_id=GROUP)
    with bootstrap(settings, clock=clock) as services:
        services.app.ensure_badges(INITIAL_BADGES, Origin.system("test", "catalogue"))
        services.app.publish_story(load_bundled_story(), Origin.system("test", "story"))
        assert services.projections is not None
        services.projections.start()
        yield services


def run(wired: Services, scenario: Callable[[Harness], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        harness = Harness(wired)
        try:
            return await scenario(harness)
        finally:
            await harness.bot.session.close()

    return asyncio.run(main())


def test_start_registers_and_sets_the_commands(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        await h.dispatcher.emit_startup(bot=h.bot)
        commands = h.session.sent("setMyCommands")[0]["commands"]
        assert [c["command"] for c in commands][:3] == ["start", "profile", "checkin"]
        assert "Soy Diana" in await h.command(ANA, "/start")
        assert "de nuevo" in await h.command(ANA, "/start")
        profile = await h.command(ANA, "/profile")
        assert "Besitos: 0" in profile and "Nivel 1: Novato" in profile
        assert "ninguna todavía" in profile
        assert "/checkin" in await h.command(ANA, "/help")

    run(wired, scenario)
    assert wired.app.get_player(ANA) is not None


def test_checkin_then_profile_reads_its_own_write(wired: Services, clock: ManualClock) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "/start")
        reply = await h.command(ANA, "/checkin")
        assert "+10 besitos" in reply and "1 día seguidos" in reply
        assert "Besitos: 10" in await h.command(ANA, "/profile")
        clock.advance(hours=20, minutes=48)
        assert "Vuelve en 3 h 12 min" in await h.command(ANA, "/checkin")
        clock.advance(hours=3, minutes=12)
        assert "Llevas 2 días" in await h.command(ANA, "/checkin")
        assert "Besitos: 20" in await h.command(ANA, "/profile")
        assert "Usuario1001 — 20 besitos" in await h.command(ANA, "/top")

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 20  # type: ignore[union-attr]


def test_the_same_update_twice_awards_once(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "/start")
        update = h.message_update(ANA, "/checkin")
        await h.feed(update)
        await h.feed(update)
        assert "ya lo tenía apuntado" in h.last
        press = h.press(ANA, ReactionButton(emoji=0).pack(), chat_id=CHANNEL, message_id=7)
        await h.feed(press)
        await h.feed(press)
        assert "ya lo tenía apuntado" in h.last
        await asyncio.gather(*(h.feed(update) for _ in range(5)))

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 20  # type: ignore[union-attr]


def test_channel_posts_get_reaction_buttons_that_award_once(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        await h.feed(h.channel_post(7))
        await h.feed(h.channel_post(8, chat_id=-999))  # not the configured channel
        edits = h.session.sent("editMessageReplyMarkup")
        assert len(edits) == 1 and edits[0]["chat_id"] == CHANNEL
        buttons = edits[0]["reply_markup"]["inline_keyboard"][0]
        data = buttons[0]["callback_data"]
        assert "+10 besitos" in await h.tap(ANA, data, chat_id=CHANNEL, message_id=7)
        other = ReactionButton(emoji=1).pack()
        assert "Ya me dejaste" in await h.tap(ANA, other, chat_id=CHANNEL, message_id=7)
        assert "+10 besitos" in await h.tap(ANA, other, chat_id=CHANNEL, message_id=8)
        assert len(h.session.sent("answerCallbackQuery")) == 3

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 20  # type: ignore[union-attr]


@pytest.mark.parametrize("data", ["r:9", "r:-1", "r:x", "r", "zz:1", "s:../x:y", "", "s:a"])
def test_forged_buttons_are_refused_politely(wired: Services, data: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "/start")
        reply = await h.tap(ANA, data, chat_id=CHANNEL, message_id=7)
        assert "Ese botón ya no sirve" in reply

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 0  # type: ignore[union-attr]


def test_a_reaction_button_outside_the_channel_awards_nothing(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "/start")
        data = ReactionButton(emoji=0).pack()
        assert "no es mío" in await h.tap(ANA, data, chat_id=ANA, message_id=7)

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 0  # type: ignore[union-attr]


def test_story_buttons_advance_and_stale_ones_are_refused(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "/start")
        first = await h.command(ANA, "/story")
        assert first.startswith("Capítulo 1")
        keyboard = h.session.sent("sendMessage")[-1]["reply_markup"]["inline_keyboard"]
        data = keyboard[0][0]["callback_data"]
        await h.tap(ANA, data)
        assert "Sigamos" in h.answered
        edited = h.session.sent("editMessageText")[-1]
        assert edited["text"] != first and edited["text"].startswith("Capítulo")
        # The same button again: the player has left that fragment.
        await h.tap(ANA, data)
        assert "Ese momento ya pasó" in h.answered
        view = wired.app.current_fragment(ANA)
        assert view is not None
        forged = ChoiceButton(fragment=view.fragment_id, choice="no_such_choice").pack()
        await h.tap(ANA, forged)
        assert "ya no está en tus manos" in h.answered
        return view.fragment_id

    fragment = run(wired, scenario)
    view = wired.app.current_fragment(ANA)
    assert view is not None and view.fragment_id == fragment


def test_vip_token_by_deep_link(wired: Services) -> None:
    token = wired.app.issue_vip_token(0, 30, Origin.console()).details["token"]

    async def scenario(h: Harness) -> None:
        assert "Todavía no eres VIP" in await h.command(LUIS, "/vip")
        assert "Ya eres VIP" in await h.command(ANA, f"/start {token}")
        assert "Eres VIP hasta" in await h.command(ANA, "/vip")
        assert "ya se usó" in await h.command(LUIS, f"/start {token}")
        assert "no abre ninguna puerta" in await h.command(LUIS, "/start vip-forged")

    run(wired, scenario)
    now = wired.clock.now()
    assert wired.app.get_player(ANA).vip_active(now)  # type: ignore[union-attr]
    assert not wired.app.get_player(LUIS).vip_active(now)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text", ["/health", "/reconcile", f"/grant {ANA} 50 premio", "/poll a|b|c"]
)
def test_admin_commands_refuse_others_politely(wired: Services, text: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "/start")
        assert "sólo pueden hacerlo" in await h.command(LUIS, text)

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 0  # type: ignore[union-attr]


def test_admin_grant_health_reconcile_and_poll(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "/start")
        reply = await h.command(ADMIN_ID, f"/grant {ANA} 50 ganadora del sorteo")
        assert "50 besitos para 1001. Ahora tiene 50" in reply
        assert "Uso: /grant" in await h.command(ADMIN_ID, "/grant ana mucho")
        assert "Estado:" in await h.command(ADMIN_ID, "/health")
        assert "Reconciliación: coherente" in await h.command(ADMIN_ID, "/reconcile")
        assert "Encuesta enviada" in await h.command(ADMIN_ID, "/poll ¿Té o café? | Té | Café")
        poll = h.session.sent("sendPoll")[0]
        assert poll["chat_id"] == GROUP and poll["is_anonymous"] is False

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 50  # type: ignore[union-attr]


def test_group_messages_and_poll_answers_award_per_the_rules(
    wired: Services, clock: ManualClock
) -> None:
    async def scenario(h: Harness) -> None:
        await h.command(ANA, "hola a todos", chat_id=GROUP)
        await h.command(ANA, "otra vez", chat_id=GROUP)  # within the cooldown
        clock.advance(seconds=31)
        await h.command(ANA, "y otra", chat_id=GROUP)
        await h.command(ANA, "fuera del grupo", chat_id=-5)
        answer = h.poll_answer(ANA, "poll-1")
        await h.feed(answer)
        await h.feed(answer)  # delivered twice
        await h.feed(h.poll_answer(ANA, "poll-1"))  # the same poll again
        assert h.texts == []  # the group is not spammed

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 1 + 1 + 2  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")
def test_updates_the_bot_cannot_handle_do_not_raise(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        await h.feed(Update(update_id=99))  # no event at all
        await h.feed(h.channel_post(3, chat_id=-77))
        await h.command(ANA, "/nonsense")
        await h.command(ANA, "/grant")
        # The bot still answers afterwards.
        assert "Soy Diana" in await h.command(ANA, "/start")

    run(wired, scenario)


def test_a_429_is_waited_out_and_retried(wired: Services) -> None:
    async def scenario(h: Harness) -> None:
        h.session.too_many["sendMessage"] = 1
        assert "Soy Diana" in await h.command(ANA, "/start")
        assert len(h.session.sent("sendMessage")) == 2

    run(wired, scenario)


def test_wait_times_in_the_users_terms() -> None:
    from dianabot.adapters.telegram.texts import T, Texts

    texts = Texts.load()
    assert texts.wait(timedelta(hours=3, minutes=11, seconds=1)) == "3 h 12 min"
    assert texts.wait(timedelta(seconds=29)) == "29 s"
    assert texts.wait(timedelta(minutes=5)) == "5 min"
    assert texts.wait(timedelta(hours=2)) == "2 h"
    assert texts.wait(timedelta(days=1, hours=4)) == "1 d 4 h"
    assert set(texts.entries) == {key.value for key in T}
