"""Handlers of the badges context: define, change, retire, award, revoke.

The initial catalogue (`domain.catalogue`) is seeded by the commands that write: a command that
needs a catalogue badge not defined yet defines it first, in the same transaction (two
processes doing so at once: one write of the badge's first version wins, the other retries and
finds it). Reading never defines anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    AwardBadge,
    AwardEarnedBadges,
    ChangeBadge,
    DefineBadge,
    RetireBadge,
    RevokeBadge,
    RevokeLapsedBadges,
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
from dianabot.domain.player import Player
from dianabot.domain.progress import StoryProgress

Definitions = Callable[[str], tuple[Badge | None, dict[str, Any] | None]]
"""A badge's definition by slug: the badge (None before it is defined) and its criteria."""

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
    app: CoreApplication,
    telegram_id: int,
    slugs: Iterable[str],
    story_slug: str,
    at: datetime,
    streak: int = 0,
    definitions: Definitions | None = None,
    held: set[str] | None = None,
) -> list[tuple[str, Badge | None, BadgeAward | None]]:
    """The badges of `slugs` the player has earned and does not hold, with their definition
    (None for a catalogue badge not defined yet) and their award stream (None before any).
    `streak`: the check-in streak the evidence recorded (see `AwardEarnedBadges`);
    `definitions`: where the badges are looked up (by default loaded from the store);
    `held`: if given, the slugs found earned and held are added to it.
    The badge policies ask it before issuing a command (most events earn nothing, and a
    command with a position costs a transaction); the command's handler asks it again."""
    player = app._player(telegram_id)
    progress: StoryProgress | None = None
    if story_slug:
        progress = app._load(progress_id(telegram_id, story_slug))
    due: list[tuple[str, Badge | None, BadgeAward | None]] = []
    define = definitions or partial(definition, app)
    for slug in dict.fromkeys(slugs):
        badge, criteria = define(slug)
        if criteria is None:
            continue
        if not _satisfied(criteria, player, progress, at, streak):
            continue
        award = app.get_award(slug, telegram_id)
        if award is None or not award.held:
            due.append((slug, badge, award))
        elif held is not None:
            held.add(slug)
    return due


def lapsed_badges(
    app: CoreApplication,
    telegram_id: int,
    slugs: Iterable[str],
    at: datetime,
    definitions: Definitions | None = None,
) -> list[BadgeAward]:
    """The badges of `slugs` the player holds whose (player) criteria no longer hold at `at`:
    what `RevokeLapsedBadges` revokes. A retired badge's holdings stay (retirement keeps them)."""
    player = app._player(telegram_id)
    lapsed: list[BadgeAward] = []
    define = definitions or partial(definition, app)
    for slug in dict.fromkeys(slugs):
        badge, criteria = define(slug)
        if criteria is None or criteria.get("kind") not in PLAYER_CRITERIA:
            continue
        award = app.get_award(slug, telegram_id)
        if award is None or not award.held:
            continue
        if not player_satisfies(criteria, player, at):
            lapsed.append(award)
    return lapsed


def definition(app: CoreApplication, slug: str) -> tuple[Badge | None, dict[str, Any] | None]:
    """The badge (None for a catalogue badge not defined yet) and its criteria (None when it
    awards nothing: unknown, or retired)."""
    return described(slug, app.get_badge(slug))


def described(slug: str, badge: Badge | None) -> tuple[Badge | None, dict[str, Any] | None]:
    """`definition` of a badge already in hand (None: not defined)."""
    if badge is not None:
        return badge, None if badge.retired else badge.criteria
    spec = CATALOGUE.get(slug)
    return None, dict(spec.criteria) if spec is not None else None


def _satisfied(
    criteria: dict[str, Any],
    player: Player,
    progress: StoryProgress | None,
    at: datetime,
    streak: int,
) -> bool:
    kind = criteria.get("kind")
    if kind in PLAYER_CRITERIA:
        if kind == "checkin_streak" and streak >= criteria["days"]:
            return True
        return player_satisfies(criteria, player, at)
    return kind in STORY_CRITERIA and progress_satisfies(criteria, progress)


def earned_awards(
    app: CoreApplication,
    telegram_id: int,
    slugs: Iterable[str],
    evidence: Sequence[str],
    cause: Cause,
    *,
    story_slug: str = "",
    streak: int = 0,
) -> list[Badge | BadgeAward]:
    """The aggregates to save to award every badge of `slugs` that is due (`due_badges`): the
    awards (first or again), and any catalogue badge defined on the way."""
    saved: list[Badge | BadgeAward] = []
    for slug, badge, award in due_badges(app, telegram_id, slugs, story_slug, cause.at, streak):
        if badge is None:
            badge = needed_badge(app, slug, cause)
            saved.append(badge)
        if award is None:
            saved.append(BadgeAward.first(badge, telegram_id, list(evidence), cause))
        else:
            award.reaward(badge, list(evidence), cause)
            saved.append(award)
    return saved


def award_earned_badges(app: CoreApplication, command: AwardEarnedBadges) -> Plan:
    """One transaction for every award due (the unit of work is the save of several
    aggregates); a catalogue badge not defined yet is defined in it too."""

    def decide(cause: Cause) -> list[Badge | BadgeAward]:
        return earned_awards(
            app,
            command.telegram_id,
            command.slugs,
            command.evidence,
            cause,
            story_slug=command.story_slug,
            streak=command.streak,
        )

    return Plan(decide)


def revoke_lapsed_badges(app: CoreApplication, command: RevokeLapsedBadges) -> Plan:
    """One transaction for every held badge whose criteria no longer hold."""
    reason = f"criteria no longer met ({', '.join(command.evidence)})"

    def decide(cause: Cause) -> list[BadgeAward]:
        lapsed = lapsed_badges(app, command.telegram_id, command.slugs, cause.at)
        for award in lapsed:
            award.revoke(reason, cause)
        return lapsed

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
    RevokeLapsedBadges: revoke_lapsed_badges,
}
