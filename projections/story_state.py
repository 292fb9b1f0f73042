"""`story_state` (each player's place in each story: fragment, chapter, clues, chapters done) and
`story_versions` (what each published version contains: its fragment ids and start), which is
what reconciliation checks a player's fragment against."""

from __future__ import annotations

from typing import Any

from dianabot.projections.base import Projector, Row, originator_keys
from dianabot.projections.schema import from_json_list, json_list


class StoryStateProjector(Projector):
    name = "story_state"
    tables = ("story_state", "story_versions")

    PROGRESS_EVENTS = (
        "StoryStarted",
        "FragmentEntered",
        "ChoiceMade",
        "ClueUnlocked",
        "ChapterCompleted",
        "ProgressRelocated",
    )

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        rows = self.rows["story_state"]
        if not rows.complete:
            rows.load(originator_keys(events, self.PROGRESS_EVENTS))

    def on_StoryPublished(self, event: Any, position: int) -> None:
        key = (event.slug, event.version)
        self.rows["story_versions"].put(
            key,
            {
                "slug": event.slug,
                "version": event.version,
                "content_hash": event.content_hash,
                "start": event.start,
                "fragment_ids": json_list(event.fragment_ids),
                "published_at": event.timestamp,
            },
        )

    def on_StoryStarted(self, event: Any, position: int) -> None:
        self.rows["story_state"].put(
            event.originator_id.int,
            {
                "progress_id": event.originator_id,
                "telegram_id": event.telegram_id,
                "story_slug": event.story_slug,
                "story_version": event.story_version,
                "fragment_id": event.fragment_id,
                "chapter": None,
                "clues": "[]",
                "chapters_completed": "[]",
                "choices_made": 0,
                "last_choice": None,
                "started_at": event.timestamp,
                "updated_at": event.timestamp,
            },
        )

    def _row(self, event: Any) -> Row | None:
        rows = self.rows["story_state"]
        key = event.originator_id.int
        row = rows.get(key)
        if row is not None:
            rows.touch(key)
            row["updated_at"] = event.timestamp
        return row

    def on_FragmentEntered(self, event: Any, position: int) -> None:
        row = self._row(event)
        if row is not None:
            row["fragment_id"] = event.fragment_id
            row["chapter"] = event.chapter
            version = getattr(event, "story_version", None)
            if version is not None:
                row["story_version"] = version

    def on_ChoiceMade(self, event: Any, position: int) -> None:
        row = self._row(event)
        if row is not None:
            row["choices_made"] += 1
            row["last_choice"] = event.choice_id
            row["fragment_id"] = event.next_fragment

    def on_ClueUnlocked(self, event: Any, position: int) -> None:
        row = self._row(event)
        if row is not None:
            clues = set(from_json_list(row["clues"]))
            clues.add(event.clue)
            row["clues"] = json_list(clues)

    def on_ChapterCompleted(self, event: Any, position: int) -> None:
        row = self._row(event)
        if row is not None:
            chapters = set(from_json_list(row["chapters_completed"]))
            chapters.add(event.chapter)
            row["chapters_completed"] = json_list(chapters)

    def on_ProgressRelocated(self, event: Any, position: int) -> None:
        row = self._row(event)
        if row is not None:
            row["fragment_id"] = event.to_fragment
            row["story_version"] = event.story_version
