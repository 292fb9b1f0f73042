"""VIP that pays, end to end: the real dispatcher long-polls the local Bot API, with the VIP
follower running (the VIP channel and VIP messages). Telegram Stars payments (delivered twice,
refunded, renewed after expiry), VIP with besitos, the VIP channel's one-use links (one used by
someone else), the age and consent gate, and the follower resuming after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.story_file import load_bundled_story
from dianabot.adapters.telegram.callbacks import ConsentButton, VipBesitosButton
from dianabot.adapters.telegram.limits import UserThrottle
from dianabot.adapters.telegram.routers.vip import payload_for
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantPoints
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.vip import STARS_SUBSCRIPTION_PERIOD, VIP_BESITOS_COST

from tests.conftest import ADMIN_ID, make_settings
from tests.e2e.test_bot_protection import walk_to_the_vip_gate
from tests.policies import logged
from tests.telegram_live import ANA, CHANNEL, GROUP, LUIS, VIP_CHANNEL, Live, run, until

PRICE = 250


@pytest.fixture
def wired(tmp_path: Any, clock: ManualClock) -> Iterator[Services]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'events.sqlite3'}",
        channel_id=CHANNEL,
        group_id=GROUP,
        vip_channel_id=VIP_CHANNEL,
        vip_stars_price=PRICE,
    )
    with bootstrap(settings, clock=clock) as services:
        services.app.ensure_badges(INITIAL_BADGES, Origin.system("test", "catalogue"))
        services.app.publish_story(load_bundled_story(), Origin.system("test", "story"))
        assert services.projections is not None
        services.projections.start()
        yield services


def following(services: Services, scenario: Any) -> Any:
    return run(services, scenario, follow=True)


def of_user(services: Services, user: int, *names: str) -> list[Any]:
    player = services.app.get_player(user)
    assert player is not None
    return [e for e in logged(services, *names) if e.originator_id == player.id]


async def pay(live: Live, user: int, charge: str, **subscription: Any) -> str:
    """A successful payment of the subscription (as Telegram sends it); the bot's reply."""
    before = len(live.sent_to(user))
    live.api.inject_successful_payment(
        user, payload_for(user, PRICE), PRICE, charge_id=charge, **subscription
    )
    return str((await live.replies(user, before + 1))[-1].params["text"])


async def link_sent(live: Live, user: int, count: int = 1) -> str:
    """The `count`-th one-use VIP channel link the follower made for `user`."""
    calls = await live.api.wait_for_calls_async(
        "createChatInviteLink",
        count,
        where=lambda c: c.params.get("name") == f"vip:{user}",
        timeout=10,
    )
    call = calls[count - 1]
    assert call.params["chat_id"] == VIP_CHANNEL and call.params["member_limit"] == 1
    link = str(call.result["invite_link"])
    await until(lambda: any(link in text for text in texts_to(live, user)), 10)
    return link


def texts_to(live: Live, user: int) -> list[str]:
    return [str(c.params.get("text")) for c in live.sent_to(user)]


def test_vip_offers_a_30_day_stars_subscription_and_checks_the_pre_checkout(
    wired: Services,
) -> None:
    async def scenario(live: Live) -> None:
        offer = await live.ask(ANA, "/vip")
        assert "Todavía no eres VIP" in offer and f"{PRICE} Stars" in offer
        invoice = live.api.invoice_links[-1]
        assert invoice["currency"] == "XTR" and invoice["prices"][0]["amount"] == PRICE
        assert invoice["subscription_period"] == STARS_SUBSCRIPTION_PERIOD == 2592000
        assert invoice["payload"] == payload_for(ANA, PRICE)
        buttons = live.sent_to(ANA)[-1].params["reply_markup"]["inline_keyboard"]
        assert buttons[0][0]["url"] == invoice["link"]
        assert "paysupport" in str(live.api.commands)  # in the menu, as Telegram asks
        assert "Stars" in await live.ask(ANA, "/paysupport")

        def answered(update: dict[str, Any]) -> dict[str, Any]:
            query = update["pre_checkout_query"]["id"]
            return next(
                c.params
                for c in live.api.calls("answerPreCheckoutQuery")
                if c.params["pre_checkout_query_id"] == query
            )

        ours = live.api.inject_pre_checkout_query(ANA, payload_for(ANA, PRICE), PRICE)
        someone_elses = live.api.inject_pre_checkout_query(LUIS, payload_for(ANA, PRICE), PRICE)
        cheaper = live.api.inject_pre_checkout_query(ANA, payload_for(ANA, PRICE), PRICE - 1)
        forged = live.api.inject_pre_checkout_query(ANA, "vip-stars:x", PRICE)
        await live.api.wait_for_calls_async("answerPreCheckoutQuery", 4)
        assert answered(ours)["ok"] is True
        for refused in (someone_elses, cheaper, forged):
            assert answered(refused)["ok"] is False
            assert "no es para ti" in answered(refused)["error_message"]

    following(wired, scenario)
    assert logged(wired, "StarsPaymentReceived") == []


