"""VIP: `/vip` (the user's state, and the offer: a Telegram Stars subscription or besitos),
redeeming a token (`/start vip-<code>`), the payment flow (pre-checkout, successful payment,
renewals), `/paysupport`, the admin's `/refund CHARGE_ID`, and the VIP channel's members.

Payments: `/vip` makes an invoice link (`createInvoiceLink`, currency XTR, `subscription_period`
30 days) whose payload names the user and the price (`vip-stars:<user>:<price>`). The
pre-checkout query is answered ok only for our payload, from that user, in Stars, at that price.
A successful payment (the first one and every renewal, each with its own charge id) is
`RecordStarsPayment`: recorded once per charge id, 30 more days of VIP. A cancelled subscription
simply sends no renewal: the period runs out and the expiry job ends it.

The VIP channel (`DIANABOT_VIP_CHANNEL_ID`): the bot must be an administrator there, and it
receives `chat_member` updates. A user who joins through a link the bot made for someone else
(the link's name is `vip:<user id>`), or who is not VIP, is removed at once (ban then unban)
and told why; a link used by someone else is revoked and its owner gets a new one (the
vip-channel follower reacts to `VipChannelChanged` "revoked"). Joins and leaves are recorded.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
)
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import (
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder
from dianabot.adapters.telegram.callbacks import VipBesitosButton
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.refunds import (
    ALREADY_REFUNDED,
    TELEGRAM_REFUSED,
    TELEGRAM_UNREACHABLE,
    UNKNOWN_CHARGE,
    refund_stars_payment,
)
from dianabot.adapters.telegram.routers.common import number, refusal, registered
from dianabot.adapters.telegram.texts import T
from dianabot.application.commands import (
    BuyVipWithBesitos,
    RecordStarsPayment,
    RecordVipChannel,
    RedeemVipToken,
    RefundStarsPayment,
)
from dianabot.application.coordinator import Issue
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.vip import (
    STARS_SUBSCRIPTION_DAYS,
    STARS_SUBSCRIPTION_PERIOD,
    VIP_BESITOS_COST,
    VIP_BESITOS_DAYS,
)

log = logging.getLogger(__name__)

TOKEN_REFUSALS = {
    "invalid_token": T.VIP_TOKEN_INVALID,
    "token_used": T.VIP_TOKEN_USED,
    "token_expired": T.VIP_TOKEN_EXPIRED,
}
DATE = "%d/%m/%Y"
PAYLOAD_PREFIX = "vip-stars"
LINK_PREFIX = "vip:"
"""The name of an invite link the bot made for one user: `vip:<telegram id>`."""
JOINED = frozenset({"member", "administrator", "creator", "restricted"})
PAYMENT_RETRIES = (1.0, 2.0, 4.0, 8.0, 15.0)
"""Seconds between the attempts to record a payment while the store is unavailable; after
the last the payment is logged (charge id, user) for an admin and the user told to write
/paysupport. The same update then delivered again records it once."""


def day(moment: datetime | None) -> str:
    return f"{moment:{DATE}}" if moment else "—"


async def redeem(gw: Gateway, user_id: int, token: str) -> str:
    """Redeem a VIP token for the user; the text to answer."""
    result = await gw.issue(RedeemVipToken(user_id, token), user_id)
    if result.ok:
        player = await gw.player(user_id)
        until = player.vip_until if player is not None else None
        return gw.texts(T.VIP_REDEEMED, until=day(until))
    if result.outcome in TOKEN_REFUSALS:
        return gw.texts(TOKEN_REFUSALS[result.outcome])
    return refusal(gw, result)


# ----- /vip: the state and the offer ---------------------------------------------------------


def payload_for(user_id: int, price: int) -> str:
    return f"{PAYLOAD_PREFIX}:{user_id}:{price}"


def payload_valid(payload: str, user_id: int, currency: str, amount: int) -> bool:
    """Ours, for this user, in Stars, at the price it names."""
    parts = payload.split(":")
    return (
        len(parts) == 3
        and parts[0] == PAYLOAD_PREFIX
        and parts[1] == str(user_id)
        and currency == "XTR"
        and amount == number(parts[2])
    )


async def invoice_link(bot: Bot, gw: Gateway, user_id: int) -> str | None:
    """A 30-day Stars subscription invoice for this user (None if the Bot API refused)."""
    price = gw.settings.vip_stars_price
    try:
        return await bot.create_invoice_link(
            title=gw.texts(T.VIP_INVOICE_TITLE),
            description=gw.texts(T.VIP_INVOICE_DESCRIPTION),
            payload=payload_for(user_id, price),
            currency="XTR",
            prices=[LabeledPrice(label=gw.texts(T.VIP_INVOICE_LABEL), amount=price)],
            subscription_period=STARS_SUBSCRIPTION_PERIOD,
        )
    except (TelegramAPIError, ClientDecodeError) as error:
        log.warning("no invoice link for user %s: %s", user_id, error)
        return None


async def vip(message: Message, bot: Bot, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    refused = await registered(gw, user)
    if refused is not None:
        await message.answer(refusal(gw, refused))
        return
    player = await gw.player(user.id)
    until = player.vip_until if player is not None else None
    if until is None:
        status = gw.texts(T.VIP_INACTIVE)
    elif until > gw.now():
        status = gw.texts(T.VIP_ACTIVE, until=day(until))
    else:
        status = gw.texts(T.VIP_EXPIRED, until=day(until))
    price = gw.settings.vip_stars_price
    balance = player.balance if player is not None else 0
    offer = gw.texts(
        T.VIP_OFFER, price=price, cost=VIP_BESITOS_COST, days=VIP_BESITOS_DAYS, balance=balance
    )
    keyboard = InlineKeyboardBuilder()
    link = await invoice_link(bot, gw, user.id)
    if link is not None:
        keyboard.button(text=gw.texts(T.VIP_BUTTON_STARS, price=price), url=link)
    keyboard.button(
        text=gw.texts(T.VIP_BUTTON_BESITOS, cost=VIP_BESITOS_COST), callback_data=VipBesitosButton()
    )
    keyboard.adjust(1)
    markup: InlineKeyboardMarkup = keyboard.as_markup()
    await message.answer(f"{status}\n\n{offer}", reply_markup=markup)


async def buy_with_besitos(query: CallbackQuery, gw: Gateway) -> None:
    user = query.from_user
    refused = await registered(gw, user)
    if refused is not None:
        await query.answer(refusal(gw, refused), show_alert=True)
        return
    result = await gw.issue(BuyVipWithBesitos(user.id), user.id)
    if result.ok:
        until = result.details.get("vip_until")
        text = gw.texts(
            T.VIP_BESITOS_OK, cost=VIP_BESITOS_COST, days=VIP_BESITOS_DAYS, until=day(until)
        )
    elif result.outcome == "insufficient_points":
        text = gw.texts(
            T.VIP_BESITOS_SHORT, cost=VIP_BESITOS_COST, balance=result.details.get("balance", 0)
        )
    else:
        text = refusal(gw, result)
    await query.answer(text, show_alert=True)


# ----- payments ------------------------------------------------------------------------------


async def pre_checkout(query: PreCheckoutQuery, gw: Gateway) -> None:
    """Answer ok only for our payload, from its user, in Stars, at its price (10 s limit)."""
    valid = payload_valid(
        query.invoice_payload, query.from_user.id, query.currency, query.total_amount
    )
    if valid:
        await query.answer(ok=True)
    else:
        user, payload = query.from_user.id, query.invoice_payload
        log.warning("pre-checkout refused for user %s: %r", user, payload)
        await query.answer(ok=False, error_message=gw.texts(T.VIP_PRECHECKOUT_REFUSED))


async def paid(message: Message, gw: Gateway) -> None:
    """A payment went through (the first, or a renewal): 30 more days, once per charge id."""
    user = message.from_user
    payment = message.successful_payment
    if user is None or payment is None:
        return
    charge = payment.telegram_payment_charge_id
    if not payload_valid(payment.invoice_payload, user.id, payment.currency, payment.total_amount):
        log.error("payment %s of user %s has a payload that is not ours", charge, user.id)
        await message.answer(gw.texts(T.VIP_PAYMENT_UNKNOWN))
        return
    refused = await registered(gw, user)
    if refused is not None:
        await message.answer(refusal(gw, refused))
        return
    expires = payment.subscription_expiration_date
    command = RecordStarsPayment(
        user.id,
        charge_id=charge,
        amount=payment.total_amount,
        currency=payment.currency,
        payload=payment.invoice_payload,
        days=STARS_SUBSCRIPTION_DAYS,
        is_recurring=bool(payment.is_recurring),
        is_first_recurring=bool(payment.is_first_recurring),
        subscription_expiration_date=(
            datetime.fromtimestamp(expires, UTC) if expires is not None else None
        ),
    )
    result = await gw.issue(command, user.id)
    for wait in PAYMENT_RETRIES:  # Telegram sends a payment once: wait out a short outage
        if result.outcome != "unavailable":
            break
        log.warning(
            "payment %s of user %s: store unavailable, retrying in %s s", charge, user.id, wait
        )
        await asyncio.sleep(wait)
        result = await gw.issue(command, user.id)
    if result.ok:
        until = day(result.details.get("vip_until"))
        renewal = payment.is_recurring and not payment.is_first_recurring
        await message.answer(gw.texts(T.VIP_RENEWED if renewal else T.VIP_PAID, until=until))
    elif result.outcome == "duplicate":
        await message.answer(gw.texts(T.VIP_PAYMENT_DUPLICATE))
    else:
        log.error("payment %s of user %s NOT recorded: %s", charge, user.id, result.outcome)
        await message.answer(gw.texts(T.VIP_PAYMENT_NOT_RECORDED, charge=charge))


async def paysupport(message: Message, gw: Gateway) -> None:
    await message.answer(gw.texts(T.VIP_PAYSUPPORT))


class IsAdmin(Filter):
    async def __call__(self, message: Message, gw: Gateway) -> bool:
        return message.from_user is not None and gw.is_admin(message.from_user.id)


async def refund_refused(message: Message, gw: Gateway) -> None:
    await message.answer(gw.texts(T.ADMIN_REFUSED))


async def refund(message: Message, command: CommandObject, bot: Bot, gw: Gateway) -> None:
    """`/refund CHARGE_ID`: Telegram's `refundStarPayment` first, then the refund recorded
    (its VIP days taken back): `refunds.refund_stars_payment`, as `dianabot admin refund`."""
    admin = message.from_user
    assert admin is not None  # IsAdmin
    charge = (command.args or "").strip()
    if not charge or " " in charge:
        await message.answer(gw.texts(T.ADMIN_REFUND_USAGE))
        return

    async def record(refund_command: RefundStarsPayment) -> CommandResult:
        return (await gw.issue(refund_command, admin.id)).result

    done = await refund_stars_payment(
        bot,
        gw.services.app,
        charge,
        admin_id=admin.id,
        reason="/refund",
        record=record,
        notice=gw.texts(T.VIP_REFUNDED),
    )
    if done.outcome == UNKNOWN_CHARGE:
        await message.answer(gw.texts(T.ADMIN_REFUND_UNKNOWN))
        return
    if done.outcome == ALREADY_REFUNDED:
        await message.answer(gw.texts(T.ADMIN_REFUND_ALREADY))
        return
    if done.outcome in (TELEGRAM_REFUSED, TELEGRAM_UNREACHABLE):
        await message.answer(gw.texts(T.ADMIN_REFUND_FAILED, error=done.message))
        return
    payment = done.payment
    if not done.ok or payment is None:
        assert done.result is not None  # recorded, or refused by the rules
        await message.answer(refusal(gw, done.result))
        return
    player = await gw.player(payment.telegram_id)
    until = day(player.vip_until if player is not None else None)
    await message.answer(
        gw.texts(T.ADMIN_REFUND_OK, amount=payment.amount, user=payment.telegram_id, until=until)
    )


# ----- the VIP channel's members -------------------------------------------------------------


class InVipChannel(Filter):
    async def __call__(self, update: ChatMemberUpdated, gw: Gateway) -> bool:
        channel = gw.settings.vip_channel_id
        return channel is not None and update.chat.id == channel


def intended_for(update: ChatMemberUpdated) -> int | None:
    """The user the invite link used was made for (None: not one of the bot's links)."""
    link = update.invite_link
    name = (link.name or "") if link is not None else ""
    rest = name.removeprefix(LINK_PREFIX)
    return number(rest) if name.startswith(LINK_PREFIX) else None


async def remove(bot: Bot, chat_id: int, user_id: int) -> None:
    await bot.ban_chat_member(chat_id, user_id)
    await bot.unban_chat_member(chat_id, user_id, only_if_banned=True)


async def tell(bot: Bot, user_id: int, text: str) -> None:
    try:
        await bot.send_message(user_id, text)
    except (TelegramForbiddenError, TelegramBadRequest) as error:
        log.info("notice to %s not delivered: %s", user_id, error)


async def channel_member(update: ChatMemberUpdated, bot: Bot, gw: Gateway) -> None:
    user = update.new_chat_member.user
    if user.is_bot or gw.is_admin(user.id):
        return
    status = update.new_chat_member.status
    link = update.invite_link.invite_link if update.invite_link is not None else ""
    if status not in JOINED:
        await gw.issue(RecordVipChannel(user.id, change="left", detail=str(status)), user.id)
        return
    owner = intended_for(update)
    if owner is not None and owner != user.id:
        # Someone else's one-use link: out, the link revoked, its owner gets a new one.
        log.warning("user %s joined the VIP channel with the link of %s", user.id, owner)
        await remove(bot, update.chat.id, user.id)
        try:
            await bot.revoke_chat_invite_link(update.chat.id, link)
        except TelegramBadRequest as error:
            log.info("link already revoked: %s", error.message)
        origin = Origin.system("vip-channel", f"{gw.bot_id}:{gw.update_id}:revoked")
        revoked = RecordVipChannel(
            owner, change="revoked", invite_link=link, detail=f"used by {user.id}"
        )
        await gw.services.coordinator.execute(Issue(revoked, origin))
        await tell(bot, user.id, gw.texts(T.VIP_INTRUDER))
        return
    player = await gw.player(user.id)
    if player is None or not player.vip_active(gw.now()):
        log.warning("user %s joined the VIP channel without VIP", user.id)
        await remove(bot, update.chat.id, user.id)
        await tell(bot, user.id, gw.texts(T.VIP_NOT_MEMBER))
        return
    await gw.issue(RecordVipChannel(user.id, change="joined", invite_link=link), user.id)


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="vip")
    router.message.register(vip, Command("vip"))
    router.message.register(paysupport, Command("paysupport"))
    router.message.register(refund_refused, Command("refund"), ~IsAdmin())
    router.message.register(refund, Command("refund"))
    router.message.register(paid, F.successful_payment)
    router.pre_checkout_query.register(pre_checkout)
    router.callback_query.register(buy_with_besitos, VipBesitosButton.filter())
    router.chat_member.register(channel_member, InVipChannel())
    return router
