"""Use cases of the badges context: define, change, retire, award, revoke.

Each single-command method is a blocking shorthand for one command on the bus
(`application.commands`, handled by `application.handlers.badges`); `ensure_badges` issues
several. Badges earned by criteria are awarded by the badge policies (`application.policies`),
through `AwardEarnedBadges`.
"""

from __future__ import annotations

from collections.abc import Iterable

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

    def revoke_badge(
        self, slug: str, telegram_id: int, reason: str, origin: Origin
    ) -> CommandResult:
        return self.bus.handle(RevokeBadge(slug, telegram_id, reason), origin)
