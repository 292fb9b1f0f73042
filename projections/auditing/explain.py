"""Why a user has what they have: every besito, level and badge traced to its event, the rule
that gave it (docs/rules.md) and the update, admin, job or policy that caused it, with totals
that add up, compared with the read model's row (the difference is shown, never hidden).

Built from the user's trail (`trail.UserTrail`) and the badges' own streams (their criteria as
defined, or changed, before each award), never from the read models; those are only the other
side of the comparison, passed in by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dianabot.domain import rules
from dianabot.domain.ids import badge_id
from dianabot.projections.fold import corrupt_detail
from dianabot.projections.ports import EventLog, LoggedRow

BESITOS_EVENTS = frozenset({"PointsAwarded", "PointsSpent", "PointsAdjusted"})
BADGE_EVENTS = frozenset({"BadgeAwarded", "BadgeReawarded", "BadgeRevoked"})
DEFINITION_EVENTS = frozenset({"BadgeDefined", "BadgeChanged", "BadgeRetired"})

_COOLDOWN = int(rules.MESSAGE_COOLDOWN.total_seconds())
_INTERVAL = int(rules.CHECKIN_INTERVAL.total_seconds() // 3600)
R = rules
SOURCE_RULES: Mapping[str, tuple[str, int | None]] = {
    "reaction": (f"{R.REACTION_POINTS} per channel post reacted to, once", R.REACTION_POINTS),
    "message": (f"{R.MESSAGE_POINTS} per group message, one every {_COOLDOWN} s", R.MESSAGE_POINTS),
    "poll": (f"{R.POLL_POINTS} per poll answered, once per poll", R.POLL_POINTS),
    "checkin": (f"{R.CHECKIN_POINTS} per check-in, per {_INTERVAL} h", R.CHECKIN_POINTS),
    "streak_bonus": (
        f"{R.STREAK_BONUS_POINTS} on every {R.STREAK_BONUS_EVERY}th consecutive check-in",
        R.STREAK_BONUS_POINTS,
    ),
    "story": ("the story fragment's reward, once per player and fragment", None),
    "story_decision": (
        f"{R.STORY_DECISION_BONUS} for the first decision in a chapter, once per chapter",
        R.STORY_DECISION_BONUS,
    ),
}
"""Per `PointsAwarded.source`: the rule (docs/rules.md, "Earning besitos") and its fixed amount
(None: the amount comes from the content)."""

SPEND_RULE = "spending: all or nothing, lowers the balance only (docs/rules.md, Spending)"
GRANT_RULE = "admin grant: balance and lifetime grow (docs/rules.md, Admin grant and deduct)"
DEDUCT_RULE = (
    "admin deduct: balance shrinks, lifetime stays (docs/rules.md, Admin grant and deduct)"
)
LEVEL_RULE = "level {number} ({name}) from {threshold:,} lifetime besitos (docs/rules.md, Levels)"

_EVENT_REF = re.compile(r"^event:([0-9a-fA-F-]{36}):(\d+)$")
_TELEGRAM = re.compile(r"^tg:(?:(-?\d+):)?update:(\d+)$")


def criteria_rule(criteria: Mapping[str, Any] | None) -> str:
    """A badge's criteria in words (docs/rules.md, Badges)."""
    if not criteria:
        return "criteria unknown (the badge's definition is not in the log)"
    kind = criteria.get("kind")
    texts = {
        "first_points": "lifetime besitos > 0",
        "lifetime_besitos": f"lifetime besitos >= {criteria.get('threshold')}",
        "checkin_streak": f"check-in streak >= {criteria.get('days')} days",
        "first_decision": "took a decision in the story",
        "chapter_completed": f"completed chapter {criteria.get('chapter')} of the story",
        "reactions": f"reacted to >= {criteria.get('count')} distinct posts",
        "vip_active": "VIP period active (revoked when it expires)",
        "manual": "awarded by hand by an admin",
    }
    return f"{kind}: {texts.get(str(kind), 'unknown criteria kind')}"


@dataclass(frozen=True)
class Cause:
    """What caused an event: its causation and actor, in words, and the event it points at
    when a policy reacted to one of the user's own events."""

    causation: str | None
    actor: str | None
    text: str
    event_position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "causation": self.causation,
            "actor": self.actor,
            "text": self.text,
            "event_position": self.event_position,
        }


