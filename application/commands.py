"""Commands: one typed message per use case, handled by the bus (`application.bus`).

A command says what is asked, in data, and which key orders it: commands with one key (one
user, one badge, one story) run one at a time in the order they were issued, whatever thread or
event loop issues them; commands with different keys run side by side. Who asked, and why, is
not part of the command but of its `Origin`, given to the bus alongside it.

Commands are frozen: the bus may hand one to another thread, and a retry after a version conflict
decides again from the same command.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from dianabot.domain.badge import BadgeSpec
from dianabot.domain.rules import PointSource
from dianabot.domain.story import LoadedStory, Story
from dianabot.domain.vip import TOKEN_PREFIX, hash_token

DEFAULT_STORY = "diana"
"""The bundled story's slug (content/story.yaml)."""

DEFAULT_TOKEN_VALIDITY_DAYS = 30
"""How long an issued VIP token can be redeemed."""

TOKEN_SECRET_BYTES = 24
"""32 URL-safe characters: `vip-` + 32 fits a Telegram deep-link payload (64 characters)."""


class Caller(StrEnum):
    """Who may issue a command, as the bus tells from its `Origin` (`application.authority`)."""

    ADMIN = "admin"
    """A configured admin (`DIANABOT_ADMIN_IDS`), or the operator at the local console."""
    PLAYER = "player"
    """The Telegram user the command is about, acting for themself (`Origin.telegram`)."""
    SYSTEM = "system"
    """The application's own jobs and policies (`Origin.system`, `Origin.policy`)."""


ADMIN = frozenset({Caller.ADMIN})
ADMIN_OR_SYSTEM = frozenset({Caller.ADMIN, Caller.SYSTEM})
PLAYER_OR_SYSTEM = frozenset({Caller.PLAYER, Caller.SYSTEM})
ANYONE_FOR_THEMSELF = frozenset({Caller.ADMIN, Caller.PLAYER, Caller.SYSTEM})


class Command:
    """A use case asked for. `key` orders it: one key's commands run one at a time, in order.

    `callers` says who may issue it; the bus refuses anyone else as `not_admin`, recording
    nothing. A command type that does not say is refused for everyone."""

    __slots__ = ()

    callers: ClassVar[frozenset[Caller]] = frozenset()

    def telegram_ids(self) -> tuple[int, ...]:
        """The Telegram user ids this command names, checked at the boundary."""
        return ()

    @property
    def key(self) -> Hashable:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class PlayerCommand(Command):
    """A command about one player: ordered by the player's Telegram id."""

    telegram_id: int

    callers: ClassVar[frozenset[Caller]] = PLAYER_OR_SYSTEM

    @property
    def key(self) -> Hashable:
        return self.telegram_id

    def telegram_ids(self) -> tuple[int, ...]:
        return (self.telegram_id,)


# ----- points ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterPlayer(PlayerCommand):
    """Idempotent: registering an existing user records nothing and succeeds."""

    callers: ClassVar[frozenset[Caller]] = ANYONE_FOR_THEMSELF

    display_name: str
    language_code: str = ""


@dataclass(frozen=True, slots=True)
class ForgetPlayer(PlayerCommand):
    """An admin records that a user's personal data is erased (`PlayerForgotten`); the store
    then destroys the user's key (`DianaApplication.forget_player`). Idempotent: a forgotten
    user records nothing."""

    callers: ClassVar[frozenset[Caller]] = ADMIN


@dataclass(frozen=True, slots=True)
class ReactToPost(PlayerCommand):
    post: str
    emoji: str


@dataclass(frozen=True, slots=True)
class CountMessage(PlayerCommand):
    message: str


@dataclass(frozen=True, slots=True)
class AnswerPoll(PlayerCommand):
    poll: str


@dataclass(frozen=True, slots=True)
class CheckIn(PlayerCommand):
    pass


@dataclass(frozen=True, slots=True)
class AwardPoints(PlayerCommand):
    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    source: PointSource
    amount: int
    reference: str


@dataclass(frozen=True, slots=True)
class SpendPoints(PlayerCommand):
    amount: int
    purpose: str
    reference: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantPoints(PlayerCommand):
    """An admin gives points (refused `not_admin` for anyone else). Named fields after the
    player's id, so the two ids are never swapped."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    admin_id: int
    amount: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeductPoints(PlayerCommand):
    """An admin takes points away (refused `not_admin` for anyone else)."""

    callers: ClassVar[frozenset[Caller]] = ADMIN

    admin_id: int
    amount: int
    reason: str


# ----- badges ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DefineBadge(Command):
    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    spec: BadgeSpec

    @property
    def key(self) -> Hashable:
        return ("badge", self.spec.slug)


@dataclass(frozen=True, slots=True)
class ChangeBadge(Command):
    callers: ClassVar[frozenset[Caller]] = ADMIN

    spec: BadgeSpec

    @property
    def key(self) -> Hashable:
        return ("badge", self.spec.slug)


@dataclass(frozen=True, slots=True)
class RetireBadge(Command):
    callers: ClassVar[frozenset[Caller]] = ADMIN

    slug: str
    reason: str

    @property
    def key(self) -> Hashable:
        return ("badge", self.slug)


@dataclass(frozen=True, slots=True)
class AwardBadge(Command):
    """Award once: a second award (even from another process) is refused as already_held.

    Ordered by the holding (badge and user), not the user: awards touch no Player stream."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    slug: str
    telegram_id: int
    evidence: Sequence[str]

    @property
    def key(self) -> Hashable:
        return ("award", self.slug, self.telegram_id)

    def telegram_ids(self) -> tuple[int, ...]:
        return (self.telegram_id,)


