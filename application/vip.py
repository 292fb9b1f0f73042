"""Use cases of the VIP context: issue and redeem one-time tokens, grant periods, expire them.

Tokens: the plaintext is generated here with `secrets`, returned once in the issuing result's
details and never stored or logged; the store keeps only its sha256 (`VipTokenIssued.token_hash`)
and derives the token's aggregate id from it.

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
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dianabot.application.app import CoreApplication
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.cause import Cause
from dianabot.domain.ids import vip_token_id
from dianabot.domain.player import Player
from dianabot.domain.vip import TOKEN_PREFIX, InvalidToken, VipToken, checked_days, hash_token

log = logging.getLogger(__name__)

DEFAULT_VIP_DAYS = 30
DEFAULT_TOKEN_VALIDITY_DAYS = 30
"""How long an issued token can be redeemed."""

TOKEN_SECRET_BYTES = 24
"""32 URL-safe characters: `vip-` + 32 fits a Telegram deep-link payload (64 characters)."""

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
        token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(TOKEN_SECRET_BYTES)}"
        token_hash = hash_token(token)

        def decide(cause: Cause) -> list[VipToken]:
            self._require_admin(admin_id)
            validity = timedelta(days=checked_days(valid_days))
            return [VipToken.issue(token_hash, days, admin_id, cause.at + validity, cause)]

        def finish(result: CommandResult) -> CommandResult:
            if not result.ok:
                return result
            issued = result.events[0].fields
            log.info("VIP token issued by %s for %s days", admin_id, days)
            return result.with_details(
                token=token,
                days=days,
                expires_at=issued["expires_at"],
                token_id=str(vip_token_id(token_hash)),
            )

        return self._command(("vip-token", token_hash), decide, origin, then=finish)

    def redeem_vip_token(self, telegram_id: int, token: str, origin: Origin) -> CommandResult:
        """Redeem a token: VipTokenRedeemed and the Player's VipGranted (source "token"), saved
        together. Refusals: invalid_token (malformed, unknown or forged), token_used,
        token_expired, unknown_user, duplicate."""
        try:
            token_hash = hash_token(token)
        except InvalidToken as error:
            return CommandResult.refused(error)

        def decide(cause: Cause) -> list[Any]:
            player = self._player(telegram_id)
            vip_token = self._load(vip_token_id(token_hash))
            if vip_token is None:
                raise InvalidToken("that is not a VIP token")
            vip_token.redeem(telegram_id, cause)
            player.grant_vip(vip_token.days, "token", f"vip-token:{vip_token.id}", cause)
            return [vip_token, player]

        return self._command(telegram_id, decide, origin, then=self._with_vip_until)

    def grant_vip(
        self, telegram_id: int, days: int, source: str, reference: str, origin: Origin
    ) -> CommandResult:
        """A VIP period from elsewhere: a Telegram Stars subscription payment (source "stars",
        reference the charge id) or an admin (source "admin"). Extends an active period."""

        def decide(cause: Cause) -> list[Player]:
            player = self._player(telegram_id)
            player.grant_vip(days, source, reference, cause)
            return [player]

        return self._command(telegram_id, decide, origin, then=self._with_vip_until)

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
            for notification in self.scan_notifications([Player.VipGranted], watch.position + 1):
                watch.players.add(notification.originator_id)
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
        def decide(cause: Cause) -> list[Player]:
            player = self._player(telegram_id)
            player.expire_vip(cause)
            return [player]

        origin = Origin.system(EXPIRY_JOB, f"{telegram_id}:{until.isoformat()}")
        return self._command(telegram_id, decide, origin)

    @staticmethod
    def _with_vip_until(result: CommandResult) -> CommandResult:
        granted = [e for e in result.events if e.name == "VipGranted"]
        if not granted:
            return result
        return result.with_details(vip_until=granted[-1].fields["until"])
