"""The VIP channel and the VIP messages, followed from the log by the bot process.

What reaches Telegram because of an event, once:
- `VipGranted` (and `VipChannelChanged` "revoked": someone else used the user's link): a VIP
  who is neither in the channel nor holding an unused link gets a one-use invite link
  (`member_limit` 1), sent to them; recorded as `VipChannelChanged` "invited".
- `VipExpired`: unless VIP is active again, the user is told why and how to come back, and, if
  they were in the channel or held a link, removed (ban then unban, so they may come back
  later) and their link revoked; recorded as `VipChannelChanged` "removed" (or `VipNoticeSent`
  "vip_ended" when there was nothing to remove).
- `VipInvitationQueued` (the vip-conversion policy): the invitation is sent; `VipNoticeSent`.

Telegram is reached through `VipChannelPort`, which the bot implements with its `Bot` (and
`limits.RateLimitedSender` for messages). This is a policy like the others: the runner records
its position with the command that records the effect, in one transaction, so after a restart
it resumes after the last recorded effect. The Telegram call itself happens before that
transaction: a crash between the two repeats that one call on restart (a second message or
link, never a second record); the state checks below keep everything else from repeating.
Events older than `NOTICE_WINDOW` when first seen (a bot that was down, or a first start on an
old history) send no messages; removals still happen.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from dianabot.application.commands import Command, RecordVipChannel, RecordVipNotice
from dianabot.application.policies.base import Policy, evidence
from dianabot.domain import rules

NOTICE_WINDOW = timedelta(days=1)
"""A VIP event older than this when the follower sees it sends no message."""

WELCOME = "vip_welcome"
ENDED = "vip_ended"
INVITATION = "vip_invitation"


class VipChannelPort(Protocol):
    """What the follower needs of Telegram (blocking calls; the bot runs them on its loop)."""

    @property
    def has_channel(self) -> bool:
        """Whether a VIP channel is configured (`DIANABOT_VIP_CHANNEL_ID`)."""
        ...

    def create_invite(self, telegram_id: int) -> str:
        """A new one-use invite link to the VIP channel, named for this user."""
        ...

    def tell(self, telegram_id: int, notice: str, **fields: Any) -> bool:
        """Send the user the notice `notice`; False if they cannot be reached (blocked)."""
        ...

    def remove(self, telegram_id: int) -> None:
        """Take the user out of the VIP channel (ban, then unban: they may come back)."""
        ...

    def revoke(self, invite_link: str) -> None:
        """Revoke an invite link (an unused one of a user who is no longer VIP)."""
        ...


class VipChannel(Policy):
    name = "vip-channel"
    handles = frozenset({"VipGranted", "VipExpired", "VipChannelChanged", "VipInvitationQueued"})

    def __init__(self, app: Any, port: VipChannelPort) -> None:
        super().__init__(app)
        self.port = port

    def react(self, event: Any) -> Command | None:
        kind = type(event).__name__
        owner = self.owner(event)
        if owner is None:
            return None
        now = self.app.clock.now()
        player = self.app.get_player(owner)
        if player is None:
            return None
        if kind == "VipInvitationQueued":
            return self._invitation(owner, player, event, now)
        if kind == "VipExpired":
            return self._ended(owner, player, event, now)
        if kind == "VipChannelChanged" and event.change != "revoked":
            return None
        return self._invite(owner, player, now)

    def _fresh(self, event: Any, now: datetime) -> bool:
        return bool(now - event.timestamp <= NOTICE_WINDOW)

    def _invite(self, owner: int, player: Any, now: datetime) -> Command | None:
        if not self.port.has_channel or not player.vip_active(now):
            return None
        if player.vip_channel != "none":
            return None  # in the channel already, or holding an unused link
        link = self.port.create_invite(owner)
        delivered = self.port.tell(owner, WELCOME, link=link, until=player.vip_until)
        return RecordVipChannel(owner, change="invited", invite_link=link, delivered=delivered)

    def _ended(self, owner: int, player: Any, event: Any, now: datetime) -> Command | None:
        if player.vip_active(now):
            return None  # a grant came after: still VIP
        delivered = False
        if self._fresh(event, now):
            delivered = self.port.tell(owner, ENDED, until=event.until)
        if self.port.has_channel and player.vip_channel != "none":
            if player.vip_channel_link:
                self.port.revoke(player.vip_channel_link)
            self.port.remove(owner)
            return RecordVipChannel(
                owner,
                change="removed",
                invite_link=player.vip_channel_link or "",
                detail=f"VIP ended {event.until.isoformat()}",
                delivered=delivered,
            )
        if not delivered:
            return None
        return RecordVipNotice(owner, kind=ENDED, reference=evidence(event)[0])

    def _invitation(self, owner: int, player: Any, event: Any, now: datetime) -> Command | None:
        if now - event.timestamp > rules.VIP_INVITATION_WINDOW or player.vip_active(now):
            return None
        delivered = self.port.tell(owner, INVITATION)
        return RecordVipNotice(
            owner, kind=INVITATION, reference=evidence(event)[0], delivered=delivered
        )
