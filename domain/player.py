"""The Player aggregate: one Telegram user's besitos, level, check-ins, cooldowns and reactions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dianabot.domain import rules
from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.errors import (
    AlreadyAnswered,
    AlreadyCheckedIn,
    AlreadyInvited,
    AlreadyReacted,
    AlreadyVip,
    Cooldown,
    DuplicateCommand,
    InsufficientPoints,
    InvalidInput,
)
from dianabot.domain.growset import GrowSet
from dianabot.domain.ids import player_id
from dianabot.domain.personal import PersonalText, personal, subject_of
from dianabot.domain.recent import RecentKeys
from dianabot.domain.rules import PointSource
from dianabot.domain.vip import (
    PAID_SOURCES,
    VIP_BESITOS_COST,
    VIP_BESITOS_DAYS,
    VIP_SOURCES,
    VIP_SPEND_PURPOSE,
    VipNotDue,
    checked_days,
)
from eventsourcing.domain import event

MAX_REFERENCE_LENGTH = 200
MAX_NAME_LENGTH = 64
MAX_LANGUAGE_LENGTH = 8
_NO_REFERENCES: GrowSet[str] = GrowSet()
_DECISION_SOURCE = str(PointSource.STORY_DECISION)
DEFAULT_LANGUAGE = "es"
PERSONAL_FIELDS = ("display_name", "language_code")
"""The Player's personal fields (in its state, `PlayerRegistered` and `PlayerReturned`)."""
VIP_CHANNEL_CHANGES = ("invited", "joined", "left", "removed", "revoked")
"""`VipChannelChanged.change`: a one-use link sent; the user joined; left; was removed when VIP
ended; their unused link was revoked (someone else used it)."""


