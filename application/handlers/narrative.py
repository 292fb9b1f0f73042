"""Handlers of the narrative context: publish a story, start it, make choices, relocate.

A paid choice (Player `PointsSpent`) and the move (StoryProgress events), and a fragment's reward
(Player `PointsAwarded`) and entering it, are decided together and saved in one transaction:
there is never a payment without the move, nor a move without the payment.
"""

from __future__ import annotations

from typing import Any

from dianabot.application.commands import (
    MakeChoice,
    PublishStory,
    RelocateProgress,
    RewardDecision,
    StartStory,
)
from dianabot.application.handlers.badges import earned_awards
from dianabot.application.narrative import NarrativeCommands
from dianabot.application.plans import Handler, Plan
from dianabot.application.results import CommandResult
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError
from dianabot.domain.ids import story_id
from dianabot.domain.progress import ChoiceOutcome, StoryProgress, begin, take_choice
from dianabot.domain.story_versions import PublishedVersion, StoryVersions


def publish_story(app: NarrativeCommands, command: PublishStory) -> Plan:
    story = command.content
    slug = story.slug
    published: PublishedVersion | None = None

    def decide(cause: Cause) -> list[StoryVersions]:
        nonlocal published
        aggregate = app._load(story_id(slug)) or StoryVersions.create(slug, cause)
        published = aggregate.publish(command.story, cause)
        return [aggregate]

    def finish(result: CommandResult) -> CommandResult:
        if not result.ok:
            return result
        if published is None:
            latest = app._story_aggregate(slug)
            version = latest.latest if latest is not None else None
            return result.with_details(
                slug=slug,
                version=version.version if version else None,
                content_hash=story.content_hash,
                unchanged=True,
                relocated=0,
            )
        relocated = app.relocate_stranded(slug)
        return result.with_details(
            slug=slug,
            version=published.version,
            content_hash=published.content_hash,
            unchanged=False,
            relocated=sum(1 for r in relocated if r.ok and r.events),
        )

    return Plan(decide, finish)


def start_story(app: NarrativeCommands, command: StartStory) -> Plan:
    telegram_id, slug = command.telegram_id, command.slug
    started = False

    def decide(cause: Cause) -> list[Any]:
        nonlocal started
        started = False
        player = app._player(telegram_id)
        version, story = app._published(slug)
        progress = app.get_progress(telegram_id, slug)
        if progress is None:
            started = True
            return [begin(player, story, version, cause), player]
        app._relocate_if_stranded(progress, player, story, version, cause)
        return [progress]

    def finish(result: CommandResult) -> CommandResult:
        if not result.ok:
            return result
        progress = app.get_progress(telegram_id, slug)
        return result.with_details(
            started=started, fragment_id=progress.fragment_id if progress else None
        )

    return Plan(decide, finish)


def make_choice(app: NarrativeCommands, command: MakeChoice) -> Plan:
    telegram_id, choice_id, slug = command.telegram_id, command.choice_id, command.slug
    outcome: ChoiceOutcome | None = None
    refusal: DomainError | None = None

    def decide(cause: Cause) -> list[Any]:
        nonlocal outcome, refusal
        outcome, refusal = None, None
        player = app._player(telegram_id)
        version, story = app._published(slug)
        progress = app._progress(telegram_id, slug)
        relocated = app._relocate_if_stranded(progress, player, story, version, cause)
        try:
            outcome = take_choice(progress, player, story, version, choice_id, cause)
        except DomainError as error:
            if not relocated:
                raise
            # Keep the relocation (the player must learn where they are now); report the
            # refusal. take_choice checks everything before recording, so only the
            # relocation is saved.
            refusal = error
            return [progress]
        return [progress, player]

    def finish(result: CommandResult) -> CommandResult:
        if not result.ok:
            return result
        if refusal is not None:
            return result.as_refusal(refusal.code, refusal.message, dict(refusal.details))
        assert outcome is not None
        if outcome.vip_gate:
            return result.as_refusal(
                "vip_required",
                "this part of the story is for VIP members",
                {"fragment_id": outcome.fragment_id, "choice_id": choice_id},
            )
        return result.with_details(
            fragment_id=outcome.fragment_id,
            paid=outcome.paid,
            reward=outcome.reward,
            clue=outcome.clue,
            chapters_completed=list(outcome.chapters_completed),
        )

    return Plan(decide, finish)


def relocate_progress(app: NarrativeCommands, command: RelocateProgress) -> Plan:
    """Reconciliation's compensating command, and the sweep after publishing."""

    def decide(cause: Cause) -> list[StoryProgress]:
        player = app._player(command.telegram_id)
        version, story = app._published(command.slug)
        progress = app._progress(command.telegram_id, command.slug)
        app._relocate_if_stranded(progress, player, story, version, cause)
        return [progress]

    return Plan(decide)


def reward_decision(app: NarrativeCommands, command: RewardDecision) -> Plan:
    """The story-decisions policy's effect: the chapter's first-decision besitos (Player) and
    the badges now earned (BadgeAward streams), saved together or not at all. The Player
    remembers the chapters rewarded, so the besitos come once per story and chapter, forever,
    whatever delivers the decision again; the badges are awarded once by their own streams."""

    def decide(cause: Cause) -> list[Any]:
        player = app._player(command.telegram_id)
        saved: list[Any] = []
        chapter, slug = command.chapter, command.story_slug
        if chapter > 0 and not player.decision_rewarded(slug, chapter):
            player.reward_decision(slug, chapter, cause)
            saved.append(player)
        saved += earned_awards(
            app, command.telegram_id, command.slugs, command.evidence, cause, story_slug=slug
        )
        return saved

    return Plan(decide)


HANDLERS: dict[type, Handler] = {
    PublishStory: publish_story,
    StartStory: start_story,
    MakeChoice: make_choice,
    RelocateProgress: relocate_progress,
    RewardDecision: reward_decision,
}