@dataclass(frozen=True)
class BesitosLine:
    position: int
    at: datetime | None
    event: str
    version: int
    kind: str
    """`source` of an award, `purpose` of a spend, `grant` or `deduct`."""
    amount: int
    """The change to the balance (negative: spent or deducted)."""
    earned: int
    """The change to lifetime besitos."""
    reference: str
    rule: str
    cause: Cause
    balance: int
    """Running balance after this event."""
    lifetime: int
    irregular: str | None = None
    """Why the amount does not match its rule (a fixed-amount source), if it does not."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "at": None if self.at is None else self.at.isoformat(),
            "event": self.event,
            "version": self.version,
            "kind": self.kind,
            "amount": self.amount,
            "earned": self.earned,
            "reference": self.reference,
            "rule": self.rule,
            "cause": self.cause.to_dict(),
            "balance": self.balance,
            "lifetime": self.lifetime,
            "irregular": self.irregular,
        }


@dataclass(frozen=True)
class LevelLine:
    position: int
    at: datetime | None
    level: int
    name: str
    lifetime: int
    """Lifetime besitos when it was reached."""
    rule: str
    trigger: int | None
    """Position of the besitos event that crossed the threshold."""
    cause: Cause
    irregular: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "at": None if self.at is None else self.at.isoformat(),
            "level": self.level,
            "name": self.name,
            "lifetime": self.lifetime,
            "rule": self.rule,
            "trigger_position": self.trigger,
            "cause": self.cause.to_dict(),
            "irregular": self.irregular,
        }


@dataclass(frozen=True)
class Evidence:
    reference: str
    position: int | None
    event: str | None
    """The evidence event's type, when it is one of the user's events."""

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "position": self.position, "event": self.event}


@dataclass(frozen=True)
class BadgeLine:
    position: int
    at: datetime | None
    event: str
    slug: str
    name: str | None
    description: str | None
    rule: str
    evidence: tuple[Evidence, ...]
    cause: Cause
    reason: str | None = None
    """A revocation's reason."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "at": None if self.at is None else self.at.isoformat(),
            "event": self.event,
            "slug": self.slug,
            "name": self.name,
            "rule": self.rule,
            "evidence": [e.to_dict() for e in self.evidence],
            "cause": self.cause.to_dict(),
            "reason": self.reason,
        }


@dataclass
class Totals:
    awarded: int = 0
    granted: int = 0
    spent: int = 0
    deducted: int = 0
    level: int = 1
    """The last level the history recorded."""
    badges: tuple[str, ...] = ()
    """Badges held at the end of the trail."""

    @property
    def balance(self) -> int:
        return self.awarded + self.granted - self.spent - self.deducted

    @property
    def lifetime(self) -> int:
        return self.awarded + self.granted

    def to_dict(self) -> dict[str, Any]:
        return {
            "awarded": self.awarded,
            "granted": self.granted,
            "spent": self.spent,
            "deducted": self.deducted,
            "balance": self.balance,
            "lifetime": self.lifetime,
            "level": self.level,
            "level_by_rule": rules.level_for(max(self.lifetime, 0)).number,
            "badges": list(self.badges),
        }


@dataclass(frozen=True)
class ReadModelView:
    """What the read models say of the user now (the other side of the comparison)."""

    balance: int
    lifetime: int
    level: int
    badges: tuple[str, ...]
    position: int | None = None
    """The read model's position (events it has applied)."""


@dataclass
class Explanation:
    telegram_id: int
    position: int
    """Explained up to this log position."""
    besitos: list[BesitosLine] = field(default_factory=list)
    levels: list[LevelLine] = field(default_factory=list)
    badges: list[BadgeLine] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    read_model: ReadModelView | None = None
    differences: list[str] = field(default_factory=list)
    irregular: list[str] = field(default_factory=list)
    undecodable: dict[int, str] = field(default_factory=dict)
    compared_at: int | None = None
    """Set when the read model is behind `position`: the comparison is with the totals at
    the read model's own position (later events are explained, not yet in the read model)."""

    @property
    def consistent(self) -> bool:
        return not (self.differences or self.irregular or self.undecodable)

    def to_dict(self) -> dict[str, Any]:
        rm = self.read_model
        return {
            "telegram_id": self.telegram_id,
            "position": self.position,
            "consistent": self.consistent,
            "totals": self.totals.to_dict(),
            "read_model": None if rm is None else {
                "balance": rm.balance, "lifetime": rm.lifetime, "level": rm.level,
                "badges": list(rm.badges), "position": rm.position,
            },
            "compared_at": self.compared_at,
            "differences": self.differences,
            "irregular": self.irregular,
            "undecodable": {str(k): v for k, v in sorted(self.undecodable.items())},
            "besitos": [line.to_dict() for line in self.besitos],
            "levels": [line.to_dict() for line in self.levels],
            "badges": [line.to_dict() for line in self.badges],
        }  # fmt: skip


