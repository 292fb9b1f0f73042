"""Handlers of the badges context: define, change, retire, award, revoke."""

from __future__ import annotations

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    AwardBadge,
    ChangeBadge,
    DefineBadge,
    RetireBadge,
    RevokeBadge,
)
from dianabot.application.plans import Handler, Plan
from dianabot.domain.badge import Badge, BadgeAward, checked_slug
from dianabot.domain.cause import Cause
from dianabot.domain.errors import BadgeNotHeld, InvalidBadge


def define_badge(app: CoreApplication, command: DefineBadge) -> Plan:
    spec = command.spec

    def decide(cause: Cause) -> list[Badge]:
        if app.get_badge(checked_slug(spec.slug)) is not None:
            raise InvalidBadge(f"badge {spec.slug!r} is already defined", slug=spec.slug)
        return [Badge.define(spec, cause)]

    return Plan(decide)


def change_badge(app: CoreApplication, command: ChangeBadge) -> Plan:
    def decide(cause: Cause) -> list[Badge]:
        badge = app._badge(command.spec.slug)
        badge.change(command.spec, cause)
        return [badge]

    return Plan(decide)


def retire_badge(app: CoreApplication, command: RetireBadge) -> Plan:
    def decide(cause: Cause) -> list[Badge]:
        badge = app._badge(command.slug)
        badge.retire(command.reason, cause)
        return [badge]

    return Plan(decide)


def award_badge(app: CoreApplication, command: AwardBadge) -> Plan:
    """Two concurrent first awards both write version 1 of the award stream: the store accepts
    one, the other retries, finds the badge held and is refused as already_held."""
    slug, telegram_id = command.slug, command.telegram_id

    def decide(cause: Cause) -> list[BadgeAward]:
        badge = app._badge(slug)
        app._player(telegram_id)
        award = app.get_award(slug, telegram_id)
        if award is None:
            return [BadgeAward.first(badge, telegram_id, list(command.evidence), cause)]
        award.reaward(badge, list(command.evidence), cause)
        return [award]

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
    RevokeBadge: revoke_badge,
}
