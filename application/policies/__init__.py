"""The policies: reactions to events, run by the subscription runner with exactly-once effects.

`POLICIES` lists them in the order the workers run them; `build(app)` makes them for one
application. `BOT_POLICIES` are run by the bot process instead (their effects are Telegram
calls, through a port the bot implements): not built here, but their positions and parked
events are kept the same way. See `base` for what a policy is, and docs/rules.md ("Policies")
for each one.
"""

from __future__ import annotations

from typing import Any

from dianabot.application.policies.badges_by_criteria import BadgesByCriteria
from dianabot.application.policies.base import Policy
from dianabot.application.policies.engagement import Engagement
from dianabot.application.policies.error_recovery import ErrorRecovery
from dianabot.application.policies.story_decisions import StoryDecisions
from dianabot.application.policies.streaks import StreakBadges
from dianabot.application.policies.vip_badge import VipBadge
from dianabot.application.policies.vip_channel import VipChannel
from dianabot.application.policies.vip_conversion import VipConversion
from dianabot.application.ports import ConsistencyChecker

POLICIES: list[type[Policy]] = [
    BadgesByCriteria,
    StreakBadges,
    StoryDecisions,
    Engagement,
    VipConversion,
    VipBadge,
    ErrorRecovery,
]

BOT_POLICIES: list[type[Policy]] = [VipChannel]
"""Run by the bot (`adapters.telegram.followers`), not the workers."""


def build(
    app: Any, names: list[str] | None = None, *, consistency: ConsistencyChecker | None = None
) -> list[Policy]:
    """The policies (all, or these by name) for `app`. `error-recovery` needs `consistency`
    (the read side's per-user check): without it, it is left out (named, it is an error)."""
    chosen = [cls for cls in POLICIES if names is None or cls.name in names]
    unknown = set(names or ()) - {cls.name for cls in POLICIES}
    if unknown:
        raise ValueError(f"unknown policies: {', '.join(sorted(unknown))}")
    if consistency is None and names is not None and ErrorRecovery.name in names:
        raise ValueError(f"{ErrorRecovery.name} needs a consistency checker (the read side)")
    built: list[Policy] = []
    for cls in chosen:
        if cls is ErrorRecovery:
            if consistency is not None:
                built.append(ErrorRecovery(app, consistency))
        else:
            built.append(cls(app))
    return built
