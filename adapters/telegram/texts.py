"""The bot's texts: one Spanish catalogue (`texts_es.yaml`) and a typed accessor.

Handlers never hold a sentence: they name a key of `T` and give its fields,
`texts(T.CHECKIN_TOO_SOON, wait=texts.wait(retry_after))`. A key missing from the catalogue, or
a field a text asks for and the handler did not give, fails loudly in tests, not in a chat.
`wait` says a time left in the user's own terms: "3 h 12 min", never less than what is left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from importlib import resources
from typing import Any

import yaml

CATALOGUE = "texts_es.yaml"


class T(StrEnum):
    """Every key of the catalogue."""

    START_WELCOME = "start.welcome"
    START_WELCOME_BACK = "start.welcome_back"
    VIP_REDEEMED = "vip.redeemed"
    VIP_TOKEN_INVALID = "vip.token_invalid"
    VIP_TOKEN_USED = "vip.token_used"
    VIP_TOKEN_EXPIRED = "vip.token_expired"
    VIP_ACTIVE = "vip.active"
    VIP_INACTIVE = "vip.inactive"
    VIP_EXPIRED = "vip.expired"
    VIP_OFFER = "vip.offer"
    VIP_BUTTON_STARS = "vip.button_stars"
    VIP_BUTTON_BESITOS = "vip.button_besitos"
    VIP_INVOICE_TITLE = "vip.invoice_title"
    VIP_INVOICE_DESCRIPTION = "vip.invoice_description"
    VIP_INVOICE_LABEL = "vip.invoice_label"
    VIP_PRECHECKOUT_REFUSED = "vip.precheckout_refused"
    VIP_PAID = "vip.paid"
    VIP_RENEWED = "vip.renewed"
    VIP_PAYMENT_DUPLICATE = "vip.payment_duplicate"
    VIP_PAYMENT_UNKNOWN = "vip.payment_unknown"
    VIP_PAYMENT_NOT_RECORDED = "vip.payment_not_recorded"
    VIP_BESITOS_OK = "vip.besitos_ok"
    VIP_BESITOS_SHORT = "vip.besitos_short"
    VIP_PAYSUPPORT = "vip.paysupport"
    VIP_WELCOME = "vip.welcome"
    VIP_ENDED = "vip.ended"
    VIP_INVITATION = "vip.invitation"
    VIP_INTRUDER = "vip.intruder"
    VIP_NOT_MEMBER = "vip.not_member"
    GATE_TEXT = "gate.text"
    GATE_BUTTON = "gate.button"
    GATE_CONFIRMED = "gate.confirmed"
    ADMIN_REFUND_USAGE = "admin.refund_usage"
    ADMIN_REFUND_UNKNOWN = "admin.refund_unknown"
    ADMIN_REFUND_ALREADY = "admin.refund_already"
    ADMIN_REFUND_FAILED = "admin.refund_failed"
    ADMIN_REFUND_OK = "admin.refund_ok"
    VIP_REFUNDED = "vip.refunded"
    HELP_TEXT = "help.text"
    HELP_ADMIN = "help.admin"
    PROFILE_TEXT = "profile.text"
    PROFILE_NO_BADGES = "profile.no_badges"
    PROFILE_UNKNOWN = "profile.unknown"
    CHECKIN_OK = "checkin.ok"
    CHECKIN_BONUS = "checkin.bonus"
    CHECKIN_TOO_SOON = "checkin.too_soon"
    DAY_ONE = "day.one"
    DAY_MANY = "day.many"
    BADGES_LIST = "badges.list"
    BADGES_ITEM = "badges.item"
    BADGES_NONE = "badges.none"
    TOP_TITLE = "top.title"
    TOP_ITEM = "top.item"
    TOP_EMPTY = "top.empty"
    TOP_ANONYMOUS = "top.anonymous"
    STORY_FRAGMENT = "story.fragment"
    STORY_ENDING = "story.ending"
    STORY_LOCKED = "story.locked"
    STORY_NOT_PUBLISHED = "story.not_published"
    STORY_MOVED = "story.moved"
    STORY_CHOICE_COST = "story.choice_cost"
    STORY_CHOICE_VIP = "story.choice_vip"
    STORY_ADVANCED = "story.advanced"
    STORY_STALE = "story.stale"
    STORY_VIP_REQUIRED = "story.vip_required"
    STORY_INSUFFICIENT_POINTS = "story.insufficient_points"
    STORY_CLUE_REQUIRED = "story.clue_required"
    STORY_INVALID_CHOICE = "story.invalid_choice"
    REACTION_OK = "reaction.ok"
    REACTION_ALREADY = "reaction.already"
    REACTION_BAD_BUTTON = "reaction.bad_button"
    GROUP_COOLDOWN = "group.cooldown"
    POLL_SENT = "poll.sent"
    POLL_USAGE = "poll.usage"
    ADMIN_REFUSED = "admin.refused"
    ADMIN_HEALTH = "admin.health"
    ADMIN_RECONCILE = "admin.reconcile"
    ADMIN_CONSISTENT = "admin.consistent"
    ADMIN_INCONSISTENT = "admin.inconsistent"
    ADMIN_GRANT_OK = "admin.grant_ok"
    ADMIN_GRANT_USAGE = "admin.grant_usage"
    REFUSAL_DUPLICATE = "refusal.duplicate"
    REFUSAL_UNAVAILABLE = "refusal.unavailable"
    REFUSAL_UNKNOWN_USER = "refusal.unknown_user"
    REFUSAL_NOT_ADMIN = "refusal.not_admin"
    REFUSAL_THROTTLED = "refusal.throttled"
    REFUSAL_OTHER = "refusal.other"
    REFUSAL_UNKNOWN_BUTTON = "refusal.unknown_button"
    WAIT_SECONDS = "wait.seconds"
    WAIT_MINUTES = "wait.minutes"
    WAIT_HOURS = "wait.hours"
    WAIT_HOURS_MINUTES = "wait.hours_minutes"
    WAIT_DAYS = "wait.days"
    WAIT_DAYS_HOURS = "wait.days_hours"
    COMMAND_START = "command.start"
    COMMAND_PROFILE = "command.profile"
    COMMAND_CHECKIN = "command.checkin"
    COMMAND_STORY = "command.story"
    COMMAND_BADGES = "command.badges"
    COMMAND_TOP = "command.top"
    COMMAND_VIP = "command.vip"
    COMMAND_HELP = "command.help"
    COMMAND_PAYSUPPORT = "command.paysupport"


class Texts:
    """The catalogue: `texts(key, **fields)` is the text to send."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        missing = sorted(key.value for key in T if key.value not in entries)
        if missing:
            raise KeyError(f"the catalogue lacks {', '.join(missing)}")
        self.entries = dict(entries)

    @classmethod
    def load(cls, name: str = CATALOGUE) -> Texts:
        raw = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
        entries = yaml.safe_load(raw)
        if not isinstance(entries, dict):
            raise ValueError(f"{name} is not a mapping of keys to texts")
        return cls({str(k): str(v) for k, v in entries.items()})

    def __call__(self, key: T, **fields: Any) -> str:
        return self.entries[key.value].format(**fields)

    def wait(self, left: timedelta) -> str:
        """A wait in the user's terms, rounded up: 59 s, 12 min, 3 h 12 min, 2 d 5 h."""
        seconds = max(1, math.ceil(left.total_seconds()))
        if seconds < 60:
            return self(T.WAIT_SECONDS, s=seconds)
        minutes = math.ceil(seconds / 60)
        if minutes < 60:
            return self(T.WAIT_MINUTES, m=minutes)
        hours, rest = divmod(minutes, 60)
        if hours < 24:
            if rest == 0:
                return self(T.WAIT_HOURS, h=hours)
            return self(T.WAIT_HOURS_MINUTES, h=hours, m=rest)
        days, hours = divmod(math.ceil(minutes / 60), 24)
        if hours == 0:
            return self(T.WAIT_DAYS, d=days)
        return self(T.WAIT_DAYS_HOURS, d=days, h=hours)