@dataclass(frozen=True, slots=True)
class AwardEarnedBadges(PlayerCommand):
    """Award, together, every badge of `slugs` whose criteria the player now meets and that
    they do not hold (story criteria judged on `story_slug`'s progress). Accepted with no events
    when none is due. The badge policies issue it, with the triggering event as evidence."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    slugs: tuple[str, ...]
    evidence: tuple[str, ...]
    story_slug: str = ""
    streak: int = 0
    """The check-in streak the evidence recorded: a `checkin_streak` badge is earned when it or
    the current streak reaches its days (a policy that lags judges the check-in it reacts to,
    not a streak broken since)."""


@dataclass(frozen=True, slots=True)
class RevokeLapsedBadges(PlayerCommand):
    """Revoke, together, every badge of `slugs` the player holds whose criteria no longer hold
    (the VIP badge once the period has ended). Accepted with no events when none has lapsed:
    a badge whose criteria hold again (a new grant) is kept."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    slugs: tuple[str, ...]
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevokeBadge(Command):
    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    slug: str
    telegram_id: int
    reason: str

    @property
    def key(self) -> Hashable:
        return ("award", self.slug, self.telegram_id)

    def telegram_ids(self) -> tuple[int, ...]:
        return (self.telegram_id,)


# ----- narrative ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishStory(Command):
    """Publish a validated story as a new version (refused `invalid_story` when validation
    finds problems; ok with no events when it is the latest already). Players standing on a
    fragment the new version removed are relocated right after."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    story: LoadedStory | Story

    @property
    def content(self) -> Story:
        return self.story.story if isinstance(self.story, LoadedStory) else self.story

    @property
    def key(self) -> Hashable:
        return ("story", self.content.slug)


@dataclass(frozen=True, slots=True)
class StartStory(PlayerCommand):
    """Start the story, or relocate a player whose fragment was removed. Idempotent."""

    slug: str = DEFAULT_STORY


@dataclass(frozen=True, slots=True)
class MakeChoice(PlayerCommand):
    """Take a choice of the current fragment. Refusals: invalid_choice, vip_required (with a
    VipGateHit recorded), clue_required, insufficient_points, story_not_started,
    story_not_published, unknown_user, duplicate (the same update again)."""

    choice_id: str
    slug: str = DEFAULT_STORY


@dataclass(frozen=True, slots=True)
class RelocateProgress(PlayerCommand):
    """Move one player off a fragment the published story no longer has (ok, no events, if
    they are not stranded)."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    slug: str = DEFAULT_STORY


@dataclass(frozen=True, slots=True)
class RewardDecision(PlayerCommand):
    """What a decision in a story earns, in one transaction: +5 besitos for the first decision
    in `chapter` (once per story and chapter, forever; 0: no chapter known) and every badge of
    `slugs` now earned (`first_decision`). Accepted with no events when nothing is due."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    story_slug: str
    chapter: int
    slugs: tuple[str, ...]
    evidence: tuple[str, ...]


# ----- VIP ------------------------------------------------------------------------------------


def new_vip_token() -> str:
    """A fresh one-time VIP token's plaintext."""
    return f"{TOKEN_PREFIX}{secrets.token_urlsafe(TOKEN_SECRET_BYTES)}"


@dataclass(frozen=True, slots=True)
class IssueVipToken(Command):
    """An admin issues a one-time token worth `days` of VIP, redeemable for `valid_days`.

    The plaintext `token` is made with the command (never shown by its repr), returned in the
    result's details once and never stored: the store keeps only its hash."""

    callers: ClassVar[frozenset[Caller]] = ADMIN

    admin_id: int
    days: int
    valid_days: int = DEFAULT_TOKEN_VALIDITY_DAYS
    token: str = field(default_factory=new_vip_token, repr=False)

    @property
    def token_hash(self) -> str:
        return hash_token(self.token)

    @property
    def key(self) -> Hashable:
        return ("vip-token", self.token_hash)


@dataclass(frozen=True, slots=True)
class RedeemVipToken(PlayerCommand):
    """VipTokenRedeemed and the Player's VipGranted, saved together. Refusals: invalid_token
    (malformed, unknown or forged), token_used, token_expired, unknown_user, duplicate."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.PLAYER})

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class GrantVip(PlayerCommand):
    """A VIP period from elsewhere: a Telegram Stars payment (source "stars", reference the
    charge id) or an admin (source "admin"). Extends an active period. A charge id extends VIP
    once, whatever update delivers it: the same one again is refused `duplicate`."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    days: int
    source: str
    reference: str


