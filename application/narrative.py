"""Use cases of the narrative context: publish a story, start it, show it, make choices.

The single-command methods are blocking shorthands for commands on the bus (handled by
`application.handlers.narrative`, which also says how a paid choice and its move are saved
together); `relocate_stranded` issues a `RelocateProgress` per stranded player. The helpers the
handlers read through (`_published`, `_progress`, ...) live here, with the queries.

The story a player walks is the latest *published* version, read from the event store (its
`StoryPublished` carries the content), so every process serves the same version. When a new
version removes the fragment a player stands on, the player is moved by a recorded
`ProgressRelocated`: for everyone at once right after publishing (`relocate_stranded`), and lazily
by any command of a player the sweep missed (another process published, a crash in between).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    DEFAULT_STORY,
    MakeChoice,
    PublishStory,
    RelocateProgress,
    StartStory,
)
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.cause import Cause
from dianabot.domain.ids import progress_id, story_id
from dianabot.domain.player import Player
from dianabot.domain.progress import StoryNotStarted, StoryProgress
from dianabot.domain.story import Choice, LoadedStory, Story
from dianabot.domain.story_versions import StoryNotPublished, StoryVersions
from eventsourcing.application import AggregateNotFoundError

log = logging.getLogger(__name__)

RELOCATION_REASON = "fragment_removed"
STORY_MODELS_KEPT = 8


@dataclass(frozen=True)
class ChoiceView:
    """A button the player may press. `cost` is what pressing it now costs (0 once paid)."""

    id: str
    label: str
    cost: int
    paid: bool
    affordable: bool
    vip_only: bool
    leads_to_vip: bool


@dataclass(frozen=True)
class StoryView:
    """The player's current fragment as the bot shows it (choices already filtered for them).

    `locked`: the fragment is VIP and the player is not (their VIP ended while inside): they must
    renew to go on. `stranded`: the published story no longer has this fragment; any narrative
    command (e.g. `start_story`) relocates them first.
    """

    slug: str
    version: int
    fragment_id: str
    chapter: int
    chapter_title: str
    arc: str
    speaker: str
    text: str
    is_ending: bool
    vip_fragment: bool
    vip_active: bool
    locked: bool
    stranded: bool
    choices: tuple[ChoiceView, ...]
    clues: tuple[str, ...]
    chapters_completed: tuple[int, ...]
    balance: int


class NarrativeCommands(CoreApplication):
    # ----- publishing -----------------------------------------------------------------------

    def publish_story(self, loaded: LoadedStory | Story, origin: Origin) -> CommandResult:
        """Publish a validated story as a new version (refused `invalid_story`, nothing written,
        when validate_story finds problems; ok with no events when it is the latest already).

        Players standing on a fragment the new version removed are relocated right after.
        """
        return self.bus.handle(PublishStory(loaded), origin)

    def published_story(self, slug: str = DEFAULT_STORY) -> tuple[int, Story] | None:
        """(version, content) of the latest published version, or None if never published."""
        try:
            return self._published(slug)
        except StoryNotPublished:
            return None

    # ----- playing --------------------------------------------------------------------------

    def start_story(
        self, telegram_id: int, origin: Origin, slug: str = DEFAULT_STORY
    ) -> CommandResult:
        """Start the story (StoryStarted, entering the start, its reward), or, if already started,
        relocate the player when their fragment was removed. Idempotent: `/story` calls it."""
        return self.bus.handle(StartStory(telegram_id, slug), origin)

    def make_choice(
        self, telegram_id: int, choice_id: str, origin: Origin, slug: str = DEFAULT_STORY
    ) -> CommandResult:
        """Take a choice of the current fragment (refusals: see `MakeChoice`)."""
        return self.bus.handle(MakeChoice(telegram_id, choice_id, slug), origin)

    def relocate_progress(
        self, telegram_id: int, origin: Origin, slug: str = DEFAULT_STORY
    ) -> CommandResult:
        """Move one player off a fragment the published story no longer has (ok, no events, if
        they are not stranded). Reconciliation's compensating command."""
        return self.bus.handle(RelocateProgress(telegram_id, slug), origin)

    def relocate_stranded(self, slug: str = DEFAULT_STORY) -> list[CommandResult]:
        """Relocate every player of `slug` standing on a fragment the latest version removed.

        Finds the players by reading `StoryStarted` notifications (one per progress stream) from
        the notification log; the causation is per story version, so running it twice, or in two
        processes, relocates each player once.
        """
        published = self.published_story(slug)
        if published is None:
            return []
        version, story = published
        origin = Origin.system("story-relocation", f"{slug}:v{version}")
        results = []
        for progress_uuid in self._progress_ids():
            progress = self._load(progress_uuid)
            if progress is None or progress.story_slug != slug or not progress.stranded(story):
                continue
            result = self.bus.handle(RelocateProgress(progress.telegram_id, slug), origin)
            if not result.ok:
                log.warning(
                    "could not relocate user %s in story %s: %s %s",
                    progress.telegram_id,
                    slug,
                    result.outcome,
                    result.message,
                )
            results.append(result)
        return results

    # ----- queries ----------------------------------------------------------------------------

    def get_progress(self, telegram_id: int, slug: str = DEFAULT_STORY) -> StoryProgress | None:
        if isinstance(telegram_id, bool) or not isinstance(telegram_id, int):
            return None
        return self._load(progress_id(telegram_id, slug))

    def current_fragment(self, telegram_id: int, slug: str = DEFAULT_STORY) -> StoryView | None:
        """What `/story` shows; None if the user has not started (or the story is unpublished)."""
        player = self.get_player(telegram_id)
        progress = self.get_progress(telegram_id, slug)
        published = self.published_story(slug)
        if player is None or progress is None or published is None:
            return None
        version, story = published
        vip = player.vip_active(self.clock.now())
        clues = tuple(sorted(progress.clues))
        chapters = tuple(sorted(progress.chapters_completed))
        if progress.stranded(story):
            return StoryView(
                slug=slug,
                version=version,
                fragment_id=progress.fragment_id,
                chapter=0,
                chapter_title="",
                arc="",
                speaker="",
                text="",
                is_ending=False,
                vip_fragment=False,
                vip_active=vip,
                locked=False,
                stranded=True,
                choices=(),
                clues=clues,
                chapters_completed=chapters,
                balance=player.balance,
            )
        fragment = story.fragment(progress.fragment_id)
        chapter = story.chapter_of(fragment.id)
        vip_fragment = story.is_vip_fragment(fragment.id)
        choices = tuple(
            _choice_view(c, story, progress, player)
            for c in story.choices_for(fragment.id, vip=vip, clues=progress.clues)
        )
        return StoryView(
            slug=slug,
            version=version,
            fragment_id=fragment.id,
            chapter=fragment.chapter,
            chapter_title=chapter.title,
            arc=chapter.arc,
            speaker=fragment.speaker,
            text=fragment.text,
            is_ending=fragment.is_ending,
            vip_fragment=vip_fragment,
            vip_active=vip,
            locked=vip_fragment and not vip,
            stranded=False,
            choices=choices,
            clues=clues,
            chapters_completed=chapters,
            balance=player.balance,
        )

    # ----- helpers ----------------------------------------------------------------------------

    def _progress(self, telegram_id: int, slug: str) -> StoryProgress:
        progress = self.get_progress(telegram_id, slug)
        if progress is None:
            raise StoryNotStarted(
                f"user {telegram_id} has not started story {slug!r}", telegram_id=telegram_id
            )
        return progress

    def _relocate_if_stranded(
        self, progress: StoryProgress, player: Player, story: Story, version: int, cause: Cause
    ) -> bool:
        return progress.relocate(
            story, version, vip=player.vip_active(cause.at), reason=RELOCATION_REASON, cause=cause
        )

    def _published(self, slug: str) -> tuple[int, Story]:
        aggregate = self._story_aggregate(slug)
        latest = aggregate.latest if aggregate is not None else None
        if aggregate is None or latest is None:
            raise StoryNotPublished(f"story {slug!r} has not been published", slug=slug)
        models = self._story_models()
        story = models.get(latest.content_hash)
        if story is None:
            story = aggregate.story()
            if story.content_hash != latest.content_hash:
                raise RuntimeError(f"story {slug!r} v{latest.version}: content does not match hash")
            if len(models) >= STORY_MODELS_KEPT:
                models.clear()  # versions are few; one atomic step is safe across threads
            models[latest.content_hash] = story
        return latest.version, story

    def _story_aggregate(self, slug: str) -> StoryVersions | None:
        """The Story aggregate, read-only and never stale: another process may have published.

        The cached copy is checked against the store for newer events (one indexed query), since
        the application trusts its cache otherwise.
        """
        if not isinstance(slug, str):
            return None
        aggregate_id = story_id(slug)
        aggregate = self._read_only(aggregate_id)
        if aggregate is not None and list(
            self.events.get(aggregate_id, gt=aggregate.version, limit=1)
        ):
            self._forget([aggregate])
            aggregate = self._read_only(aggregate_id)
        return aggregate

    def _read_only(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return None

    def _story_models(self) -> dict[str, Story]:
        """Parsed published versions by content hash (parsing costs far more than a command)."""
        models: dict[str, Story] = self.__dict__.setdefault("_narrative_story_models", {})
        return models

    def _progress_ids(self) -> Iterator[UUID]:
        """Every StoryProgress stream, from the StoryStarted notifications (one per stream)."""
        # The @event decorator defines StoryProgress.StoryStarted when the class is created.
        started = StoryProgress.StoryStarted  # type: ignore[attr-defined]
        for notification in self.scan_notifications([started]):
            yield UUID(str(notification.originator_id))


def _choice_view(
    choice: Choice, story: Story, progress: StoryProgress, player: Player
) -> ChoiceView:
    paid = choice.id in progress.paid_choices
    cost = 0 if paid else choice.cost
    return ChoiceView(
        id=choice.id,
        label=choice.label,
        cost=cost,
        paid=paid and choice.cost > 0,
        affordable=player.balance >= cost,
        vip_only=choice.vip_only,
        leads_to_vip=story.has_fragment(choice.next) and story.is_vip_fragment(choice.next),
    )
