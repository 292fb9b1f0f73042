"""`vip_funnel`: the free players who hit a VIP gate, how often, and whether (when, how) they
became VIP afterwards: the conversion funnel of the VIP arc.

`VipGateHit` is recorded on a story-progress stream, which does not say whose it is, so the
projector keeps its own `vip_funnel_progress` table (progress stream -> Telegram user) from
`StoryStarted`; it depends on no other projection, so it can be rebuilt alone.
"""

from __future__ import annotations

from typing import Any

from dianabot.domain.ids import player_id
from dianabot.projections.base import Projector, originator_keys


class VipFunnelProjector(Projector):
    name = "vip_funnel"
    tables = ("vip_funnel", "vip_funnel_progress")

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        owners = self.rows["vip_funnel_progress"]
        if not owners.complete:
            owners.load(originator_keys(events, ("VipGateHit",)))
        funnel = self.rows["vip_funnel"]
        if funnel.complete:
            return
        players = originator_keys(events, ("VipGranted",))
        for _, name, event in events:
            if name == "VipGateHit":
                owner = owners.get(event.originator_id.int)
                if owner is not None:
                    players.add(player_id(owner["telegram_id"]).int)
        funnel.load(players)

    def on_StoryStarted(self, event: Any, position: int) -> None:
        self.rows["vip_funnel_progress"].put(
            event.originator_id.int,
            {"progress_id": event.originator_id, "telegram_id": event.telegram_id},
        )

    def on_VipGateHit(self, event: Any, position: int) -> None:
        owner = self.rows["vip_funnel_progress"].get(event.originator_id.int)
        if owner is None:
            return  # a gate hit on a progress that never started: reconciliation's business
        telegram_id = owner["telegram_id"]
        player = player_id(telegram_id)
        rows = self.rows["vip_funnel"]
        row = rows.get(player.int)
        if row is None:
            rows.put(
                player.int,
                {
                    "player_id": player,
                    "telegram_id": telegram_id,
                    "gate_hits": 1,
                    "first_gate_at": event.timestamp,
                    "last_gate_at": event.timestamp,
                    "last_gate_fragment": event.fragment_id,
                    "converted_at": None,
                    "conversion_source": None,
                },
            )
            return
        row["gate_hits"] += 1
        row["last_gate_at"] = event.timestamp
        row["last_gate_fragment"] = event.fragment_id
        rows.touch(player.int)

    def on_VipGranted(self, event: Any, position: int) -> None:
        rows = self.rows["vip_funnel"]
        row = rows.get(event.originator_id.int)
        if row is None or row["converted_at"] is not None:
            return
        row["converted_at"] = event.timestamp
        row["conversion_source"] = event.source
        rows.touch(event.originator_id.int)