def test_a_payment_delivered_twice_extends_vip_once_and_sends_one_channel_link(
    wired: Services, clock: ManualClock
) -> None:
    async def scenario(live: Live) -> None:
        assert "Soy Diana" in await live.ask(ANA, "/start")
        reply = await pay(live, ANA, "stxCHARGE1", is_recurring=True, is_first_recurring=True)
        assert "Ya eres VIP hasta el" in reply
        assert "ya lo tenía apuntado" in await pay(live, ANA, "stxCHARGE1")
        link = await link_sent(live, ANA)
        live.api.join_via_link(ANA, link)
        await until(lambda: wired.app.get_player(ANA).vip_channel == "member")  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="USERS_TOO_MUCH"):  # one use only
            live.api.join_via_link(LUIS, link)

    following(wired, scenario)
    player = wired.app.get_player(ANA)
    assert player is not None
    assert player.vip_until == clock.now() + timedelta(days=30)
    received = logged(wired, "StarsPaymentReceived")
    assert [p.charge_id for p in received] == ["stxCHARGE1"] and received[0].amount == PRICE
    granted = of_user(wired, ANA, "VipGranted")
    assert [(g.source, g.reference) for g in granted] == [("stars", "stxCHARGE1")]
    assert [e.change for e in of_user(wired, ANA, "VipChannelChanged")] == ["invited", "joined"]

    # A restarted bot (a new follower from its recorded position) sends nothing again.
    async def restarted(live: Live) -> None:
        await live.settle()
        await live.ask(LUIS, "/start")
        await until(lambda: wired.app.subscriber_position("policy:vip-channel") > 0)

    following(wired, restarted)
    assert len(of_user(wired, ANA, "VipChannelChanged")) == 2


def test_a_refund_ends_that_vip_period_and_takes_the_member_out_of_the_channel(
    wired: Services,
) -> None:
    async def scenario(live: Live) -> None:
        await live.ask(ANA, "/start")
        await pay(live, ANA, "stxREFUND1")
        link = await link_sent(live, ANA)
        live.api.join_via_link(ANA, link)
        await until(lambda: wired.app.get_player(ANA).vip_channel == "member")  # type: ignore[union-attr]
        assert "sólo pueden hacerlo" in await live.ask(ANA, "/refund stxREFUND1")
        assert "ningún pago" in await live.ask(ADMIN_ID, "/refund stxNOPE")
        assert "Devueltos 250 Stars" in await live.ask(ADMIN_ID, "/refund stxREFUND1")
        assert live.api.refunded_charges == {"stxREFUND1"}
        assert "ya estaba devuelto" in await live.ask(ADMIN_ID, "/refund stxREFUND1")
        # The follower takes her out (ban, then unban: she may come back) and tells her why.
        await live.api.wait_for_calls_async("unbanChatMember", 1, timeout=10)
        await until(lambda: any("terminó" in t for t in texts_to(live, ANA)))
        assert ANA not in live.api.members(VIP_CHANNEL)
        assert ANA not in live.api.banned(VIP_CHANNEL)
        assert any("devolví tus Stars" in t for t in texts_to(live, ANA))

    following(wired, scenario)
    player = wired.app.get_player(ANA)
    assert player is not None and not player.vip_active(wired.clock.now())
    refunded = logged(wired, "StarsPaymentRefunded")
    assert len(refunded) == 1 and refunded[0].admin_id == ADMIN_ID
    shortened = of_user(wired, ANA, "VipShortened")
    assert [(s.reference, s.until) for s in shortened] == [("stxREFUND1", wired.clock.now())]
    assert len(of_user(wired, ANA, "VipExpired")) == 1
    changes = [e.change for e in of_user(wired, ANA, "VipChannelChanged")]
    assert changes == ["invited", "joined", "removed"]


