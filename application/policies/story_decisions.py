"""Story decisions: on a decision (`ChoiceMade`), the first-decision badge and +5 besitos for the
first decision in each chapter, as ONE command (`RewardDecision`), so both happen exactly once,
together.

The chapter is the one of the fragment the decision was taken on, read from the published story
(the latest version that has the fragment, should a later version have removed it). The Player
remembers the chapters rewarded (`decision_chapters`, by reference, like the Stars charges of
VIP), so the besitos come once per (user, story, chapter), forever: a decision delivered again,
a restarted worker or a second decision in the chapter finds it rewarded. The badges are those
with criteria `first_decision` (the catalogue's `primera-decision`, and any an admin defines);
completed chapters are the badges-by-criteria policy's.
"""

from __future__ import annotations

from typing import Any

from dianabot.application.commands import Command, RewardDecision
from dianabot.application.handlers.badges import due_badges
from dianabot.application.policies.base import Policy, evidence
from dianabot.application.policies.catalogue import DIRECTORY_EVENTS, BadgeDirectory
from dianabot.domain.ids import story_id
from dianabot.domain.story import Story

KINDS = frozenset({"first_decision"})


def fragment_chapter(story: Story, fragment_id: str) -> int:
    """The chapter of a fragment in one version of the story, 0 if it has no such fragment."""
    return story.fragment(fragment_id).chapter if story.has_fragment(fragment_id) else 0


class StoryDecisions(Policy):
    name = "story-decisions"
    handles = frozenset({"ChoiceMade"}) | DIRECTORY_EVENTS

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.narrative: Any = app  # the composed application: its published stories
        self.directory = BadgeDirectory(app)

    def react(self, event: Any) -> Command | None:
        if self.directory.noted(event):
            return None
        owner = self.owner(event)
        progress = self.app._load(event.originator_id) if owner is not None else None
        if owner is None or progress is None:
            return None
        slug = progress.story_slug
        chapter = self.chapter(slug, event.fragment_id)
        player = self.app._player(owner)
        bonus_due = chapter > 0 and not player.decision_rewarded(slug, chapter)
        slugs = self.directory.slugs(KINDS)
        now = self.app.clock.now()
        due = due_badges(self.app, owner, slugs, slug, now, definitions=self.directory.definition)
        if not bonus_due and not due:
            return None  # a later decision in a rewarded chapter: most decisions
        return RewardDecision(owner, slug, chapter, slugs, evidence(event))

    def chapter(self, slug: str, fragment_id: str) -> int:
        """The fragment's chapter in the latest published version that has it (0: none has)."""
        published = self.narrative.published_story(slug)
        if published is not None:
            chapter = fragment_chapter(published[1], fragment_id)
            if chapter:
                return chapter
        # Removed by a later version (this policy lags behind a publish): an older version's.
        stored: Any
        for stored in self.app.events.get(story_id(slug), desc=True):
            if type(stored).__name__ == "StoryPublished" and fragment_id in stored.fragment_ids:
                return fragment_chapter(Story.model_validate(stored.content), fragment_id)
        return 0
