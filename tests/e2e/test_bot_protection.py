"""The seven protection scenarios of the spec (section 7), end to end: the real aiogram
dispatcher long-polls the local Bot API (`LocalBotAPI`, reached through aiogram's own
`TelegramAPIServer` setting), updates are injected there as Telegram would deliver them, and the
tests assert on what the bot sent (the server's recorded calls) and on the aggregates and read
models. Plus Telegram's own faults: a user who blocked the bot (403) and flood control (429).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.telegram.callbacks import ChoiceButton
from dianabot.application.clock import ManualClock
from dianabot.application.commands import Command
from dianabot.application.policies import build
from dianabot.application.policies.base import Policy
from dianabot.application.results import Origin
from eventsourcing.persistence import OperationalError

from tests.conftest import ADMIN_ID
from tests.policies import logged, runner_of
from tests.telegram_live import (
    ANA,
    GROUP,
    JSON,
    LUIS,
    Live,
    run,
    until,
    wire,
)


def awards(services: Services, user: int, *sources: str) -> list[Any]:
    """The `PointsAwarded` events of a user (of these sources, or all), in log order."""
    owner = services.app.get_player(user)
    assert owner is not None
    return [
        event
        for event in logged(services, "PointsAwarded")
        if event.originator_id == owner.id and (not sources or event.source in sources)
    ]


# ---------------------------------------------------------------- 1. the point flow


def test_protection_1_a_reaction_awards_besitos_once_and_a_repeat_nothing(
    wired: Services,
) -> None:
    async def scenario(live: Live) -> None:
        post = await live.post()
        buttons = live.buttons(*post)
        assert len(buttons) >= 2, "the post got the reaction buttons"
        press = live.api.inject_callback_query(ANA, post, buttons[0])
        assert "+10 besitos" in await live.answer_to(press)
        assert "Ya me dejaste" in await live.press(ANA, post, buttons[0])  # the same emoji
        assert "Ya me dejaste" in await live.press(ANA, post, buttons[1])  # another emoji
        live.api.inject_update(press)  # the same update again (a restart before the offset)
        assert "ya lo tenía apuntado" in await live.answer_to(press, count=2)
        assert "Besitos: 10" in await live.ask(ANA, "/profile")
        assert live.read_model(ANA)["balance"] == 10

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 10  # type: ignore[union-attr]
    assert len(awards(wired, ANA, "reaction")) == 1


# ---------------------------------------------------------------- 2. the badge flow


def test_protection_2_crossing_100_lifetime_besitos_awards_the_badge_exactly_once(
    wired: Services,
) -> None:
    policies = wired.policies
    assert policies is not None

    async def scenario(live: Live) -> None:
        for count in range(1, 12):
            post = await live.post(f"post {count}")
            assert "+10 besitos" in await live.press(ANA, post, live.buttons(*post)[0])
            policies.catch_up()  # the workers' policies, after every award
            if count == 9:
                assert "besitos-100" not in live.held(ANA)
        assert live.read_model(ANA)["lifetime"] == 110
        badges = await live.ask(ANA, "/badges")
        assert "💯 Cien besitos" in badges

    run(wired, scenario)
    policies.catch_up()
    # A second runner of the badge policies (a restarted worker) awards nothing more.
    runner_of(wired, *build(wired.app, ["badges-by-criteria"])).catch_up()
    given = [
        e for e in logged(wired, "BadgeAwarded") if getattr(e, "badge_slug", None) == "besitos-100"
    ]
    assert len(given) == 1


# ---------------------------------------------------------------- 3 and 4. VIP and the story


async def walk_to_the_vip_gate(live: Live, user: int) -> tuple[tuple[int, int], str]:
    """`/story`, then free choices (through the buttons the bot shows) until a choice leads
    into the VIP arc: the story message and that button's data."""
    first = await live.ask(user, "/story")
    assert first.startswith("Capítulo 1")
    sent = live.sent_to(user)[-1].result
    where = (user, int(sent["message_id"]))
    for _ in range(80):
        view = live.services.app.current_fragment(user)
        assert view is not None
        shown = live.buttons(*where)
        assert live.api.message(*where)["text"].startswith(f"Capítulo {view.chapter}")
        gate = next((c for c in view.choices if c.vip_only or c.leads_to_vip), None)
        if gate is not None:
            data = ChoiceButton(fragment=view.fragment_id, choice=gate.id).pack()
            assert data in shown
            return where, data
        choice = next((c for c in view.choices if c.cost == 0), None) or next(
            c for c in view.choices if c.affordable
        )
        data = ChoiceButton(fragment=view.fragment_id, choice=choice.id).pack()
        assert data in shown
        edits = len(live.api.calls("editMessageText"))
        assert "Sigamos" in await live.press(user, where, data)
        await live.api.wait_for_calls_async("editMessageText", edits + 1)
    raise AssertionError("no VIP gate on the way")


