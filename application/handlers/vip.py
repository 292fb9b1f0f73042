"""Handlers of the VIP context: issue and redeem one-time tokens, grant and expire periods.

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
    ExpireVip,
    GrantVip,
    InviteToVip,
    IssueVipToken,
    RedeemVipToken,
)
from dianabot.application.plans import Handler, Plan
from dianabot.application.results import CommandResult
from dianabot.domain.cause import Cause
from dianabot.domain.ids import vip_token_id
from dianabot.domain.player import Player
from dianabot.domain.vip import InvalidToken, VipToken, checked_days, hash_token

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
}
