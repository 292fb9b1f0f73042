"""Refunding a Telegram Stars payment, for the bot's `/refund` and `dianabot admin refund`.

Telegram first (`refundStarPayment`: the Stars go back to the user), then the refund recorded
(`RefundStarsPayment`: `StarsPaymentRefunded` and the VIP days taken back, together). A charge
Telegram says it already refunded (refunded elsewhere, or a refund whose record failed) is
recorded all the same; one Telegram refuses otherwise, or cannot be asked about, records
nothing. The caller says how a command is run (the bot through its gateway, with the update's
origin; the console through the bus) and how each outcome is told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramServerError,
)
from dianabot.application.commands import RefundStarsPayment
from dianabot.application.results import CommandResult
from dianabot.application.service import DianaApplication
from dianabot.domain.vip import StarsPayment

log = logging.getLogger(__name__)

OK = "ok"
UNKNOWN_CHARGE = "unknown_charge"
"""No payment with that charge id is recorded (or it is another user's)."""
ALREADY_REFUNDED = "already_refunded"
"""The recorded payment was refunded already: nothing asked of Telegram."""
TELEGRAM_REFUSED = "telegram_refused"
"""Telegram answered the refund with an error: nothing recorded."""
TELEGRAM_UNREACHABLE = "telegram_unreachable"
"""The Bot API server did not answer: nothing recorded."""


@dataclass(frozen=True)
class Refund:
    """What became of one refund: `outcome` is one of the names above or, once Telegram
    refunded, the recording command's outcome."""

    outcome: str
    message: str
    payment: StarsPayment | None = None
    result: CommandResult | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == OK


async def refund_stars_payment(
    bot: Bot,
    app: DianaApplication,
    charge: str,
    *,
    admin_id: int,
    reason: str,
    record: Callable[[RefundStarsPayment], Awaitable[CommandResult]],
    user: int | None = None,
    notice: str | None = None,
) -> Refund:
    """Refund the payment `charge` (of `user`, when given) through Telegram, `record` it, then
    send its user `notice` (if given; a user who blocked the bot is not told)."""
    payment = await asyncio.to_thread(app.stars_payment, charge)
    if payment is None or (user is not None and payment.telegram_id != user):
        whose = "" if user is None else f" of user {user}"
        return Refund(UNKNOWN_CHARGE, f"no payment {charge}{whose} is recorded")
    if payment.refunded_at is not None:
        return Refund(
            ALREADY_REFUNDED,
            f"payment {charge} was already refunded ({payment.refunded_at:%Y-%m-%d %H:%M} UTC)",
            payment,
        )
    try:
        await bot.refund_star_payment(
            user_id=payment.telegram_id, telegram_payment_charge_id=charge
        )
    except TelegramBadRequest as error:
        if "ALREADY_REFUNDED" not in error.message:
            log.warning("Telegram refused to refund %s: %s", charge, error.message)
            return Refund(TELEGRAM_REFUSED, error.message, payment)
        log.info("Telegram had refunded %s already: recording it", charge)
    except (TelegramNetworkError, TelegramServerError, OSError, TimeoutError) as error:
        log.warning("no answer from the Bot API server to refund %s: %s", charge, error)
        return Refund(TELEGRAM_UNREACHABLE, str(error) or type(error).__name__, payment)
    except (TelegramAPIError, ClientDecodeError) as error:
        log.warning("Telegram refused to refund %s: %s", charge, error)
        return Refund(TELEGRAM_REFUSED, str(error), payment)
    command = RefundStarsPayment(
        payment.telegram_id, charge_id=charge, admin_id=admin_id, reason=reason
    )
    result = await record(command)
    if not result.ok:
        log.error(
            "payment %s refunded by Telegram but NOT recorded: %s (%s); run the refund again",
            charge, result.outcome, result.message,
        )  # fmt: skip
        return Refund(result.outcome, result.message, payment, result)
    if notice is not None:
        try:
            await bot.send_message(payment.telegram_id, notice)
        except (TelegramForbiddenError, TelegramBadRequest) as error:
            log.info("refund notice to %s not delivered: %s", payment.telegram_id, error)
    return Refund(OK, result.message, payment, result)
