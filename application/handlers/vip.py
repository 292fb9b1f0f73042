"""Handlers of the VIP context: issue and redeem one-time tokens, grant and expire periods,
Telegram Stars payments and refunds (a `StarsPayment` stream per charge id, saved with the
Player), VIP with besitos (spend and grant in one save), the age and consent confirmation, and
the records of what the bot did in the VIP channel.

A token's plaintext comes with its `IssueVipToken` command and goes back to the issuer in the
result's details only; the store keeps its sha256 (`VipTokenIssued.token_hash`), from which the
token's aggregate id is derived.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    BuyVipWithBesitos,
    ConfirmAdult,
    ExpireVip,
    GrantVip,
    InviteToVip,
    IssueVipToken,
    RecordStarsPayment,
    RecordVipChannel,
    RecordVipNotice,
    RedeemVipToken,
    RefundStarsPayment,
)
from dianabot.application.plans import Handler, Plan
from dianabot.application.results import CommandResult
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError, DuplicateCommand
from dianabot.domain.ids import stars_payment_id, vip_token_id
from dianabot.domain.player import Player
from dianabot.domain.vip import (
    InvalidToken,
    StarsPayment,
    UnknownCharge,
    VipToken,
    checked_charge,
    checked_days,
    hash_token,
)

log = logging.getLogger(__name__)


def issue_vip_token(app: CoreApplication, command: IssueVipToken) -> Plan:
    token_hash = command.token_hash

    def decide(cause: Cause) -> list[VipToken]:
        validity = timedelta(days=checked_days(command.valid_days))
        return [
            VipToken.issue(token_hash, command.days, command.admin_id, cause.at + validity, cause)
        ]

    def finish(result: CommandResult) -> CommandResult:
        if not result.ok:
            return result
        issued = result.events[0].fields
        log.info("VIP token issued by %s for %s days", command.admin_id, command.days)
        return result.with_details(
            token=command.token,
            days=command.days,
            expires_at=issued["expires_at"],
            token_id=str(vip_token_id(token_hash)),
        )

    return Plan(decide, finish)


def redeem_vip_token(app: CoreApplication, command: RedeemVipToken) -> Plan:
    telegram_id = command.telegram_id

    def decide(cause: Cause) -> list[Any]:
        token_hash = hash_token(command.token)  # InvalidToken when malformed
        player = app._player(telegram_id)
        vip_token = app._load(vip_token_id(token_hash))
        if vip_token is None:
            raise InvalidToken("that is not a VIP token")
        vip_token.redeem(telegram_id, cause)
        player.grant_vip(vip_token.days, "token", f"vip-token:{vip_token.id}", cause)
        return [vip_token, player]

    return Plan(decide, with_vip_until)


def grant_vip(app: CoreApplication, command: GrantVip) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        player.grant_vip(command.days, command.source, command.reference, cause)
        return [player]

    return Plan(decide, with_vip_until)


def expire_vip(app: CoreApplication, command: ExpireVip) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        player.expire_vip(cause)
        return [player]

    return Plan(decide)


def invite_to_vip(app: CoreApplication, command: InviteToVip) -> Plan:
    """The vip-conversion policy's effect: `VipInvitationQueued` on the Player, which the bot
    delivers."""

    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        player.invite_to_vip(
            command.story_slug,
            command.fragment_id,
            command.choice_id,
            list(command.evidence),
            cause,
        )
        return [player]

    return Plan(decide)


def buy_vip_with_besitos(app: CoreApplication, command: BuyVipWithBesitos) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        player.buy_vip_with_besitos(cause)
        return [player]

    return Plan(decide, with_vip_until)


def record_stars_payment(app: CoreApplication, command: RecordStarsPayment) -> Plan:
    def decide(cause: Cause) -> list[Any]:
        charge = checked_charge(command.charge_id)
        player = app._player(command.telegram_id)
        if app._load(stars_payment_id(charge)) is not None:
            raise DuplicateCommand(
                f"Stars payment {charge} was already recorded",
                causation=cause.causation,
                reference=charge,
            )
        payment = StarsPayment.receive(
            charge,
            command.telegram_id,
            command.amount,
            command.currency,
            command.payload,
            command.days,
            command.is_recurring,
            command.is_first_recurring,
            command.subscription_expiration_date,
            cause,
        )
        player.grant_vip(payment.days, "stars", charge, cause)
        return [payment, player]

    return Plan(decide, with_vip_until)


def refund_stars_payment(app: CoreApplication, command: RefundStarsPayment) -> Plan:
    def decide(cause: Cause) -> list[Any]:
        charge = checked_charge(command.charge_id)
        payment = app._load(stars_payment_id(charge))
        if payment is None or payment.telegram_id != command.telegram_id:
            raise UnknownCharge(f"no payment {charge} of user {command.telegram_id}")
        player = app._player(command.telegram_id)
        payment.refund(command.admin_id, command.reason, cause)
        player.shorten_vip(payment.days, "stars-refund", charge, cause)
        return [payment, player]

    return Plan(decide)


def stars_payment(app: CoreApplication, charge_id: str) -> StarsPayment | None:
    """The recorded payment with this charge id (None if unknown or malformed)."""
    try:
        charge = checked_charge(charge_id)
    except DomainError:
        return None
    payment: StarsPayment | None = app._load(stars_payment_id(charge))
    return payment


def confirm_adult(app: CoreApplication, command: ConfirmAdult) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        player.confirm_adult(command.terms, cause)
        return [player]

    return Plan(decide)


def record_vip_channel(app: CoreApplication, command: RecordVipChannel) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        changed = player.record_vip_channel(
            command.change, command.invite_link, command.detail, command.delivered, cause
        )
        return [player] if changed else []

    return Plan(decide)


def record_vip_notice(app: CoreApplication, command: RecordVipNotice) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        player.record_vip_notice(command.kind, command.reference, command.delivered, cause)
        return [player]

    return Plan(decide)


def with_vip_until(result: CommandResult) -> CommandResult:
    """The result with the end of the VIP period it granted, if it granted one."""
    granted = [e for e in result.events if e.name == "VipGranted"]
    if not granted:
        return result
    return result.with_details(vip_until=granted[-1].fields["until"])


HANDLERS: dict[type, Handler] = {
    IssueVipToken: issue_vip_token,
    RedeemVipToken: redeem_vip_token,
    GrantVip: grant_vip,
    ExpireVip: expire_vip,
    InviteToVip: invite_to_vip,
    BuyVipWithBesitos: buy_vip_with_besitos,
    RecordStarsPayment: record_stars_payment,
    RefundStarsPayment: refund_stars_payment,
    ConfirmAdult: confirm_adult,
    RecordVipChannel: record_vip_channel,
    RecordVipNotice: record_vip_notice,
}
