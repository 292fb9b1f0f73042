"""Handlers of the badges context: define, change, retire, award, revoke.

The initial catalogue (`domain.catalogue`) is seeded by the commands that write: a command that
needs a catalogue badge not defined yet defines it first, in the same transaction (two
processes doing so at once: one write of the badge's first version wins, the other retries and
finds it). Reading never defines anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    AwardBadge,
    AwardEarnedBadges,
    ChangeBadge,
    DefineBadge,
    RetireBadge,
    RevokeBadge,
)
from dianabot.application.plans import Handler, Plan
from dianabot.domain.badge import Badge, BadgeAward, BadgeSpec, checked_slug
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.cause import Cause
from dianabot.domain.criteria import (
    PLAYER_CRITERIA,
    STORY_CRITERIA,
    player_satisfies,
    progress_satisfies,
)
from dianabot.domain.errors import BadgeNotHeld, InvalidBadge
from dianabot.domain.ids import progress_id
from dianabot.domain.progress import StoryProgress

CATALOGUE: dict[str, BadgeSpec] = {spec.slug: spec for spec in INITIAL_BADGES}


def needed_badge(app: CoreApplication, slug: str, cause: Cause) -> Badge:
    """The badge `slug`; a catalogue badge not defined yet is defined now (saved with the
    command's other changes, since the returned badge holds the new event)."""
    spec = CATALOGUE.get(slug) if isinstance(slug, str) else None
    if spec is not None and app.get_badge(slug) is None:
        return Badge.define(spec, cause)
    return app._badge(slug)


def define_badge(app: CoreApplication, command: DefineBadge) -> Plan:
    spec = command.spec

    def decide(cause: Cause) -> list[Badge]:
        if app.get_badge(checked_slug(spec.slug)) is not None:
            raise InvalidBadge(f"badge {spec.slug!r} is already defined", slug=spec.slug)
        return [Badge.define(spec, cause)]

    return Plan(decide)


def change_badge(app: CoreApplication, command: ChangeBadge) -> Plan:
    def decide(cause: Cause) -> list[Badge]:
        badge = needed_badge(app, command.spec.slug, cause)
        badge.change(command.spec, cause)
        return [badge]

    return Plan(decide)


def retire_badge(app: CoreApplication, command: RetireBadge) -> Plan:
    def decide(cause: Cause) -> list[Badge]:
        badge = needed_badge(app, command.slug, cause)
        badge.retire(command.reason, cause)
        return [badge]

    return Plan(decide)


def award_badge(app: CoreApplication, command: AwardBadge) -> Plan:
    """Two concurrent first awards both write version 1 of the award stream: the store accepts
    one, the other retries, finds the badge held and is refused as already_held."""
    slug, telegram_id = command.slug, command.telegram_id

    def decide(cause: Cause) -> list[Badge | BadgeAward]:
        badge = needed_badge(app, slug, cause)
        app._player(telegram_id)
        seeded: list[Badge | BadgeAward] = [badge] if badge.pending_events else []
        award = app.get_award(slug, telegram_id)
        if award is None:
            return [*seeded, BadgeAward.first(badge, telegram_id, list(command.evidence), cause)]
        award.reaward(badge, list(command.evidence), cause)
        return [*seeded, award]

    return Plan(decide)


def due_badges(
    app: CoreApplication, telegram_id: int, slugs: Iterable[str], story_slug: str, at: datetime
) -> list[tuple[str, Badge | None, BadgeAward | None]]:
    """The badges of `slugs` the player has earned and does not hold, with their definition
    (None for a catalogue badge not defined yet) and their award stream (None before any).
    The badge policies ask it before issuing a command (most events earn nothing, and a
    command with a position costs a transaction); the command's handler asks it again."""
    player = app._player(telegram_id)
    progress: StoryProgress | None = None
    if story_slug:
        progress = app._load(progress_id(telegram_id, story_slug))
    due: list[tuple[str, Badge | None, BadgeAward | None]] = []
    for slug in dict.fromkeys(slugs):
        badge = app.get_badge(slug)
        spec = CATALOGUE.get(slug)
        criteria = badge.criteria if badge is not None else (
            dict(spec.criteria) if spec is not None else None
        )  # fmt: skip
        if criteria is None or (badge is not None and badge.retired):
            continue
        kind = criteria.get("kind")
        if kind in PLAYER_CRITERIA:
            earned = player_satisfies(criteria, player, at)
        else:
            earned = kind in STORY_CRITERIA and progress_satisfies(criteria, progress)
        if not earned:
            continue
        award = app.get_award(slug, telegram_id)
        if award is None or not award.held:
            due.append((slug, badge, award))
    return due


def award_earned_badges(app: CoreApplication, command: AwardEarnedBadges) -> Plan:
    """One transaction for every award due (the unit of work is the save of several
    aggregates); a catalogue badge not defined yet is defined in it too."""
    telegram_id = command.telegram_id

    def decide(cause: Cause) -> list[Badge | BadgeAward]:
        saved: list[Badge | BadgeAward] = []
        due = due_badges(app, telegram_id, command.slugs, command.story_slug, cause.at)
        for slug, badge, award in due:
            if badge is None:
                badge = needed_badge(app, slug, cause)
                saved.append(badge)
            if award is None:
                saved.append(BadgeAward.first(badge, telegram_id, list(command.evidence), cause))
            else:
                award.reaward(badge, list(command.evidence), cause)
                saved.append(award)
        return saved

    return Plan(decide)


def revoke_badge(app: CoreApplication, command: RevokeBadge) -> Plan:
    slug, telegram_id = command.slug, command.telegram_id

    def decide(cause: Cause) -> list[BadgeAward]:
        app._badge(slug)
        award = app.get_award(slug, telegram_id)
        if award is None:
            raise BadgeNotHeld(f"user {telegram_id} does not hold badge {slug!r}", slug=slug)
        award.revoke(command.reason, cause)
        return [award]

    return Plan(decide)


HANDLERS: dict[type, Handler] = {
    DefineBadge: define_badge,
    ChangeBadge: change_badge,
    RetireBadge: retire_badge,
    AwardBadge: award_badge,
    AwardEarnedBadges: award_earned_badges,
    RevokeBadge: revoke_badge,
}
