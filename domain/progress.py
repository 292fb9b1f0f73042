"""StoryProgress: one user's way through one story (current fragment, clues, chapters, payments).

Rules (DOMAIN.md 1-2, docs/story-format.md):
- a choice must belong to the current fragment;
- VIP fragments and `vip_only` choices need an active VIP period; a free player who tries is
  refused, and the attempt is recorded (`VipGateHit`) for the conversion funnel;
- a paid choice is paid once per player and choice: taking it again later (a loop, a revisit)
  costs nothing; the payment (Player `PointsSpent`) and the move are saved together or not at all;
- a fragment's reward is granted the first time the player enters it, never again;
- a chapter is completed per `Story.completed_chapters`, once;
- when a new story version removes the fragment a player stands on, the player is moved by a
  recorded `ProgressRelocated` to the nearest valid fragment (see `relocation_target`).

Progress and Player are separate aggregates; `take_choice` and `begin` coordinate both and the
application saves them in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError, DuplicateCommand, InsufficientPoints
from dianabot.domain.growset import GrowSet
from dianabot.domain.ids import progress_id
from dianabot.domain.player import Player
from dianabot.domain.recent import RecentKeys
from dianabot.domain.rules import PointSource
from dianabot.domain.story import Story
from eventsourcing.domain import event

TRAIL_KEPT = 64
"""Recent fragments remembered for relocation (the whole path is in the history anyway)."""

SPEND_PURPOSE = "story_choice"


class InvalidChoice(DomainError):
    """Not a choice of the current fragment (stale button, forged callback, another fragment)."""

    code = "invalid_choice"


class VipRequired(DomainError):
    code = "vip_required"


class ClueRequired(DomainError):
    code = "clue_required"


class StoryNotStarted(DomainError):
    code = "story_not_started"


@dataclass(frozen=True)
class ChoiceOutcome:
    """What a choice did. `vip_gate` means it was refused for VIP (and VipGateHit recorded)."""

    vip_gate: bool = False
    fragment_id: str | None = None
    paid: int = 0
    reward: int = 0
    clue: str | None = None
    chapters_completed: tuple[int, ...] = ()


class StoryProgress(DianaAggregate):
    """One user's progress through one story. Every public method keeps `fragment_id` valid."""

    @staticmethod
    def create_id(telegram_id: int, story_slug: str) -> UUID:
        return progress_id(telegram_id, story_slug)

    @event("StoryStarted")
    def __init__(
        self,
        telegram_id: int,
        story_slug: str,
        story_version: int,
        fragment_id: str,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.telegram_id = telegram_id
        self.story_slug = story_slug
        self.story_version = story_version
        self.fragment_id = fragment_id
        self.started_at = timestamp
        self.visited: GrowSet[str] = GrowSet()
        self.trail: list[str] = []
        self.clues: GrowSet[str] = GrowSet()
        self.chapters_completed: GrowSet[int] = GrowSet()
        self.paid_choices: GrowSet[str] = GrowSet()
        self.decisions = 0
        self.vip_gate_hits = 0
        self.recent_commands = RecentKeys()

    # ----- queries ------------------------------------------------------------------------------

    def stranded(self, story: Story) -> bool:
        """True when the published story no longer has the fragment this player stands on."""
        return not story.has_fragment(self.fragment_id)

    def relocation_target(self, story: Story, *, vip: bool) -> str:
        """The nearest valid fragment: the most recent one on the player's own path that the new
        version still has (and, for a free player, is not VIP); else the new version's start.

        Walking back the player's own path never skips content they have not seen and never
        moves them somewhere they could not have been.
        """
        for fragment_id in reversed(self.trail):
            if fragment_id == self.fragment_id or not story.has_fragment(fragment_id):
                continue
            if vip or not story.is_vip_fragment(fragment_id):
                return fragment_id
        return story.start

    # ----- commands -----------------------------------------------------------------------------

    def relocate(self, story: Story, version: int, *, vip: bool, reason: str, cause: Cause) -> bool:
        """Move off a fragment the story no longer has; False (nothing recorded) if not needed."""
        if not self.stranded(story):
            return False
        self._refuse_duplicate("relocate", cause)
        self._relocated(
            from_fragment=self.fragment_id,
            to_fragment=self.relocation_target(story, vip=vip),
            story_version=version,
            reason=reason,
            **cause.event_fields(),
        )
        return True

    def _enter(
        self, story: Story, version: int, fragment_id: str, via: str | None, cause: Cause
    ) -> tuple[int, str | None, tuple[int, ...]]:
        """Enter a fragment: its reward the first time, and any chapter this completes.

        Returns (besitos to award, clue unlocked, chapters completed); the besitos go to the
        Player, by the caller, in the same transaction.
        """
        previous = None if via is None else self.fragment_id
        first_visit = fragment_id not in self.visited
        fragment = story.fragment(fragment_id)
        self._fragment_entered(
            fragment_id=fragment_id,
            chapter=fragment.chapter,
            via_choice=via,
            story_version=version,
            **cause.event_fields(),
        )
        besitos, clue = 0, None
        if first_visit and fragment.reward is not None:
            besitos = fragment.reward.besitos
            if fragment.reward.clue is not None and fragment.reward.clue not in self.clues:
                clue = fragment.reward.clue
                self._clue_unlocked(clue=clue, **cause.event_fields())
        completed = tuple(
            chapter
            for chapter in story.completed_chapters(previous, fragment_id)
            if chapter not in self.chapters_completed
        )
        for chapter in completed:
            self._chapter_completed(chapter=chapter, **cause.event_fields())
        return besitos, clue, completed

    # ----- events -------------------------------------------------------------------------------

    @event("FragmentEntered")
    def _fragment_entered(
        self,
        fragment_id: str,
        chapter: int,
        via_choice: str | None,
        story_version: int,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.fragment_id = fragment_id
        self.story_version = story_version
        self.visited = self.visited.added(fragment_id)
        self._push_trail(fragment_id)

    @event("ChoiceMade")
    def _choice_made(
        self,
        fragment_id: str,
        choice_id: str,
        next_fragment: str,
        cost: int,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.decisions += 1
        if cost > 0:
            self.paid_choices = self.paid_choices.added(choice_id)
        self._remember("choose", causation, timestamp)

    @event("ClueUnlocked")
    def _clue_unlocked(self, clue: str, timestamp: datetime, causation: str, actor: str) -> None:
        self.clues = self.clues.added(clue)

    @event("ChapterCompleted")
    def _chapter_completed(
        self, chapter: int, timestamp: datetime, causation: str, actor: str
    ) -> None:
        self.chapters_completed = self.chapters_completed.added(chapter)

    @event("VipGateHit")
    def _vip_gate_hit(
        self,
        fragment_id: str,
        choice_id: str | None,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.vip_gate_hits += 1
        self._remember("vip_gate", causation, timestamp)

    @event("ProgressRelocated")
    def _relocated(
        self,
        from_fragment: str,
        to_fragment: str,
        story_version: int,
        reason: str,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.fragment_id = to_fragment
        self.story_version = story_version
        self._push_trail(to_fragment)
        self._remember("relocate", causation, timestamp)

    def _push_trail(self, fragment_id: str) -> None:
        if self.trail and self.trail[-1] == fragment_id:
            return
        self.trail.append(fragment_id)
        if len(self.trail) > TRAIL_KEPT:
            del self.trail[: len(self.trail) - TRAIL_KEPT]


# ----- coordinating Player and StoryProgress (saved together by the application) -----------------


def begin(player: Player, story: Story, version: int, cause: Cause) -> StoryProgress:
    """Start the story: StoryStarted, then entering the start fragment (with its reward).

    A free player cannot start a story whose start is VIP (refused, nothing recorded: there is no
    progress yet to record a gate hit on).
    """
    if story.is_vip_fragment(story.start) and not player.vip_active(cause.at):
        raise VipRequired(f"story {story.slug!r} starts in VIP content", fragment_id=story.start)
    progress = StoryProgress(
        telegram_id=player.telegram_id,
        story_slug=story.slug,
        story_version=version,
        fragment_id=story.start,
        **cause.event_fields(),
    )
    besitos, _, _ = progress._enter(story, version, story.start, None, cause)
    _reward(player, story.start, besitos, cause)
    return progress


def take_choice(
    progress: StoryProgress,
    player: Player,
    story: Story,
    version: int,
    choice_id: str,
    cause: Cause,
) -> ChoiceOutcome:
    """Take a choice of the current fragment, paying for it (once) and collecting rewards.

    Every check runs before anything is recorded, so a refusal leaves both aggregates untouched.
    A VIP refusal is not an exception: it records `VipGateHit` (once per causation) and returns
    `ChoiceOutcome(vip_gate=True)`, and the application reports `vip_required`.
    """
    if player.telegram_id != progress.telegram_id:
        raise ValueError("the player and the progress belong to different users")
    progress._refuse_duplicate("choose", cause)
    current = progress.fragment_id
    choice = story.choice(current, choice_id) if isinstance(choice_id, str) else None
    if choice is None:
        owner = story.fragment_of_choice(choice_id) if isinstance(choice_id, str) else None
        where = f" (it belongs to fragment {owner!r})" if owner else ""
        raise InvalidChoice(
            f"choice {choice_id!r} is not a choice of the current fragment {current!r}{where}",
            choice_id=choice_id,
            fragment_id=current,
        )
    vip = player.vip_active(cause.at)
    needs_vip = (
        story.is_vip_fragment(current) or choice.vip_only or story.is_vip_fragment(choice.next)
    )
    if needs_vip and not vip:
        try:
            progress._refuse_duplicate("vip_gate", cause)
        except DuplicateCommand:
            return ChoiceOutcome(vip_gate=True, fragment_id=current)
        progress._vip_gate_hit(fragment_id=current, choice_id=choice.id, **cause.event_fields())
        return ChoiceOutcome(vip_gate=True, fragment_id=current)
    if choice.requires_clue is not None and choice.requires_clue not in progress.clues:
        raise ClueRequired(
            f"choice {choice.id!r} needs the clue {choice.requires_clue!r}",
            clue=choice.requires_clue,
        )
    cost = 0 if choice.id in progress.paid_choices else choice.cost
    if cost and not player.can_afford(cost):
        raise InsufficientPoints(
            f"choice {choice.id!r} costs {cost} besitos; the balance is {player.balance}",
            balance=player.balance,
            cost=cost,
        )
    if cost:
        player.spend(cost, SPEND_PURPOSE, f"choice:{choice.id}", cause)
    progress._choice_made(
        fragment_id=current,
        choice_id=choice.id,
        next_fragment=choice.next,
        cost=cost,
        **cause.event_fields(),
    )
    besitos, clue, chapters = progress._enter(story, version, choice.next, choice.id, cause)
    _reward(player, choice.next, besitos, cause)
    return ChoiceOutcome(
        fragment_id=choice.next, paid=cost, reward=besitos, clue=clue, chapters_completed=chapters
    )


def _reward(player: Player, fragment_id: str, besitos: int, cause: Cause) -> None:
    if besitos > 0:
        player.award(PointSource.STORY, besitos, f"fragment:{fragment_id}", cause)