def describe_cause(
    causation: str | None, actor: str | None, index: Mapping[tuple[UUID, int], LoggedRow],
    names: Mapping[int, str],
) -> Cause:  # fmt: skip
    """The causation and actor in words: a Telegram update, an admin act, a job, or a policy
    reacting to one of the user's events (named by its position when it is in the trail)."""
    who = actor or "unknown actor"
    if causation is None:
        return Cause(causation, actor, f"no causation recorded ({who})")
    if (found := _TELEGRAM.match(causation)) is not None:
        bot = found.group(1)
        where = f" of bot {bot}" if bot is not None else ""
        return Cause(causation, actor, f"Telegram update {found.group(2)}{where}, by {who}")
    if causation.startswith("cli:"):
        return Cause(causation, actor, f"console act {causation[4:12]}…, by {who}")
    if causation.startswith("job:"):
        return Cause(causation, actor, f"job {causation[4:]}, by {who}")
    if (found := _EVENT_REF.match(causation)) is not None:
        row = index.get((UUID(found.group(1)), int(found.group(2))))
        if row is not None:
            return Cause(
                causation, actor, f"{who} reacting to {names.get(row.id, '?')} at {row.id}", row.id
            )
        return Cause(causation, actor, f"{who} reacting to {causation}")
    return Cause(causation, actor, f"{causation}, by {who}")


def explain(
    log: EventLog,
    rows: Sequence[LoggedRow],
    telegram_id: int,
    position: int,
    read_model: ReadModelView | None = None,
) -> Explanation:
    """Explain the user's trail `rows` (log order, up to `position`); compare with `read_model`."""
    result = Explanation(telegram_id, position, read_model=read_model)
    names: dict[int, str] = {}
    decoded: list[tuple[LoggedRow, str, Any]] = []
    index: dict[tuple[UUID, int], LoggedRow] = {}
    for row in rows:
        if row.id > position:
            break
        name = log.name_of(row.topic)
        stream = (
            row.originator_id
            if isinstance(row.originator_id, UUID)
            else UUID(str(row.originator_id))
        )
        index[(stream, row.originator_version)] = row
        names[row.id] = name
        if name not in BESITOS_EVENTS | BADGE_EVENTS | {"LevelReached"}:
            continue
        try:
            decoded.append((row, name, log.decode(row)))
        except Exception as error:
            result.undecodable[row.id] = corrupt_detail(row, name, error)
    definitions = _definitions(log, {e.badge_slug for _, n, e in decoded if n == "BadgeAwarded"},
                               position, result.undecodable)  # fmt: skip
    slugs: dict[UUID, str] = {}
    held: dict[str, bool] = {}
    totals = result.totals
    last_besitos: int | None = None
    for row, name, event in decoded:
        cause = describe_cause(
            getattr(event, "causation", None), getattr(event, "actor", None), index, names
        )
        at = getattr(event, "timestamp", None)
        if name in BESITOS_EVENTS:
            line = _besitos(row, name, event, at, cause, totals)
            result.besitos.append(line)
            last_besitos = row.id
            if line.irregular:
                result.irregular.append(f"position {row.id}: {line.irregular}")
        elif name == "LevelReached":
            level = rules.LEVELS[event.level - 1] if 1 <= event.level <= len(rules.LEVELS) else None
            by_rule = rules.level_for(max(totals.lifetime, 0))
            irregular = None
            if level is None or by_rule.number != event.level:
                irregular = (
                    f"level {event.level} recorded with {totals.lifetime} lifetime besitos; "
                    f"the rule gives {by_rule.number}"
                )
                result.irregular.append(f"position {row.id}: {irregular}")
            rule = LEVEL_RULE.format(
                number=event.level, name=event.name,
                threshold=level.threshold if level is not None else 0,
            )  # fmt: skip
            totals.level = event.level
            result.levels.append(LevelLine(row.id, at, event.level, event.name, totals.lifetime,
                                           rule, last_besitos, cause, irregular))  # fmt: skip
        else:
            stream = event.originator_id
            if name == "BadgeAwarded":
                slugs[stream] = event.badge_slug
            slug = slugs.get(stream, "?")
            definition = _definition_at(definitions.get(slug, []), row.id)
            held[slug] = name != "BadgeRevoked"
            result.badges.append(BadgeLine(
                row.id, at, name, slug,
                definition.get("name") if definition else None,
                definition.get("description") if definition else None,
                criteria_rule(definition.get("criteria") if definition else None),
                tuple(_evidence(ref, index, names) for ref in getattr(event, "evidence", ()) or ()),
                cause, getattr(event, "reason", None),
            ))  # fmt: skip
    totals.badges = tuple(sorted(slug for slug, is_held in held.items() if is_held))
    if read_model is not None:
        at = read_model.position
        if at is not None and at < position:
            result.compared_at = at
            result.differences = _compare(_totals_at(result, at), read_model)
        else:
            result.differences = _compare(totals, read_model)
    return result


