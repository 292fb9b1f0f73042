"""The Story aggregate: the published versions of one story (by slug).

A version is published only if `validate_story` finds nothing wrong. Each `StoryPublished` carries
the content hash, the fragment ids and the start (what projections and reconciliation need to
check a player's position) and, as an addition to the contract, the story's canonical content:
the history then says exactly what text every player was shown, and a running bot serves the
published version from the event store rather than from whatever file it happens to have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError
from dianabot.domain.ids import story_id
from dianabot.domain.recent import RecentKeys
from dianabot.domain.story import LoadedStory, Story
from dianabot.domain.story_validation import StoryProblem, validate_story
from eventsourcing.domain import event


class InvalidStory(DomainError):
    """The story has validation problems (listed in `details["problems"]`); nothing published."""

    code = "invalid_story"


class StoryNotPublished(DomainError):
    code = "story_not_published"


@dataclass(frozen=True)
class PublishedVersion:
    version: int
    content_hash: str
    fragment_ids: frozenset[str]
    start: str
    published_at: datetime


class StoryVersions(DianaAggregate):
    """DOMAIN.md's Story aggregate (named so as not to clash with the content model `Story`)."""

    @staticmethod
    def create_id(slug: str) -> UUID:
        return story_id(slug)

    @classmethod
    def create(cls, slug: str, cause: Cause) -> StoryVersions:
        return cls(slug=slug, **cause.event_fields())

    @event("StoryCreated")
    def __init__(self, slug: str, timestamp: datetime, causation: str, actor: str) -> None:
        self.slug = slug
        self.versions: list[PublishedVersion] = []
        self.content: dict[str, Any] | None = None
        self.recent_commands = RecentKeys()

    @property
    def latest(self) -> PublishedVersion | None:
        return self.versions[-1] if self.versions else None

    def publish(self, loaded: LoadedStory | Story, cause: Cause) -> PublishedVersion | None:
        """Publish a new version; None when the content is the latest version already.

        Refused with every validation problem when the story is not publishable.
        """
        story = loaded.story if isinstance(loaded, LoadedStory) else loaded
        if story.slug != self.slug:
            raise InvalidStory(f"this is story {self.slug!r}, not {story.slug!r}", problems=[])
        problems: list[StoryProblem] = validate_story(loaded)
        if problems:
            raise InvalidStory(
                f"the story has {len(problems)} problem(s); first: {problems[0]}",
                problems=[p.to_dict() for p in problems],
            )
        latest = self.latest
        if latest is not None and latest.content_hash == story.content_hash:
            return None
        self._refuse_duplicate("publish", cause)
        self._published(
            slug=self.slug,
            version=len(self.versions) + 1,
            content_hash=story.content_hash,
            fragment_ids=sorted(story.fragment_ids),
            start=story.start,
            content=story.canonical_dict(),
            **cause.event_fields(),
        )
        return self.latest

    def story(self) -> Story:
        """The latest published version as the content model."""
        if self.content is None:
            raise StoryNotPublished(f"story {self.slug!r} has no published version")
        return Story.model_validate(self.content)

    @event("StoryPublished")
    def _published(
        self,
        slug: str,
        version: int,
        content_hash: str,
        fragment_ids: list[str],
        start: str,
        content: dict[str, Any],
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.versions.append(
            PublishedVersion(version, content_hash, frozenset(fragment_ids), start, timestamp)
        )
        self.content = content
        self._remember("publish", causation, timestamp)
