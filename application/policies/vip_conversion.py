"""VIP conversion: a free user who hits a VIP gate gets one well-timed invitation to VIP, at
most once per `rules.VIP_INVITATION_PERIOD` (7 days), queued for the bot to send.

The effect is an `InviteToVip` command, which records `VipInvitationQueued` on the Player (the
gate's story, fragment and choice, and the gate hit as evidence): the bot follows the log and
delivers it. Well-timed: only right after the hit (a hit older than
`rules.VIP_INVITATION_WINDOW` when the policy sees it, say after the workers were down, invites
no one), and not while VIP is active or within the period of the last invitation (the command
is refused `already_vip` / `already_invited` then; the policy asks the Player first, so such
hits cost no command at all).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dianabot.application.commands import Command, InviteToVip
from dianabot.application.policies.base import Policy, evidence
from dianabot.domain import rules


def timely(hit_at: datetime, now: datetime) -> bool:
    """Whether a gate hit at `hit_at` is recent enough at `now` to prompt an invitation."""
    return now - hit_at <= rules.VIP_INVITATION_WINDOW


class VipConversion(Policy):
    name = "vip-conversion"
    handles = frozenset({"VipGateHit"})

    def react(self, event: Any) -> Command | None:
        now = self.app.clock.now()
        if not timely(event.timestamp, now):
            return None
        owner = self.owner(event)
        progress = self.app._load(event.originator_id) if owner is not None else None
        if owner is None or progress is None:
            return None
        player = self.app.get_player(owner)
        if player is None or not player.vip_invitation_due(now):
            return None
        return InviteToVip(
            owner, progress.story_slug, event.fragment_id, event.choice_id, evidence(event)
        )