def _totals_at(result: Explanation, position: int) -> Totals:
    """The totals as of `position` (a read model that has not caught up with the log yet is
    compared with the events it has seen, not with later ones)."""
    at = Totals()
    for line in result.besitos:
        if line.position > position:
            break
        if line.event == "PointsAwarded":
            at.awarded += line.amount
        elif line.event == "PointsSpent":
            at.spent -= line.amount
        elif line.amount > 0:
            at.granted += line.amount
        else:
            at.deducted -= line.amount
    for level in result.levels:
        if level.position <= position:
            at.level = level.level
    held: dict[str, bool] = {}
    for badge in result.badges:
        if badge.position <= position:
            held[badge.slug] = badge.event != "BadgeRevoked"
    at.badges = tuple(sorted(slug for slug, is_held in held.items() if is_held))
    return at


def _besitos(row: LoggedRow, name: str, event: Any, at: datetime | None, cause: Cause,
             totals: Totals) -> BesitosLine:  # fmt: skip
    amount = int(event.amount)
    irregular = None
    if name == "PointsAwarded":
        kind, reference = str(event.source), str(event.reference)
        rule, fixed = SOURCE_RULES.get(kind, (f"unknown source {kind!r}", None))
        if fixed is not None and amount != fixed:
            irregular = f"{kind} award of {amount}; the rule gives {fixed}"
        totals.awarded += amount
        delta, earned = amount, amount
    elif name == "PointsSpent":
        kind, reference, rule = str(event.purpose), str(event.reference), SPEND_RULE
        totals.spent += amount
        delta, earned = -amount, 0
    else:
        admin = f"admin {event.admin_id}: {event.reason}"
        kind, reference = ("grant", admin) if amount > 0 else ("deduct", admin)
        rule = GRANT_RULE if amount > 0 else DEDUCT_RULE
        if amount > 0:
            totals.granted += amount
        else:
            totals.deducted -= amount
        delta, earned = amount, max(amount, 0)
    return BesitosLine(row.id, at, name, row.originator_version, kind, delta, earned, reference,
                       rule, cause, totals.balance, totals.lifetime, irregular)  # fmt: skip


def _definitions(
    log: EventLog, slugs: set[str], position: int, undecodable: dict[int, str]
) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Each badge's definition as it stood from each position on (defined, then changed)."""
    found: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    if not slugs:
        return found
    streams = {badge_id(slug): slug for slug in slugs}
    for row in log.streams(list(streams), position):
        name = log.name_of(row.topic)
        if name not in ("BadgeDefined", "BadgeChanged"):
            continue
        try:
            event = log.decode(row)
        except Exception as error:
            undecodable[row.id] = corrupt_detail(row, name, error)
            continue
        slug = streams[event.originator_id]
        found.setdefault(slug, []).append((row.id, {
            "name": event.name, "description": event.description,
            "criteria": dict(event.criteria or {}),
        }))  # fmt: skip
    return found


def _definition_at(
    history: list[tuple[int, dict[str, Any]]], position: int
) -> dict[str, Any] | None:
    current = None
    for at, definition in history:
        if at > position:
            break
        current = definition
    return current


def _evidence(reference: str, index: Mapping[tuple[UUID, int], LoggedRow],
              names: Mapping[int, str]) -> Evidence:  # fmt: skip
    found = _EVENT_REF.match(reference)
    if found is None:
        return Evidence(reference, None, None)
    row = index.get((UUID(found.group(1)), int(found.group(2))))
    if row is None:
        return Evidence(reference, None, None)
    return Evidence(reference, row.id, names.get(row.id))


def _compare(totals: Totals, read_model: ReadModelView) -> list[str]:
    differences = []
    for what, events, model in (
        ("balance", totals.balance, read_model.balance),
        ("lifetime", totals.lifetime, read_model.lifetime),
        ("level", totals.level, read_model.level),
    ):
        if events != model:
            differences.append(
                f"{what}: the events give {events}, the read model says {model} "
                f"(difference {model - events:+d})"
            )
    if set(totals.badges) != set(read_model.badges):
        extra = sorted(set(read_model.badges) - set(totals.badges))
        missing = sorted(set(totals.badges) - set(read_model.badges))
        differences.append(
            f"badges: the read model also shows {extra or 'nothing'}, lacks {missing or 'nothing'}"
        )
    return differences
