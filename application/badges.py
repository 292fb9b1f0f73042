"""Use cases of the badges context: define, change, retire, award, revoke.

Each single-command method is a blocking shorthand for one command on the bus
(`application.commands`, handled by `application.handlers.badges`); `ensure_badges` and
`award_earned_badges` issue several.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    AwardBadge,
    ChangeBadge,
    DefineBadge,
    RetireBadge,
    RevokeBadge,
)
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.badge import BadgeSpec
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.criteria import PLAYER_CRITERIA, player_satisfies


class BadgeCommands(CoreApplication):
    def define_badge(self, spec: BadgeSpec, origin: Origin) -> CommandResult:
        return self.bus.handle(DefineBadge(spec), origin)

    def ensure_badges(self, specs: Iterable[BadgeSpec], origin: Origin) -> list[CommandResult]:
        """Define the badges that do not exist yet (the initial catalogue); idempotent."""
        return [
            self.bus.handle(DefineBadge(spec), origin)
            for spec in specs
            if self.get_badge(spec.slug) is None
        ]

    def change_badge(self, spec: BadgeSpec, origin: Origin) -> CommandResult:
        return self.bus.handle(ChangeBadge(spec), origin)

    def retire_badge(self, slug: str, reason: str, origin: Origin) -> CommandResult:
        return self.bus.handle(RetireBadge(slug, reason), origin)

    def award_badge(
        self, slug: str, telegram_id: int, evidence: list[str], origin: Origin
    ) -> CommandResult:
        """Award once: a second award (even from another process) is refused as already_held."""
        return self.bus.handle(AwardBadge(slug, telegram_id, evidence), origin)

    def award_earned_badges(
        self, telegram_id: int, slugs: Iterable[str], evidence: list[str], origin: Origin
    ) -> dict[str, CommandResult]:
        """Award every listed badge whose player criteria are now met and that is not held.

        `evidence` names the event(s) that made the criteria true (usually the command's last
        event). The durable badge policies call this per event; the demo calls it directly.
        """
        player = self.get_player(telegram_id)
        if player is None:
            return {}
        now = self.clock.now()
        results: dict[str, CommandResult] = {}
        for slug in slugs:
            badge = self.get_badge(slug)
            # A catalogue badge not defined yet counts as defined: the award defines it.
            criteria = badge.criteria if badge is not None else _catalogue_criteria(slug)
            if criteria is None or criteria["kind"] not in PLAYER_CRITERIA:
                continue
            if badge is not None and badge.retired:
                continue
            award = self.get_award(slug, telegram_id)
            if (award is None or not award.held) and player_satisfies(criteria, player, now):
                results[slug] = self.bus.handle(AwardBadge(slug, telegram_id, evidence), origin)
        return results

    def revoke_badge(
        self, slug: str, telegram_id: int, reason: str, origin: Origin
    ) -> CommandResult:
        return self.bus.handle(RevokeBadge(slug, telegram_id, reason), origin)


def _catalogue_criteria(slug: str) -> dict[str, Any] | None:
    return next((dict(spec.criteria) for spec in INITIAL_BADGES if spec.slug == slug), None)
