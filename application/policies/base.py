"""What a policy is: a reaction to some kinds of events, as at most one command each.

A policy reads nothing of the log itself. The subscription runner
(`projections.subscriptions.PolicyRunner`) follows the notification log from the policy's own
durable position, decodes each event once for every policy that wants it, and hands it to
`react`; the command it returns goes through the command bus with the policy's new position
(a tracking record) in the same transaction. So an effect happens exactly once, even if the
worker dies between deciding and recording, or sees the event again. One command per event
keeps that true: a reaction with several effects is one command whose handler saves several
aggregates together (`AwardEarnedBadges`).

A policy decides from the event and, when it must, the current state (through the
application's loading methods); the command's handler checks the rules again when it runs, so
a reaction that has become moot is refused or does nothing, and the policy moves on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

from dianabot.application.app import CoreApplication
from dianabot.application.commands import AwardEarnedBadges, Command
from dianabot.application.handlers.badges import due_badges
from dianabot.application.policies.catalogue import DIRECTORY_EVENTS, BadgeDirectory
from dianabot.domain.ids import badge_award_id

TRACKING_PREFIX = "policy:"


class Policy:
    """A reaction to some events. Subclasses set `name` and `handles` and write `react`."""

    name: ClassVar[str]
    """Stable: the policy's position is recorded under it (`tracking_name`)."""
    handles: ClassVar[frozenset[str]]
    """The names of the event classes it reacts to (others are never decoded for it)."""

    def __init__(self, app: CoreApplication) -> None:
        self.app = app
        self._owners: OrderedDict[UUID, int | None] = OrderedDict()

    @property
    def tracking_name(self) -> str:
        return TRACKING_PREFIX + self.name

    def react(self, event: Any) -> Command | None:
        """The command this event calls for, or None. May raise: the runner retries, then
        parks the event."""
        raise NotImplementedError

    def owner(self, event: Any) -> int | None:
        """The Telegram id of the user whose stream `event` is on (a player's or a story
        progress's), None for other streams. Remembered for the most recent streams."""
        stream = event.originator_id
        if stream in self._owners:
            self._owners.move_to_end(stream)
            return self._owners[stream]
        aggregate = self.app._load(stream)
        telegram_id = getattr(aggregate, "telegram_id", None)
        owner = telegram_id if isinstance(telegram_id, int) else None
        self._owners[stream] = owner
        if len(self._owners) > 10_000:
            self._owners.popitem(last=False)
        return owner


REVOKED = "BadgeRevoked"
MAX_HELD = 100_000


class BadgePolicy(Policy):
    """A policy whose effect is awarding badges: it issues `AwardEarnedBadges` only when some
    badge is due now (most events earn none, and each command costs a transaction).

    It knows which badges exist from a `BadgeDirectory`, kept current by the badge definitions'
    own events, which every badge policy therefore handles too (added to `handles` here);
    subclasses write `earn(event)` for the events they name.

    It also remembers the awards it found held, so an event whose badges are all held already
    (most events, once a player has them) costs no load at all. Only a revocation takes a
    badge away, and every badge policy handles `BadgeRevoked` to forget that award: what it
    remembers is never staler than the event it reacts to."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "handles" in cls.__dict__:
            cls.handles = cls.handles | DIRECTORY_EVENTS | {REVOKED}

    def __init__(self, app: CoreApplication) -> None:
        super().__init__(app)
        self.directory = BadgeDirectory(app)
        self._held: set[UUID] = set()
        """Award streams found held (`badge_award_id`), until a revocation on them passes."""

    def react(self, event: Any) -> Command | None:
        if self.directory.noted(event):
            return None
        if type(event).__name__ == REVOKED:
            self._held.discard(event.originator_id)
            return None
        return self.earn(event)

    def earn(self, event: Any) -> Command | None:
        """The award (or revocation) this event calls for, or None."""
        raise NotImplementedError

    def award_due(
        self,
        telegram_id: int,
        slugs: Sequence[str],
        event: Any,
        story_slug: str = "",
        streak: int = 0,
    ) -> Command | None:
        streams = {slug: badge_award_id(slug, telegram_id) for slug in slugs}
        open_slugs = [slug for slug in slugs if streams[slug] not in self._held]
        if not open_slugs:
            return None
        now = self.app.clock.now()
        held: set[str] = set()
        due = due_badges(
            self.app,
            telegram_id,
            open_slugs,
            story_slug,
            now,
            streak,
            self.directory.definition,
            held,
        )
        if len(self._held) + len(held) > MAX_HELD:
            self._held.clear()
        self._held.update(streams[slug] for slug in held)
        if not due:
            return None
        slugs = tuple(slug for slug, _, _ in due)
        return AwardEarnedBadges(telegram_id, slugs, evidence(event), story_slug, streak)


def evidence(event: Any) -> tuple[str, ...]:
    """How an award names the event that earned it: `event:<stream>:<version>`."""
    return (f"event:{event.originator_id}:{event.originator_version}",)
