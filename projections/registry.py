"""Every read model, by the name operators use (`dianabot projections rebuild NAME`)."""

from __future__ import annotations

from dianabot.projections.badges_held import BadgesHeldProjector
from dianabot.projections.base import Projector
from dianabot.projections.engagement import EngagementProjector
from dianabot.projections.incidents import IncidentsProjector
from dianabot.projections.leaderboard import LeaderboardProjector
from dianabot.projections.player_points import PlayerPointsProjector
from dianabot.projections.story_state import StoryStateProjector
from dianabot.projections.vip_funnel import VipFunnelProjector
from dianabot.projections.vip_members import VipMembersProjector

PROJECTORS: dict[str, type[Projector]] = {
    cls.name: cls
    for cls in (
        PlayerPointsProjector,
        LeaderboardProjector,
        BadgesHeldProjector,
        StoryStateProjector,
        VipMembersProjector,
        EngagementProjector,
        VipFunnelProjector,
        IncidentsProjector,
    )
}

ALL_NAMES: tuple[str, ...] = tuple(PROJECTORS)


def projector_classes(names: list[str] | tuple[str, ...] | None = None) -> list[type[Projector]]:
    """The classes for these names (all when None); KeyError names an unknown one."""
    if names is None:
        return list(PROJECTORS.values())
    unknown = [n for n in names if n not in PROJECTORS]
    if unknown:
        raise KeyError(
            f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(PROJECTORS)}"
        )
    return [PROJECTORS[n] for n in names]