def test_protection_3_a_vip_token_grants_vip_the_badge_and_opens_the_vip_arc(
    wired: Services,
) -> None:
    token = wired.app.issue_vip_token(0, 30, Origin.console()).details["token"]
    policies = wired.policies
    assert policies is not None

    async def scenario(live: Live) -> None:
        assert "Todavía no eres VIP" in await live.ask(ANA, "/vip")
        assert "Ya eres VIP" in await live.ask(ANA, f"/start {token}", replies=2)
        assert "ya se usó" in await live.ask(LUIS, f"/start {token}", replies=2)
        policies.catch_up()
        assert "Eres VIP hasta" in await live.ask(ANA, "/vip")
        assert "el-divan" in live.held(ANA)
        assert "🛋" in await live.ask(ANA, "/badges")
        where, gate = await walk_to_the_vip_gate(live, ANA)
        # The age and consent gate stops her once; she confirms, and the VIP arc opens.
        edits = len(live.api.calls("editMessageText"))
        await live.press(ANA, where, gate)
        await live.api.wait_for_calls_async("editMessageText", edits + 1)
        assert "18 años" in live.api.message(*where)["text"]
        assert "Gracias por confiar" in await live.press(ANA, where, live.buttons(*where)[0])
        await live.api.wait_for_calls_async("editMessageText", edits + 2)
        edits = len(live.api.calls("editMessageText"))
        assert "Sigamos" in await live.press(ANA, where, gate)
        await live.api.wait_for_calls_async("editMessageText", edits + 1)
        view = live.services.app.current_fragment(ANA)
        assert view is not None and view.vip_fragment and not view.locked
        assert view.chapter >= 4
        assert live.api.message(*where)["text"].startswith(f"Capítulo {view.chapter}")

    run(wired, scenario)
    now = wired.clock.now()
    assert wired.app.get_player(ANA).vip_active(now)  # type: ignore[union-attr]
    assert not wired.app.get_player(LUIS).vip_active(now)  # type: ignore[union-attr]


def test_protection_4_story_shows_the_fragment_choices_advance_and_vip_refuses_free_users(
    wired: Services,
) -> None:
    async def scenario(live: Live) -> str:
        where, gate = await walk_to_the_vip_gate(live, ANA)
        before = live.services.app.current_fragment(ANA)
        assert before is not None and before.chapter > 1  # the choices advanced it
        edits = live.api.calls("editMessageText")
        assert edits and all(c.params["message_id"] == where[1] for c in edits)
        refused = await live.press(ANA, where, gate)
        assert "sólo para VIP" in refused
        # /story again shows where the player still stands.
        assert (await live.ask(ANA, "/story")).startswith(f"Capítulo {before.chapter}")
        return before.fragment_id

    fragment = run(wired, scenario)
    view = wired.app.current_fragment(ANA)
    assert view is not None and view.fragment_id == fragment and not view.vip_fragment


# ---------------------------------------------------------------- 5. engagement


def test_protection_5_messages_polls_and_checkins_award_per_the_rules_with_cooldowns(
    wired: Services, clock: ManualClock
) -> None:
    async def scenario(live: Live) -> None:
        api = live.api
        api.inject_group_message(GROUP, ANA, "hola a todos")
        api.inject_group_message(GROUP, ANA, "otra vez")  # within the 30 s cooldown
        await live.settle()
        assert live.balance(ANA) == 1
        clock.advance(seconds=30)
        api.inject_group_message(GROUP, ANA, "y otra")
        api.inject_group_message(-555, ANA, "en otro grupo")  # not the configured group
        await live.settle()
        assert live.balance(ANA) == 2
        assert live.sent_to(GROUP) == []  # the group is not spammed
        assert "Encuesta enviada" in await live.ask(ADMIN_ID, "/poll ¿Té o café? | Té | Café")
        poll = api.calls("sendPoll")[0].result["poll"]["id"]
        answer = api.inject_poll_answer(ANA, poll, [0])
        api.inject_poll_answer(ANA, poll, [1])  # the same poll again
        await live.settle()
        await live.deliver(answer)  # delivered twice
        assert live.balance(ANA) == 4
        assert "+10 besitos" in await live.ask(ANA, "/checkin")
        clock.advance(hours=20, minutes=48)
        assert "Vuelve en 3 h 12 min" in await live.ask(ANA, "/checkin")
        clock.advance(hours=3, minutes=12)
        assert "Llevas 2 días" in await live.ask(ANA, "/checkin")
        assert "Besitos: 24" in await live.ask(ANA, "/profile")

    run(wired, scenario)
    sources = [e.source for e in awards(wired, ANA)]
    assert sorted(sources) == ["checkin", "checkin", "message", "message", "poll"]