def test_a_renewal_after_expiry_starts_a_new_period_and_a_new_link(
    wired: Services, clock: ManualClock
) -> None:
    async def scenario(live: Live) -> None:
        await live.ask(ANA, "/start")
        await pay(live, ANA, "stxFIRST", is_recurring=True, is_first_recurring=True)
        first = await link_sent(live, ANA)
        clock.advance(days=31)  # the renewal came late: the period ran out first
        assert wired.app.expire_due_vips().expired == (ANA,)
        await until(lambda: any("terminó" in t for t in texts_to(live, ANA)))
        await live.api.wait_for_calls_async("revokeChatInviteLink", 1, timeout=10)
        with pytest.raises(ValueError, match="INVITE_HASH_EXPIRED"):
            live.api.join_via_link(ANA, first)  # the unused link went with the period
        reply = await pay(live, ANA, "stxRENEWAL", is_recurring=True)
        assert "se renovó" in reply
        second = await link_sent(live, ANA, 2)
        assert second != first
        live.api.join_via_link(ANA, second)
        await until(lambda: wired.app.get_player(ANA).vip_channel == "member")  # type: ignore[union-attr]

    following(wired, scenario)
    player = wired.app.get_player(ANA)
    assert player is not None and player.vip_until == clock.now() + timedelta(days=30)
    granted = of_user(wired, ANA, "VipGranted")
    assert [g.reference for g in granted] == ["stxFIRST", "stxRENEWAL"]
    assert [p.is_recurring for p in logged(wired, "StarsPaymentReceived")] == [True, True]


def test_an_invite_link_used_by_someone_else_lets_no_one_in_and_its_owner_gets_a_new_one(
    wired: Services,
) -> None:
    async def scenario(live: Live) -> None:
        await live.ask(ANA, "/start")
        await live.ask(LUIS, "/start")
        await pay(live, ANA, "stxSHARED")
        shared = await link_sent(live, ANA)
        live.api.join_via_link(LUIS, shared)  # Ana passed her link on
        await live.api.wait_for_calls_async("revokeChatInviteLink", 1, timeout=10)
        await until(lambda: any("era de otra persona" in t for t in texts_to(live, LUIS)))
        assert LUIS not in live.api.members(VIP_CHANNEL)
        assert LUIS not in live.api.banned(VIP_CHANNEL)  # out, not banned for ever
        fresh = await link_sent(live, ANA, 2)
        live.api.join_via_link(ANA, fresh)
        await until(lambda: wired.app.get_player(ANA).vip_channel == "member")  # type: ignore[union-attr]
        # Already in the channel: a renewal extends VIP and sends no third link.
        await pay(live, ANA, "stxSHARED2", is_recurring=True)
        await live.settle()
        await until(lambda: len(of_user(wired, ANA, "VipGranted")) == 2)
        # Someone who is not VIP, in by some other way (an old link, say), is taken out too.
        bans = len(live.api.calls("banChatMember"))
        live.api.inject_chat_member(VIP_CHANNEL, LUIS, "left", "member")
        await until(lambda: any("sólo para VIP" in t for t in texts_to(live, LUIS)))
        assert live.api.calls("banChatMember")[bans].params["user_id"] == LUIS

    following(wired, scenario)
    assert len(wired.app.get_player(ANA).vip_references) == 2  # type: ignore[union-attr]
    changes = [(e.change, e.detail) for e in of_user(wired, ANA, "VipChannelChanged")]
    assert changes[:2] == [("invited", ""), ("revoked", f"used by {LUIS}")]
    assert [c for c, _ in changes[2:]] == ["invited", "joined"]
    assert wired.app.get_player(LUIS).vip_channel == "none"  # type: ignore[union-attr]


def test_vip_with_besitos_is_refused_when_short_and_never_partial(wired: Services) -> None:
    async def scenario(live: Live) -> None:
        await live.ask(ANA, "/start")
        offer = await live.ask(ANA, "/vip")
        where = (ANA, int(live.sent_to(ANA)[-1].result["message_id"]))
        assert f"{VIP_BESITOS_COST} besitos" in offer
        data = VipBesitosButton().pack()
        assert data in live.buttons(*where)
        assert "Te faltan besitos" in await live.press(ANA, where, data)
        grant = GrantPoints(ANA, admin_id=ADMIN_ID, amount=VIP_BESITOS_COST - 1, reason="test")
        assert live.services.app.bus.handle(grant, Origin.admin(ADMIN_ID)).ok
        assert "tienes 999" in await live.press(ANA, where, data)
        assert live.balance(ANA) == VIP_BESITOS_COST - 1
        grant = GrantPoints(ANA, admin_id=ADMIN_ID, amount=1, reason="test")
        assert live.services.app.bus.handle(grant, Origin.admin(ADMIN_ID)).ok
        assert "Eres VIP hasta el" in await live.press(ANA, where, data)
        assert live.balance(ANA) == 0
        await link_sent(live, ANA)  # a new VIP, whatever the source, is invited

    following(wired, scenario)
    spent = of_user(wired, ANA, "PointsSpent")
    granted = of_user(wired, ANA, "VipGranted")
    assert [(s.purpose, s.amount) for s in spent] == [("vip", VIP_BESITOS_COST)]
    assert [g.source for g in granted] == ["besitos"]
    assert spent[0].causation == granted[0].causation  # one command, one transaction


