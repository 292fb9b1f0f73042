"""VIP tokens: one-time codes an admin issues and a user redeems for a VIP period.

Only the sha256 of a token's secret is ever recorded, so the event history (backups, exports,
audits) cannot be used to redeem a token. The token's aggregate id is derived from that hash, so
looking a token up needs no table, and a second redemption is refused by the token's own state.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any
from uuid import UUID

from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError, InvalidInput
from dianabot.domain.ids import stars_payment_id, vip_token_id
from dianabot.domain.recent import RecentKeys
from eventsourcing.domain import event

TOKEN_PREFIX = "vip-"
"""Tokens read `vip-<secret>`, so the deep link is `/start vip-<secret>`."""

SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,60}$")
"""What `secrets.token_urlsafe` produces; Telegram deep-link payloads allow 64 such characters."""

VIP_SOURCES = ("token", "stars", "admin", "besitos")
"""Where a VIP period can come from (`VipGranted.source`): a redeemed token, a Telegram Stars
payment (its charge id), an admin, or besitos spent (`PointsSpent` purpose `vip`, same command)."""

STARS_SUBSCRIPTION_DAYS = 30
"""Days of VIP one Telegram Stars subscription payment buys (the first, and every renewal)."""

STARS_SUBSCRIPTION_PERIOD = 2_592_000
"""`subscription_period` of the invoice: 30 days in seconds, the only period Telegram allows."""

VIP_BESITOS_COST = 1000
"""Besitos for `VIP_BESITOS_DAYS` of VIP (the spec's VIP-with-points; the number is ours)."""

VIP_BESITOS_DAYS = 30

VIP_SPEND_PURPOSE = "vip"
"""`PointsSpent.purpose` of VIP bought with besitos."""

CHARGE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
"""What a `telegram_payment_charge_id` looks like (letters, digits, a few separators)."""

PAID_SOURCES = frozenset({"stars", "token"})
"""Sources whose reference identifies what was paid for (a Telegram Stars charge id, a redeemed
token): a Player extends VIP once per such reference, forever, whatever update delivers it.
An admin's reference is a free-text reason, which may repeat."""

MAX_VIP_DAYS = 3660
"""Sanity cap on one grant (ten years): larger numbers are typos."""


class InvalidToken(DomainError):
    """Unknown, forged or malformed: the same answer, so a guesser learns nothing."""

    code = "invalid_token"


class TokenUsed(DomainError):
    code = "token_used"


class TokenExpired(DomainError):
    code = "token_expired"


class VipNotDue(DomainError):
    """Expiry asked for a player whose period has not ended (or was already recorded as ended)."""

    code = "vip_not_due"


def token_secret(token: object) -> str:
    """The secret of `vip-<secret>` (a bare secret is accepted too); InvalidToken if malformed."""
    if not isinstance(token, str):
        raise InvalidToken("that is not a VIP token")
    text = token.strip()
    secret = text[len(TOKEN_PREFIX) :] if text.startswith(TOKEN_PREFIX) else text
    if not SECRET_PATTERN.match(secret):
        raise InvalidToken("that is not a VIP token")
    return secret


def hash_token(token: object) -> str:
    """sha256 (hex) of the token's secret: the only form in which a token is ever stored."""
    return hashlib.sha256(token_secret(token).encode("ascii")).hexdigest()


def checked_days(days: object) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_VIP_DAYS:
        raise InvalidInput(
            f"VIP days must be a whole number from 1 to {MAX_VIP_DAYS}, got {days!r}"
        )
    return days


class VipToken(DianaAggregate):
    """One issued token: issued (hash, days, issuer, deadline), then redeemed at most once."""

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        return vip_token_id(token_hash)

    @classmethod
    def issue(
        cls, token_hash: str, days: int, issued_by: int, expires_at: datetime, cause: Cause
    ) -> VipToken:
        if not re.fullmatch(r"[0-9a-f]{64}", token_hash or ""):
            raise InvalidInput("a token is stored as its sha256 hex digest")
        if expires_at <= cause.at:
            raise InvalidInput("a token must be redeemable for some time after it is issued")
        return cls(
            token_hash=token_hash,
            days=checked_days(days),
            issued_by=issued_by,
            expires_at=expires_at,
            **cause.event_fields(),
        )

    @event("VipTokenIssued")
    def __init__(
        self,
        token_hash: str,
        days: int,
        issued_by: int,
        expires_at: datetime,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.token_hash = token_hash
        self.days = days
        self.issued_by = issued_by
        self.expires_at = expires_at
        self.redeemed_by: int | None = None
        self.redeemed_at: datetime | None = None
        self.recent_commands = RecentKeys()

    def redeem(self, telegram_id: int, cause: Cause) -> None:
        """Once only, and only before the deadline; the caller grants the VIP period atomically."""
        self._refuse_duplicate("redeem", cause)
        if self.redeemed_by is not None:
            raise TokenUsed("this VIP token has already been used")
        if cause.at >= self.expires_at:
            raise TokenExpired(
                "this VIP token expired before it was used", expired_at=self.expires_at
            )
        self._redeemed(telegram_id=telegram_id, **cause.event_fields())

    def describe(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "issued_by": self.issued_by,
            "expires_at": self.expires_at,
            "redeemed_by": self.redeemed_by,
        }

    @event("VipTokenRedeemed")
    def _redeemed(self, telegram_id: int, timestamp: datetime, causation: str, actor: str) -> None:
        self.redeemed_by = telegram_id
        self.redeemed_at = timestamp
        self._remember("redeem", causation, timestamp)


# ----- Telegram Stars payments ------------------------------------------------------------------


class UnknownCharge(DomainError):
    """No recorded payment has this charge id (or it is another user's)."""

    code = "unknown_charge"


class AlreadyRefunded(DomainError):
    code = "already_refunded"


def checked_charge(charge_id: object) -> str:
    if not isinstance(charge_id, str) or not CHARGE_PATTERN.match(charge_id):
        raise InvalidInput(f"not a Telegram payment charge id: {charge_id!r}")
    return charge_id


class StarsPayment(DianaAggregate):
    """One Telegram Stars payment, by its charge id: received once (version 1 of its stream is
    written once, so the same charge delivered twice, by any update or process, is recorded once),
    then refunded at most once. The Player's `VipGranted(source="stars", reference=charge id)` is
    saved with it; a refund shortens that period (`VipShortened`) in the same transaction."""

    @staticmethod
    def create_id(charge_id: str) -> UUID:
        return stars_payment_id(charge_id)

    @classmethod
    def receive(
        cls,
        charge_id: str,
        telegram_id: int,
        amount: int,
        currency: str,
        payload: str,
        days: int,
        is_recurring: bool,
        is_first_recurring: bool,
        subscription_expiration_date: datetime | None,
        cause: Cause,
    ) -> StarsPayment:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise InvalidInput(f"a payment amount is a positive whole number, got {amount!r}")
        return cls(
            charge_id=checked_charge(charge_id),
            telegram_id=telegram_id,
            amount=amount,
            currency=str(currency)[:8],
            payload=str(payload)[:128],
            days=checked_days(days),
            is_recurring=bool(is_recurring),
            is_first_recurring=bool(is_first_recurring),
            subscription_expiration_date=subscription_expiration_date,
            **cause.event_fields(),
        )

    @event("StarsPaymentReceived")
    def __init__(
        self,
        charge_id: str,
        telegram_id: int,
        amount: int,
        currency: str,
        payload: str,
        days: int,
        is_recurring: bool,
        is_first_recurring: bool,
        subscription_expiration_date: datetime | None,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.charge_id = charge_id
        self.telegram_id = telegram_id
        self.amount = amount
        self.currency = currency
        self.days = days
        self.received_at = timestamp
        self.refunded_at: datetime | None = None
        self.recent_commands = RecentKeys()

    def refund(self, admin_id: int, reason: str, cause: Cause) -> None:
        """Once only; the caller calls Telegram's `refundStarPayment` first."""
        self._refuse_duplicate("refund", cause)
        if self.refunded_at is not None:
            raise AlreadyRefunded(f"payment {self.charge_id} was already refunded")
        reason = str(reason)[:200] or "refund"
        self._refunded(admin_id=admin_id, reason=reason, **cause.event_fields())

    @event("StarsPaymentRefunded")
    def _refunded(
        self, admin_id: int, reason: str, timestamp: datetime, causation: str, actor: str
    ) -> None:
        self.refunded_at = timestamp
        self._remember("refund", causation, timestamp)
