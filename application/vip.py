"""Use cases of the VIP context: issue and redeem one-time tokens, grant periods, expire them.

Tokens: the plaintext is generated with the `IssueVipToken` command (`secrets`), returned once
in the issuing result's details and never stored or logged; the store keeps only its sha256
(`VipTokenIssued.token_hash`) and derives the token's aggregate id from it.

The single-command methods are blocking shorthands for commands on the bus (handled by
`application.handlers.vip`); `expire_due_vips` issues an `ExpireVip` per due player.

Expiry (`expire_due_vips`) has to find the players whose period ended. It reads the notification
log, filtered by the `VipGranted` topic, rather than keeping a schedule aggregate: a single
schedule would be a hot aggregate every grant contends on, and the log is already the durable,
ordered list of every grant. The application remembers (in memory) the position it has read up to
and the players seen with a grant; each run reads only new grants, then loads those players and
expires the due ones. After a restart the first run rescans from the beginning, which is correct
because the candidates are rebuilt from the history itself. Each expiry's causation names the
player and the period's end, so two processes running the job expire a period once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    DEFAULT_TOKEN_VALIDITY_DAYS,
    ExpireVip,
    GrantVip,
    IssueVipToken,
    RedeemVipToken,
)
from dianabot.application.handlers.vip import stars_payment
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.player import Player
from dianabot.domain.vip import StarsPayment

log = logging.getLogger(__name__)

DEFAULT_VIP_DAYS = 30

EXPIRY_JOB = "vip-expiry"


@dataclass
class _VipWatch:
    """What the expiry job has read of the log: position and players seen with a grant."""

    position: int = 0
    players: set[UUID] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class VipExpiryRun:
    """One run of the expiry job: who was expired, who could not be (code), log position read."""

    expired: tuple[int, ...]
    failed: dict[int, str]
    position: int
    watching: int


class VipCommands(CoreApplication):
    def issue_vip_token(
        self,
        admin_id: int,
        days: int,
        origin: Origin,
        valid_days: int = DEFAULT_TOKEN_VALIDITY_DAYS,
    ) -> CommandResult:
        """An admin issues a one-time token worth `days` of VIP, redeemable for `valid_days`.

        The plaintext token is in `details["token"]` of this result only.
        """
        return self.bus.handle(IssueVipToken(admin_id, days, valid_days), origin)

    def redeem_vip_token(self, telegram_id: int, token: str, origin: Origin) -> CommandResult:
        """Redeem a token: VipTokenRedeemed and the Player's VipGranted (source "token"), saved
        together. Refusals: invalid_token (malformed, unknown or forged), token_used,
        token_expired, unknown_user, duplicate."""
        return self.bus.handle(RedeemVipToken(telegram_id, token), origin)

    def grant_vip(
        self, telegram_id: int, days: int, source: str, reference: str, origin: Origin
    ) -> CommandResult:
        """A VIP period from elsewhere: a Telegram Stars subscription payment (source "stars",
        reference the charge id) or an admin (source "admin"). Extends an active period."""
        return self.bus.handle(GrantVip(telegram_id, days, source, reference), origin)

    def stars_payment(self, charge_id: str) -> StarsPayment | None:
        """The recorded Telegram Stars payment with this charge id (None if unknown)."""
        return stars_payment(self, charge_id)

    def vip_until(self, telegram_id: int) -> datetime | None:
        """End of the user's VIP period if it is active now, else None."""
        player = self.get_player(telegram_id)
        if player is None or not player.vip_active(self.clock.now()):
            return None
        return player.vip_until

    def expire_due_vips(self) -> VipExpiryRun:
        """The expiry job: record VipExpired for every player whose VIP period has ended.

        Time comes from the application's injected clock (a ManualClock in tests and the demo).
        """
        watch: _VipWatch = self.__dict__.setdefault("_vip_watch", _VipWatch())
        with watch.lock:
            # The @event decorator defines Player.VipGranted when the class is created.
            granted = Player.VipGranted  # type: ignore[attr-defined]
            for notification in self.scan_notifications([granted], watch.position + 1):
                watch.players.add(UUID(str(notification.originator_id)))
                watch.position = notification.id
            now = self.clock.now()
            expired: list[int] = []
            failed: dict[int, str] = {}
            for aggregate_id in sorted(watch.players):
                player = self._load(aggregate_id)
                if player is None:
                    watch.players.discard(aggregate_id)
                    continue
                until = player.vip_expiry_due(now)
                if until is None:
                    if not player.vip_active(now):
                        watch.players.discard(aggregate_id)  # back on its next VipGranted
                    continue
                result = self._expire(player.telegram_id, until)
                if result.ok and result.events:
                    expired.append(player.telegram_id)
                    watch.players.discard(aggregate_id)
                elif result.ok or result.outcome in {"vip_not_due", "duplicate"}:
                    continue  # another process got there first, or a grant just extended it
                else:
                    failed[player.telegram_id] = result.outcome
            if expired:
                log.info("VIP expired for %d user(s)", len(expired))
            return VipExpiryRun(tuple(expired), failed, watch.position, len(watch.players))

    def _expire(self, telegram_id: int, until: datetime) -> CommandResult:
        origin = Origin.system(EXPIRY_JOB, f"{telegram_id}:{until.isoformat()}")
        return self.bus.handle(ExpireVip(telegram_id), origin)