def test_the_age_gate_stops_the_vip_arc_until_confirmed_once(wired: Services) -> None:
    token = wired.app.issue_vip_token(0, 30, Origin.console()).details["token"]

    async def scenario(live: Live) -> None:
        await live.ask(ANA, f"/start {token}", replies=2)
        where, gate = await walk_to_the_vip_gate(live, ANA)
        before = wired.app.current_fragment(ANA)
        edits = len(live.api.calls("editMessageText"))
        await live.press(ANA, where, gate)
        await live.api.wait_for_calls_async("editMessageText", edits + 1)
        assert "18 años" in live.api.message(*where)["text"]
        assert wired.app.current_fragment(ANA).fragment_id == before.fragment_id  # type: ignore[union-attr]
        consent = ConsentButton().pack()
        assert live.buttons(*where) == [consent]
        assert "Gracias por confiar" in await live.press(ANA, where, consent)
        assert "Gracias por confiar" in await live.press(ANA, where, consent)  # twice: once
        assert "Sigamos" in await live.press(ANA, where, gate)
        assert wired.app.current_fragment(ANA).vip_fragment  # type: ignore[union-attr]

    following(wired, scenario)
    confirmed = of_user(wired, ANA, "AdultContentConfirmed")
    assert len(confirmed) == 1 and confirmed[0].actor == f"tg:user:{ANA}"


def test_a_queued_vip_invitation_is_sent_once_through_the_follower(wired: Services) -> None:
    policies = wired.policies
    assert policies is not None

    async def scenario(live: Live) -> None:
        where, gate = await walk_to_the_vip_gate(live, ANA)
        assert "sólo para VIP" in await live.press(ANA, where, gate)
        await live.api.wait_for_calls_async("answerCallbackQuery", 1)
        policies.catch_up()  # vip-conversion queues the invitation
        await until(lambda: any("Escribe /vip" in t for t in texts_to(live, ANA)))

    following(wired, scenario)
    assert len(of_user(wired, ANA, "VipInvitationQueued")) == 1
    notices = of_user(wired, ANA, "VipNoticeSent")
    assert [(n.kind, n.delivered) for n in notices] == [("vip_invitation", True)]


def test_a_payment_is_never_throttled(wired: Services) -> None:
    """A flooding user's updates are dropped, but not a payment: Telegram sends it once."""

    async def scenario(live: Live) -> None:
        await live.ask(ANA, "/start")  # the one update the bucket allows
        live.api.inject_message(ANA, "/profile")  # dropped (she is told once)
        live.api.inject_pre_checkout_query(ANA, payload_for(ANA, PRICE), PRICE)
        await live.api.wait_for_calls_async("answerPreCheckoutQuery", 1)
        await pay(live, ANA, "stxFLOOD")
        await until(lambda: len(logged(wired, "StarsPaymentReceived")) == 1)

    run(wired, scenario, throttle=UserThrottle(burst=1, per_second=0.001))
    assert wired.app.get_player(ANA).vip_references  # type: ignore[union-attr]


def test_a_payment_waits_out_a_short_store_outage_and_is_recorded_once(
    wired: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram sends a payment once: the bot tries again while the store is unavailable."""
    from dianabot.adapters.telegram import context
    from dianabot.adapters.telegram.routers import vip as vip_router
    from dianabot.application.commands import RecordStarsPayment
    from dianabot.application.coordinator import ActionResult, Issue
    from dianabot.application.results import CommandResult

    monkeypatch.setattr(vip_router, "PAYMENT_RETRIES", (0.01, 0.01, 0.01))
    original = context.Gateway.issue
    outages = [2]

    async def flaky(self: Any, command: Any, user_id: int) -> ActionResult:
        if isinstance(command, RecordStarsPayment) and outages[0] > 0:
            outages[0] -= 1
            down = CommandResult("unavailable", "the store is down")
            return ActionResult(Issue(command, self.origin(user_id)), down)
        return await original(self, command, user_id)

    monkeypatch.setattr(context.Gateway, "issue", flaky)

    async def scenario(live: Live) -> None:
        await live.ask(ANA, "/start")
        assert "Ya eres VIP" in await pay(live, ANA, "stxOUTAGE")
        outages[0] = 10  # down for longer than the bot waits
        assert "stxLONG" in await pay(live, ANA, "stxLONG")  # told how to get help
        outages[0] = 0
        assert "ya lo tenía apuntado" in await pay(live, ANA, "stxOUTAGE")

    run(wired, scenario)
    assert [p.charge_id for p in logged(wired, "StarsPaymentReceived")] == ["stxOUTAGE"]
