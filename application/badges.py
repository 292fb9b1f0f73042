"""Use cases of the badges context: define, change, retire, award, revoke."""

from __future__ import annotations

from collections.abc import Iterable

from dianabot.application.app import CoreApplication
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.badge import Badge, BadgeAward, BadgeSpec, checked_slug
from dianabot.domain.cause import Cause
from dianabot.domain.criteria import PLAYER_CRITERIA, player_satisfies
from dianabot.domain.errors import BadgeNotHeld, InvalidBadge


class BadgeCommands(CoreApplication):
    def define_badge(self, spec: BadgeSpec, origin: Origin) -> CommandResult:
        def decide(cause: Cause) -> list[Badge]:
            if self.get_badge(checked_slug(spec.slug)) is not None:
                raise InvalidBadge(f"badge {spec.slug!r} is already defined", slug=spec.slug)
            return [Badge.define(spec, cause)]

        return self._command(("badge", spec.slug), decide, origin)

    def ensure_badges(self, specs: Iterable[BadgeSpec], origin: Origin) -> list[CommandResult]:
        """Define the badges that do not exist yet (the initial catalogue); idempotent."""
        return [
            self.define_badge(spec, origin) for spec in specs if self.get_badge(spec.slug) is None
        ]

    def change_badge(self, spec: BadgeSpec, origin: Origin) -> CommandResult:
        def decide(cause: Cause) -> list[Badge]:
            badge = self._badge(spec.slug)
            badge.change(spec, cause)
            return [badge]

        return self._command(("badge", spec.slug), decide, origin)

    def retire_badge(self, slug: str, reason: str, origin: Origin) -> CommandResult:
        def decide(cause: Cause) -> list[Badge]:
            badge = self._badge(slug)
            badge.retire(reason, cause)
            return [badge]

        return self._command(("badge", slug), decide, origin)

    def award_badge(
        self, slug: str, telegram_id: int, evidence: list[str], origin: Origin
    ) -> CommandResult:
        """Award once: a second award (even from another process) is refused as already_held."""

        def decide(cause: Cause) -> list[BadgeAward]:
            badge = self._badge(slug)
            self._player(telegram_id)
            award = self.get_award(slug, telegram_id)
            if award is None:
                return [BadgeAward.first(badge, telegram_id, evidence, cause)]
            award.reaward(badge, evidence, cause)
            return [award]

        # Two concurrent first awards both write version 1: the store accepts one, the other
        # retries, finds the badge held and is refused as already_held.
        return self._command(("award", slug, telegram_id), decide, origin)

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
            if badge is None or badge.retired or badge.criteria["kind"] not in PLAYER_CRITERIA:
                continue
            award = self.get_award(slug, telegram_id)
            if (award is None or not award.held) and player_satisfies(badge.criteria, player, now):
                results[slug] = self.award_badge(slug, telegram_id, evidence, origin)
        return results

    def revoke_badge(
        self, slug: str, telegram_id: int, reason: str, origin: Origin
    ) -> CommandResult:
        def decide(cause: Cause) -> list[BadgeAward]:
            self._badge(slug)
            award = self.get_award(slug, telegram_id)
            if award is None:
                raise BadgeNotHeld(f"user {telegram_id} does not hold badge {slug!r}", slug=slug)
            award.revoke(reason, cause)
            return [award]

        return self._command(("award", slug, telegram_id), decide, origin)