@dataclass(frozen=True, slots=True)
class ExpireVip(PlayerCommand):
    """End a player's VIP period that is due (refused `vip_not_due` otherwise)."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM


@dataclass(frozen=True, slots=True)
class InviteToVip(PlayerCommand):
    """Queue one invitation to VIP for the bot to send (`VipInvitationQueued` on the Player),
    after the VIP gate hit named by `evidence`. Refusals: already_vip, already_invited (within
    `rules.VIP_INVITATION_PERIOD` of the last one)."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    story_slug: str
    fragment_id: str
    choice_id: str | None
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BuyVipWithBesitos(PlayerCommand):
    """VIP for besitos (`domain.vip.VIP_BESITOS_COST` for `VIP_BESITOS_DAYS`): the spend and the
    grant in one transaction, or nothing (`insufficient_points`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordStarsPayment(PlayerCommand):
    """A Telegram Stars payment went through (the bot's `successful_payment`):
    `StarsPaymentReceived` (by charge id: recorded once, ever) and
    `VipGranted(source="stars", reference=charge_id)` together.
    The same charge again is refused `duplicate`, recording nothing."""

    charge_id: str
    amount: int
    currency: str
    payload: str
    days: int
    is_recurring: bool = False
    is_first_recurring: bool = False
    subscription_expiration_date: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundStarsPayment(PlayerCommand):
    """An admin refunded a payment (after Telegram's `refundStarPayment`): `StarsPaymentRefunded`
    and the Player's `VipShortened` (and `VipExpired` if that ends it), together. Refusals:
    unknown_charge, already_refunded, not_admin."""

    callers: ClassVar[frozenset[Caller]] = ADMIN

    charge_id: str
    admin_id: int
    reason: str = "refund"


@dataclass(frozen=True, slots=True)
class ConfirmAdult(PlayerCommand):
    """The one-time age and consent confirmation before the VIP arc (`AdultContentConfirmed`)."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.PLAYER})

    terms: str = "v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordVipChannel(PlayerCommand):
    """What happened in the VIP channel (`VipChannelChanged`): a link sent, a join, a leave, a
    removal when VIP ended, a link revoked. A change that changes nothing records nothing."""

    change: str
    invite_link: str = ""
    detail: str = ""
    delivered: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordVipNotice(PlayerCommand):
    """A VIP message the bot sent (an invitation queued by vip-conversion): `VipNoticeSent`."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    kind: str
    reference: str
    delivered: bool = True


# ----- coordination ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParkEvent(Command):
    """A policy gives up on the event at `position` after `attempts` tries: recorded (once per
    policy and position) with the policy's new position, so the policy moves on."""

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    policy: str
    position: int
    originator_id: str
    originator_version: int
    event_name: str
    error: str
    attempts: int

    @property
    def key(self) -> Hashable:
        return ("parked", self.policy, self.position)


@dataclass(frozen=True, slots=True)
class RetryParkedEvent(Command):
    """Try a parked event again: `reaction` is what the policy now decides for it (None:
    nothing). Its effect and the parked event's resolution are saved together, once; a rule
    refusing the reaction resolves it as `refused: <reason>`. Refused `already_resolved` or
    `not_parked`. Ordered by the reaction's key (a user's commands stay in order)."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    policy: str
    position: int
    reaction: Command | None

    @property
    def key(self) -> Hashable:
        if self.reaction is not None:
            return self.reaction.key
        return ("parked", self.policy, self.position)

    def telegram_ids(self) -> tuple[int, ...]:
        return self.reaction.telegram_ids() if self.reaction is not None else ()


@dataclass(frozen=True, slots=True)
class FailParkedRetry(Command):
    """A retry of a parked event failed again (`error`): recorded, the event stays parked."""

    callers: ClassVar[frozenset[Caller]] = ADMIN_OR_SYSTEM

    policy: str
    position: int
    error: str

    @property
    def key(self) -> Hashable:
        return ("parked", self.policy, self.position)


class JournalCommand(Command):
    """Appends to the system's own stream (`domain.incidents.Journal`). The bus never journals
    the failure of one of these (that could only fail the same way again)."""

    __slots__ = ()

    callers: ClassVar[frozenset[Caller]] = frozenset({Caller.SYSTEM})

    @property
    def key(self) -> Hashable:
        return ("journal",)


@dataclass(frozen=True, slots=True)
class RecordCommandFailure(JournalCommand):
    """A command failed for a reason other than a rule refusal (`corrupt_history`, `conflict`
    after the bus gave up): `CommandFailed`, with the failed command's causation. Recorded
    once per command, key and causation."""

    command: str
    command_key: str
    telegram_id: int | None
    outcome: str
    message: str
    requested_by: str
    stream: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class RecordConsistencyCheck(JournalCommand):
    """What a consistency check of one user found, at log `position`: `ConsistencyChecked`."""

    telegram_id: int
    consistent: bool
    differences: int
    position: int
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordReconciliation(JournalCommand):
    """A full reconciliation's summary: `ReconciliationCompleted` (checks: name and count)."""

    position: int
    consistent: bool
    differences: int
    checks: tuple[tuple[str, int], ...]
    fixes: int = 0
    seconds: float = 0.0