# ---------------------------------------------------------------- 6. integrity under load


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def loaded(request: pytest.FixtureRequest, tmp_path: Any, clock: ManualClock) -> Iterator[Services]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with wire(url, clock) as services:
        yield services


USERS = list(range(3001, 3021))
POSTS = 5


def test_protection_6_concurrent_updates_lose_and_duplicate_nothing_and_replay_equals_live(
    loaded: Services,
) -> None:
    """20 users, each reacting to the same 5 posts and checking in twice, all at once (the
    dispatcher handles updates as concurrent tasks, as `dianabot run` does); a third of the
    updates are delivered twice."""

    async def scenario(live: Live) -> None:
        api = live.api
        posts = [await live.post(f"post {n}") for n in range(POSTS)]
        data = live.buttons(*posts[0])[0]
        rng = random.Random(13)
        presses: list[JSON] = []
        checkins = 0
        order = [(u, p) for u in USERS for p in [*posts, None, None]]
        rng.shuffle(order)
        for user, post in order:
            if post is None:
                api.inject_message(user, "/checkin")
                checkins += 1
            else:
                presses.append(api.inject_callback_query(user, post, data))
        again = rng.sample(presses, len(presses) // 3)
        for update in again:
            api.inject_update(update)
        queries = {str(p["callback_query"]["id"]) for p in presses}

        def answered_once() -> set[str]:
            return {
                str(c.params["callback_query_id"]) for c in api.calls("answerCallbackQuery") if c.ok
            }

        def replied() -> int:
            return sum(1 for c in api.calls("sendMessage") if c.params["chat_id"] in USERS)

        # Every query answered (Telegram takes one answer per query: a delivery again is
        # answered too, and refused) and every check-in replied to.
        await until(lambda: answered_once() == queries and replied() >= checkins)
        await live.settle()
        answered = api.calls("answerCallbackQuery")
        answers = [str(c.params.get("text")) for c in answered]
        assert sum("+10 besitos" in text for text in answers) == len(USERS) * POSTS
        replies = [
            str(c.params["text"]) for c in api.calls("sendMessage") if c.params["chat_id"] in USERS
        ]
        assert sum("+10 besitos" in text for text in replies) == len(USERS)
        # The second check-in of each user, and any delivery again, is refused politely.
        assert all(
            "+10 besitos" in text or "Vuelve en" in text or "ya lo tenía apuntado" in text
            for text in replies
        )
        assert live.consistent()
        for user in USERS:
            assert live.read_model(user)["balance"] == POSTS * 10 + 10

    run(loaded, scenario, handle_as_tasks=True)
    for user in USERS:
        assert loaded.app.get_player(user).balance == POSTS * 10 + 10  # type: ignore[union-attr]
        assert len(awards(loaded, user, "reaction")) == POSTS
        assert len(awards(loaded, user, "checkin")) == 1


# ---------------------------------------------------------------- 7. errors


class Exploding(Policy):
    """A subscriber that raises on every award to ANA."""

    name = "exploding"
    handles = frozenset({"PointsAwarded"})

    def react(self, event: Any) -> Command | None:
        if self.owner(event) == ANA:
            raise RuntimeError("boom")
        return None


def test_protection_7_a_failing_subscriber_leaves_no_partial_state_and_the_bot_answers(
    wired: Services,
) -> None:
    app = wired.app
    subscribers = runner_of(wired, Exploding(app), *build(app), max_attempts=2, base_delay=0.0)

    async def scenario(live: Live) -> None:
        for count in range(10):
            post = await live.post(f"post {count}")
            assert "+10 besitos" in await live.press(ANA, post, live.buttons(*post)[0])
            subscribers.catch_up()
        subscribers.catch_up()
        status = {s.name: s for s in subscribers.status()}
        assert status["exploding"].parked >= 5 and status["exploding"].errors >= 10
        assert status["badges-by-criteria"].lag == 0  # the others went on
        assert "besitos-100" in live.held(ANA)
        assert "Besitos: 100" in await live.ask(ANA, "/profile")
        assert "Soy Diana" in await live.ask(LUIS, "/start")
        assert live.consistent()

    run(wired, scenario)
    assert len(awards(wired, ANA, "reaction")) == 10


@pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")
def test_protection_7_malformed_updates_change_nothing_and_the_bot_answers(
    wired: Services,
) -> None:
    async def scenario(live: Live) -> None:
        api = live.api
        assert "Soy Diana" in await live.ask(ANA, "/start")
        post = await live.post()
        for data in ["r:9", "r:-1", "r:x", "zz:1", "s:../x:y", "", "s:a", "r:0:" + "x" * 60]:
            assert "no sirve" in await live.press(ANA, post, data)
        api.inject_update({"some_future_kind": {"x": 1}})  # a kind the bot does not know
        bare = {"message_id": 9, "date": 0, "chat": {"id": ANA, "type": "private"}}
        api.inject_update({"message": bare})  # no sender, no text
        api.inject_message(ANA, "/grant")  # an admin command without arguments, from a user
        api.inject_message(ANA, "/start vip-" + "\x00" * 300)
        api.inject_group_message(GROUP, -5, "\u202e" * 5000)  # a sender id no user has
        await live.settle()
        assert "Soy Diana" in await live.ask(LUIS, "/start")
        assert live.balance(ANA) == 0
        assert logged(wired, "PointsAwarded", "ReactionRecorded", "VipGranted") == []
        assert live.consistent()

    run(wired, scenario)


def test_protection_7_a_database_error_mid_update_writes_nothing_and_a_redelivery_completes_it(
    wired: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new user's `/checkin` registers them, then the check-in's write fails: the user is
    answered politely, nothing of the check-in is recorded, and the poller does not confirm the
    update: once the store answers, Telegram delivers it again and it completes, once; the bot
    answers others meanwhile; a further duplicate delivery changes nothing."""
    writer = wired.app._event_writer
    original = writer.record
    writes: list[int] = []

    def failing_second(*args: Any, **kwargs: Any) -> Any:
        writes.append(1)
        if len(writes) >= 2:  # the registration goes through, then the store fails
            raise OperationalError("disk I/O error")
        return original(*args, **kwargs)

    async def scenario(live: Live) -> None:
        monkeypatch.setattr(writer, "record", failing_second)
        update = live.api.inject_message(ANA, "/checkin")
        replies = await live.replies(ANA, 1)
        monkeypatch.setattr(writer, "record", original)
        assert "no puedo apuntarlo" in str(replies[-1].params["text"])
        assert len(writes) >= 2
        player = wired.app.get_player(ANA)
        assert player is not None and player.balance == 0  # registered, nothing else
        assert awards(wired, ANA) == [] and logged(wired, "CheckedIn") == []
        assert "Soy Diana" in await live.ask(LUIS, "/start")
        replies = await live.replies(ANA, 2)  # delivered again by the Bot API, not by the test
        assert "+10 besitos" in str(replies[-1].params["text"])
        assert live.poller.stats.unrecorded == 1
        live.api.inject_update(update)
        replies = await live.replies(ANA, 3)
        assert "ya lo tenía apuntado" in str(replies[-1].params["text"])
        assert live.consistent()

    run(wired, scenario)
    assert wired.app.get_player(ANA).balance == 10  # type: ignore[union-attr]
    assert len(awards(wired, ANA, "checkin")) == 1


# ---------------------------------------------------------------- Telegram's own faults


def test_a_user_who_blocked_the_bot_does_not_stop_it_answering_others(wired: Services) -> None:
    async def scenario(live: Live) -> None:
        assert "Soy Diana" in await live.ask(ANA, "/start")
        live.api.block(ANA)
        live.api.inject_message(ANA, "/checkin")
        refused = await live.replies(ANA, 2)
        assert refused[-1].error_code == 403
        assert "Soy Diana" in await live.ask(LUIS, "/start")
        assert "+10 besitos" in await live.ask(LUIS, "/checkin")

    run(wired, scenario)
    # The check-in happened (only its receipt could not be delivered), once.
    assert wired.app.get_player(ANA).balance == 10  # type: ignore[union-attr]
    assert wired.app.get_player(LUIS).balance == 10  # type: ignore[union-attr]


def test_a_429_is_waited_out_for_one_chat_while_the_bot_answers_others(wired: Services) -> None:
    async def scenario(live: Live) -> None:
        live.api.fail_with_retry_after("sendMessage", 1, chat_id=ANA)
        live.api.inject_message(ANA, "/start")
        first = await live.replies(ANA, 1)
        assert first[0].error_code == 429
        assert "Soy Diana" in await live.ask(LUIS, "/start")
        calls = await live.replies(ANA, 2)
        assert calls[-1].ok and "Soy Diana" in str(calls[-1].params["text"])
        assert calls[-1].monotonic - calls[0].monotonic >= 1.0
        # LUIS was answered while ANA's reply waited out its retry_after.
        assert live.sent_to(LUIS)[-1].monotonic < calls[-1].monotonic

    run(wired, scenario, handle_as_tasks=True)
    assert wired.app.get_player(ANA) is not None