def _checked_text(value: object, what: str, *, max_length: int = MAX_REFERENCE_LENGTH) -> str:
    """An identifier (a post, poll, message, purpose, reference): control characters removed;
    refused when empty or too long."""
    if isinstance(value, str):
        value = rules.without_controls(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters")
    return value


def _profile(telegram_id: int, display_name: str, language_code: str) -> tuple[PersonalText, ...]:
    """The user's name and language, cleaned, as personal values (a name falls back to
    `user <id>`, a language to Spanish)."""
    name = rules.clean_text(display_name, MAX_NAME_LENGTH) or f"user {telegram_id}"
    language = rules.clean_text(language_code, MAX_LANGUAGE_LENGTH).lower() or DEFAULT_LANGUAGE
    return personal(telegram_id, name), personal(telegram_id, language)


def _wrap_personal(state: dict[str, Any]) -> None:
    """An upcaster's step: plain-text personal fields become legacy `PersonalText` values."""
    subject = subject_of(state["telegram_id"])
    for name in PERSONAL_FIELDS:
        value = state.get(name)
        if isinstance(value, str):
            state[name] = PersonalText(subject, value, legacy=True)


def _free_text(value: object, what: str) -> str:
    """Free text (a reason, a payment reference): cleaned and cut, refused only when empty."""
    text = rules.clean_text(value, MAX_REFERENCE_LENGTH)
    if not text:
        raise InvalidInput(f"{what} must be a non-empty string")
    return text


class Player(DianaAggregate):
    """A user of the bot. Balance never goes below zero; level follows lifetime earned besitos."""

    @staticmethod
    def create_id(telegram_id: int) -> UUID:
        return player_id(telegram_id)

    class_version = 2
    """Version 2 holds the personal fields as `PersonalText` (encrypted by the store); a
    version 1 snapshot held plain strings, read through `upcast_v1_v2`."""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        _wrap_personal(state)

    class PlayerRegistered(DianaAggregate.Created):
        """Version 2 added `language_code` (which locale to answer in); v1 events upcast to 'es'.
        Version 3 holds `display_name` and `language_code` as `PersonalText`, which the store
        encrypts with the user's key; v2 events (plain text) read through `upcast_v2_v3` as
        legacy values, masked by the store once the user is forgotten."""

        class_version = 3
        telegram_id: int
        display_name: PersonalText
        language_code: PersonalText

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["language_code"] = DEFAULT_LANGUAGE

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            _wrap_personal(state)

    @classmethod
    def register(
        cls, telegram_id: int, display_name: str, cause: Cause, language_code: str = ""
    ) -> Player:
        rules.checked_telegram_id(telegram_id)
        name, language = _profile(telegram_id, display_name, language_code)
        return cls(
            telegram_id=telegram_id,
            display_name=name,
            language_code=language,
            **cause.event_fields(),
        )

    @event(PlayerRegistered)
    def __init__(
        self,
        telegram_id: int,
        display_name: PersonalText,
        language_code: PersonalText,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.telegram_id = telegram_id
        self.display_name = display_name
        self.language_code = language_code
        self.registered_at = timestamp
        self.balance = 0
        self.lifetime_earned = 0
        self.level = 1
        self.streak = 0
        self.last_checkin_at: datetime | None = None
        self.last_message_at: datetime | None = None
        self.reacted_posts: GrowSet[str] = GrowSet()
        self.answered_polls: GrowSet[str] = GrowSet()
        self.vip_until: datetime | None = None
        self.vip_references: GrowSet[str] = GrowSet()
        self.decision_chapters: GrowSet[str] = GrowSet()
        self.recent_commands = RecentKeys()

    # ----- personal data ----------------------------------------------------------------------

    @property
    def forgotten(self) -> bool:
        """Whether the user's personal data is erased (forgotten, and not come back since)."""
        return self.display_name.erased

    def forget(self, cause: Cause) -> bool:
        """Record that the user's personal data is erased (`dianabot admin forget`); the store
        destroys the key. False (nothing recorded) if already forgotten: forgetting again only
        repeats the store's erasure."""
        if self.forgotten:
            return False
        self._refuse_duplicate("forget", cause)
        self._forgotten(**cause.event_fields())
        return True

    def come_back(self, display_name: str, language_code: str, cause: Cause) -> bool:
        """A forgotten user registers again: their name and language are recorded anew (under
        a new key). False (nothing recorded) for a user who was not forgotten."""
        if not self.forgotten:
            return False
        self._refuse_duplicate("register", cause)
        name, language = _profile(self.telegram_id, display_name, language_code)
        self._returned(display_name=name, language_code=language, **cause.event_fields())
        return True

    @event("PlayerForgotten")
    def _forgotten(self, timestamp: datetime, causation: str, actor: str) -> None:
        self.display_name = self.display_name.erased_copy()
        self.language_code = self.language_code.erased_copy()
        self._remember("forget", causation, timestamp)

    @event("PlayerReturned")
    def _returned(
        self,
        display_name: PersonalText,
        language_code: PersonalText,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.display_name = display_name
        self.language_code = language_code
        self._remember("register", causation, timestamp)

    # ----- earning --------------------------------------------------------------------------

    def react(self, post: str, emoji: str, cause: Cause) -> None:
        """+10 once per post, whatever the emoji; changing the emoji later awards nothing."""
        post = _checked_text(post, "post reference")
        emoji = _checked_text(emoji, "emoji", max_length=32)
        self._refuse_duplicate("react", cause)
        if post in self.reacted_posts:
            raise AlreadyReacted(f"already reacted to post {post}", post=post)
        self._reaction_recorded(post=post, emoji=emoji, **cause.event_fields())
        self._earn(PointSource.REACTION, rules.REACTION_POINTS, post, cause)

    def count_message(self, message: str, cause: Cause) -> None:
        """+1 per message in the discussion group, at most once every 30 seconds."""
        message = _checked_text(message, "message reference")
        self._refuse_duplicate("message", cause)
        if self.last_message_at is not None:
            elapsed = cause.at - self.last_message_at
            if elapsed < rules.MESSAGE_COOLDOWN:
                raise Cooldown(
                    "message points are on cooldown", retry_after=rules.MESSAGE_COOLDOWN - elapsed
                )
        self._message_counted(message=message, **cause.event_fields())
        self._earn(PointSource.MESSAGE, rules.MESSAGE_POINTS, message, cause)

    def answer_poll(self, poll: str, cause: Cause) -> None:
        """+2 once per poll."""
        poll = _checked_text(poll, "poll id")
        self._refuse_duplicate("poll", cause)
        if poll in self.answered_polls:
            raise AlreadyAnswered(f"already answered poll {poll}", poll=poll)
        self._poll_answered(poll=poll, **cause.event_fields())
        self._earn(PointSource.POLL, rules.POLL_POINTS, poll, cause)

    def check_in(self, cause: Cause) -> None:
        """+10 once per rolling 24 h; +25 more on every 7th consecutive check-in (gap <= 48 h)."""
        self._refuse_duplicate("checkin", cause)
        if self.last_checkin_at is not None:
            elapsed = cause.at - self.last_checkin_at
            if elapsed < rules.CHECKIN_INTERVAL:
                raise AlreadyCheckedIn(
                    "already checked in within the last 24 hours",
                    retry_after=rules.CHECKIN_INTERVAL - elapsed,
                )
        keeps_streak = (
            self.last_checkin_at is not None
            and cause.at - self.last_checkin_at <= rules.STREAK_KEEP_WITHIN
        )
        streak = self.streak + 1 if keeps_streak else 1
        self._checked_in(streak=streak, **cause.event_fields())
        reference = f"checkin:{streak}"
        self._earn(PointSource.CHECKIN, rules.CHECKIN_POINTS, reference, cause)
        if streak % rules.STREAK_BONUS_EVERY == 0:
            self._earn(PointSource.STREAK_BONUS, rules.STREAK_BONUS_POINTS, reference, cause)

    def award(self, source: PointSource, amount: int, reference: str, cause: Cause) -> None:
        """Besitos decided elsewhere (a story reward, a policy bonus): once per cause and source."""
        source = PointSource(source)
        amount = rules.checked_amount(amount)
        reference = _checked_text(reference, "reference")
        self._refuse_duplicate(f"award:{source}", cause)
        self._earn(source, amount, reference, cause)

    def reward_decision(self, story_slug: str, chapter: int, cause: Cause) -> None:
        """+5 besitos for the first decision taken in a chapter of a story: once per (story,
        chapter), forever, whatever cause asks again (the reference is remembered)."""
        reference = rules.decision_reference(story_slug, chapter)
        if reference in self._decision_chapters():
            raise DuplicateCommand(
                f"the first decision in chapter {chapter} of {story_slug!r} was already rewarded",
                causation=cause.causation,
                reference=reference,
            )
        self.award(PointSource.STORY_DECISION, rules.STORY_DECISION_BONUS, reference, cause)

    def decision_rewarded(self, story_slug: str, chapter: int) -> bool:
        return rules.decision_reference(story_slug, chapter) in self._decision_chapters()

    def grant(self, amount: int, admin_id: int, reason: str, cause: Cause) -> None:
        """An admin gives besitos: they count as earned (lifetime, level)."""
        amount = rules.checked_amount(amount)
        reason = _free_text(reason, "reason")
        self._refuse_duplicate("adjust", cause)
        self._points_adjusted(
            admin_id=admin_id, reason=reason, amount=amount, **cause.event_fields()
        )
        self._reach_level(cause)

    def deduct(self, amount: int, admin_id: int, reason: str, cause: Cause) -> None:
        """An admin takes besitos back; never below zero, and the level stays. Any amount up to
        the balance: a balance above the per-amount cap can be taken back too."""
        amount = rules.checked_amount(amount, cap=None)
        reason = _free_text(reason, "reason")
        self._refuse_duplicate("adjust", cause)
        self._require_balance(amount)
        self._points_adjusted(
            admin_id=admin_id, reason=reason, amount=-amount, **cause.event_fields()
        )

    # ----- spending -------------------------------------------------------------------------

    def spend(self, amount: int, purpose: str, reference: str, cause: Cause) -> None:
        """Pay for something: all or nothing, refused when the balance is short."""
        amount = rules.checked_amount(amount)
        purpose = _checked_text(purpose, "purpose", max_length=64)
        reference = _checked_text(reference, "reference")
        self._refuse_duplicate(f"spend:{purpose}", cause)
        self._require_balance(amount)
        self._points_spent(
            purpose=purpose, amount=amount, reference=reference, **cause.event_fields()
        )

    def can_afford(self, amount: int) -> bool:
        return self.balance >= amount

    def vip_active(self, at: datetime) -> bool:
        return self.vip_until is not None and at < self.vip_until

    # ----- VIP period -------------------------------------------------------------------------

    def grant_vip(self, days: int, source: str, reference: str, cause: Cause) -> None:
        """Start a VIP period, or extend an active one (the new days add to its end)."""
        days = checked_days(days)
        if source not in VIP_SOURCES:
            raise InvalidInput(
                f"VIP source must be one of {', '.join(VIP_SOURCES)}, got {source!r}"
            )
        reference = _free_text(reference, "reference")
        self._refuse_duplicate("vip_grant", cause)
        if source in PAID_SOURCES and reference in self._vip_references():
            raise DuplicateCommand(
                f"VIP for {source} {reference} was already granted",
                causation=cause.causation,
                reference=reference,
            )
        start = self.vip_until if self.vip_active(cause.at) and self.vip_until else cause.at
        self._vip_granted(
            source=source,
            days=days,
            until=start + timedelta(days=days),
            reference=reference,
            **cause.event_fields(),
        )

    def vip_expiry_due(self, at: datetime) -> datetime | None:
        """The end of a VIP period that has passed at `at` and has no VipExpired yet, else None."""
        if self.vip_until is None or at < self.vip_until:
            return None
        if getattr(self, "vip_expired_until", None) == self.vip_until:
            return None
        return self.vip_until

    def expire_vip(self, cause: Cause) -> None:
        """Record the end of the period; only once it is due, and once per period."""
        self._refuse_duplicate("vip_expire", cause)
        until = self.vip_expiry_due(cause.at)
        if until is None:
            raise VipNotDue(
                f"user {self.telegram_id} has no ended VIP period to expire",
                vip_until=self.vip_until,
            )
        self._vip_expired(until=until, **cause.event_fields())

    def buy_vip_with_besitos(
        self, cause: Cause, cost: int = VIP_BESITOS_COST, days: int = VIP_BESITOS_DAYS
    ) -> None:
        """VIP for besitos: `PointsSpent` (purpose `vip`) and `VipGranted` (source `besitos`)
        together, or nothing (refused `insufficient_points` when the balance is short)."""
        self._require_balance(cost)
        self.spend(cost, VIP_SPEND_PURPOSE, f"vip:{days}d", cause)
        self.grant_vip(days, "besitos", f"besitos:{cost}", cause)

    def shorten_vip(self, days: int, source: str, reference: str, cause: Cause) -> None:
        """Take back `days` of VIP (a refunded payment): the period ends that much earlier, never
        before now; if it is over then, `VipExpired` is recorded at once (same transaction)."""
        days = checked_days(days)
        reference = _free_text(reference, "reference")
        self._refuse_duplicate("vip_shorten", cause)
        if not self.vip_active(cause.at) or self.vip_until is None:
            return  # the period already ended: nothing of it is left to take back
        until = max(cause.at, self.vip_until - timedelta(days=days))
        self._vip_shortened(
            source=source, days=days, until=until, reference=reference, **cause.event_fields()
        )
        if self.vip_expiry_due(cause.at) is not None:
            self.expire_vip(cause)

    # ----- age and consent gate ---------------------------------------------------------------

    @property
    def adult_confirmed(self) -> bool:
        """Confirmed once to be an adult who wants the VIP arc's flirtatious content."""
        return getattr(self, "adult_confirmed_at", None) is not None

    def confirm_adult(self, terms: str, cause: Cause) -> None:
        """The one-time confirmation before the VIP arc; again is `duplicate`."""
        terms = _checked_text(terms, "terms version", max_length=32)
        self._refuse_duplicate("adult", cause)
        if self.adult_confirmed:
            raise DuplicateCommand(
                f"user {self.telegram_id} already confirmed", causation=cause.causation
            )
        self._adult_confirmed(terms=terms, **cause.event_fields())

    # ----- the VIP channel (followed by the bot) --------------------------------------------

    @property
    def vip_channel(self) -> str:
        """`none`, `invited` (a one-use link sent, not used yet) or `member`."""
        state: str = getattr(self, "vip_channel_state", "none")
        return state

    @property
    def vip_channel_link(self) -> str | None:
        link: str | None = getattr(self, "vip_channel_invite", None)
        return link

    def record_vip_channel(
        self, change: str, invite_link: str, detail: str, delivered: bool, cause: Cause
    ) -> bool:
        """Record what happened in the VIP channel; False (nothing recorded) when it changes
        nothing (a join already known, a removal of someone not there)."""
        if change not in VIP_CHANNEL_CHANGES:
            raise InvalidInput(f"unknown VIP channel change {change!r}")
        invite_link = rules.clean_text(invite_link, MAX_REFERENCE_LENGTH)
        detail = rules.clean_text(detail, MAX_REFERENCE_LENGTH)
        state = self.vip_channel
        if change == "joined" and state == "member":
            return False
        if change in {"left", "removed"} and state == "none":
            return False
        if change == "revoked" and (state != "invited" or invite_link != self.vip_channel_link):
            return False
        self._refuse_duplicate(f"vip_channel:{change}", cause)
        self._vip_channel_changed(
            change=change,
            invite_link=invite_link,
            detail=detail,
            delivered=delivered,
            **cause.event_fields(),
        )
        return True

    def record_vip_notice(self, kind: str, reference: str, delivered: bool, cause: Cause) -> None:
        """A message the bot sent about VIP (an invitation), so it is sent once."""
        kind = _checked_text(kind, "notice kind", max_length=32)
        reference = _checked_text(reference, "reference")
        self._refuse_duplicate(f"vip_notice:{kind}", cause)
        self._vip_notice_sent(
            kind=kind, reference=reference, delivered=delivered, **cause.event_fields()
        )

    # ----- VIP invitations (the vip-conversion policy) --------------------------------------

    @property
    def last_vip_invitation(self) -> datetime | None:
        """When the last VIP invitation was queued (players and snapshots from before
        invitations existed lack the attribute: never)."""
        last: datetime | None = getattr(self, "vip_invited_at", None)
        return last

    def vip_invitation_due(self, at: datetime) -> bool:
        """A free player not invited within `rules.VIP_INVITATION_PERIOD` before `at`."""
        last = self.last_vip_invitation
        return not self.vip_active(at) and (
            last is None or at - last >= rules.VIP_INVITATION_PERIOD
        )

    def invite_to_vip(
        self,
        story_slug: str,
        fragment_id: str,
        choice_id: str | None,
        evidence: list[str],
        cause: Cause,
    ) -> None:
        """Queue one invitation to VIP for the bot to send, after a VIP gate hit: refused
        `already_vip` while VIP is active, `already_invited` within the period."""
        story_slug = _checked_text(story_slug, "story slug", max_length=64)
        fragment_id = _checked_text(fragment_id, "fragment id")
        if choice_id is not None:
            choice_id = _checked_text(choice_id, "choice id")
        evidence = [_checked_text(item, "evidence") for item in evidence]
        if not evidence:
            raise InvalidInput("an invitation names the gate hit that prompted it")
        self._refuse_duplicate("vip_invite", cause)
        if self.vip_active(cause.at):
            raise AlreadyVip(f"user {self.telegram_id} is VIP", vip_until=self.vip_until)
        last = self.last_vip_invitation
        if last is not None and cause.at - last < rules.VIP_INVITATION_PERIOD:
            raise AlreadyInvited(
                f"user {self.telegram_id} was invited to VIP at {last.isoformat()}",
                retry_after=rules.VIP_INVITATION_PERIOD - (cause.at - last),
            )
        self._vip_invitation_queued(
            story_slug=story_slug,
            fragment_id=fragment_id,
            choice_id=choice_id,
            evidence=evidence,
            **cause.event_fields(),
        )

    # ----- invariants -----------------------------------------------------------------------

    def _require_balance(self, amount: int) -> None:
        if self.balance < amount:
            raise InsufficientPoints(
                f"balance {self.balance} is less than {amount}", balance=self.balance, cost=amount
            )

    def _earn(self, source: PointSource, amount: int, reference: str, cause: Cause) -> None:
        self._points_awarded(
            source=str(source), amount=amount, reference=reference, **cause.event_fields()
        )
        self._reach_level(cause)

    def _reach_level(self, cause: Cause) -> None:
        level = rules.level_for(self.lifetime_earned)
        if level.number != self.level:
            self._level_reached(level=level.number, name=level.name, **cause.event_fields())

    # ----- events (state changes only; no checks here, so replay always succeeds) -------------

    @event("ReactionRecorded")
    def _reaction_recorded(
        self, post: str, emoji: str, timestamp: datetime, causation: str, actor: str
    ) -> None:
        self.reacted_posts = self.reacted_posts.added(post)
        self._remember("react", causation, timestamp)

    @event("MessageCounted")
    def _message_counted(
        self, message: str, timestamp: datetime, causation: str, actor: str
    ) -> None:
        self.last_message_at = timestamp
        self._remember("message", causation, timestamp)

    @event("PollAnswered")
    def _poll_answered(self, poll: str, timestamp: datetime, causation: str, actor: str) -> None:
        self.answered_polls = self.answered_polls.added(poll)
        self._remember("poll", causation, timestamp)

    @event("CheckedIn")
    def _checked_in(self, streak: int, timestamp: datetime, causation: str, actor: str) -> None:
        self.streak = streak
        self.last_checkin_at = timestamp
        self._remember("checkin", causation, timestamp)

    @event("PointsAwarded")
    def _points_awarded(
        self,
        source: str,
        amount: int,
        reference: str,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.balance += amount
        self.lifetime_earned += amount
        if source == _DECISION_SOURCE and reference.startswith(rules.DECISION_REFERENCE_PREFIX):
            self.decision_chapters = self._decision_chapters().added(reference)
        self._remember(f"award:{source}", causation, timestamp)

    def _decision_chapters(self) -> GrowSet[str]:
        """The chapters whose first decision was rewarded (`chapter:<story>:<n>`). A snapshot
        from before they were kept lacks the attribute: empty then (no such award existed)."""
        chapters: GrowSet[str] = getattr(self, "decision_chapters", _NO_REFERENCES)
        return chapters

    @event("PointsSpent")
    def _points_spent(
        self,
        purpose: str,
        amount: int,
        reference: str,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.balance -= amount
        self._remember(f"spend:{purpose}", causation, timestamp)

    @event("PointsAdjusted")
    def _points_adjusted(
        self,
        admin_id: int,
        reason: str,
        amount: int,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.balance += amount
        if amount > 0:
            self.lifetime_earned += amount
        self._remember("adjust", causation, timestamp)

    @event("LevelReached")
    def _level_reached(
        self, level: int, name: str, timestamp: datetime, causation: str, actor: str
    ) -> None:
        self.level = level

    @event("VipGranted")
    def _vip_granted(
        self,
        source: str,
        days: int,
        until: datetime,
        reference: str,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.vip_until = until
        if source in PAID_SOURCES:
            self.vip_references = self._vip_references().added(reference)
        self._remember("vip_grant", causation, timestamp)

    def _vip_references(self) -> GrowSet[str]:
        """The paid references already granted. A snapshot from before they were kept lacks
        the attribute: an empty set then (its earlier grants are kept by causation only)."""
        references: GrowSet[str] = getattr(self, "vip_references", _NO_REFERENCES)
        return references

    @event("VipExpired")
    def _vip_expired(
        self, until: datetime, timestamp: datetime, causation: str, actor: str
    ) -> None:
        # Set here only (not in __init__): players and snapshots from before VIP existed lack it.
        self.vip_expired_until = until
        self._remember("vip_expire", causation, timestamp)

    @event("VipShortened")
    def _vip_shortened(
        self,
        source: str,
        days: int,
        until: datetime,
        reference: str,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.vip_until = until
        self._remember("vip_shorten", causation, timestamp)

    @event("AdultContentConfirmed")
    def _adult_confirmed(self, terms: str, timestamp: datetime, causation: str, actor: str) -> None:
        # Set here only (not in __init__): players and snapshots from before the gate lack it.
        self.adult_confirmed_at = timestamp
        self._remember("adult", causation, timestamp)

    @event("VipChannelChanged")
    def _vip_channel_changed(
        self,
        change: str,
        invite_link: str,
        detail: str,
        delivered: bool,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        if change == "invited":
            if self.vip_channel != "member":  # joined before its link was recorded
                self.vip_channel_state = "invited"
            self.vip_channel_invite: str | None = invite_link
        elif change == "joined":
            self.vip_channel_state = "member"
            self.vip_channel_invite = None
        else:  # left, removed, revoked
            self.vip_channel_state = "none"
            self.vip_channel_invite = None
        self._remember(f"vip_channel:{change}", causation, timestamp)

    @event("VipNoticeSent")
    def _vip_notice_sent(
        self,
        kind: str,
        reference: str,
        delivered: bool,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self._remember(f"vip_notice:{kind}", causation, timestamp)

    @event("VipInvitationQueued")
    def _vip_invitation_queued(
        self,
        story_slug: str,
        fragment_id: str,
        choice_id: str | None,
        evidence: list[str],
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        # Set here only (not in __init__): players and snapshots from before invitations lack it.
        self.vip_invited_at = timestamp
        self._remember("vip_invite", causation, timestamp)
