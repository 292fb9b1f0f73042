"""The story as content: a typed model of a story, and where its parts sit in its file.

A `Story` refuses what is not a well-formed story (unknown fields, wrong types, duplicate ids) and
answers lookups by id. Reading and parsing story files is an adapter's job
(`dianabot.adapters.story_file`), checking a well-formed story for the mistakes it can still hold is
`dianabot.domain.story_validation`'s; both meet here in `LoadedStory`, a story with a plain
`StorySourceMap` of 1-based lines so problems can point at the file. Nothing here does I/O.
See docs/story-format.md for the format and every check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_MAX_FREE_COST = 500

# Ids travel in Telegram callback data (64 bytes), so they are short and plain.
Id = Annotated[str, Field(strict=True, pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=48)]
Slug = Annotated[str, Field(strict=True, pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=48)]
Name = Annotated[str, Field(strict=True, min_length=1, max_length=120)]
Label = Annotated[str, Field(strict=True, min_length=1, max_length=64)]
# One fragment is one Telegram message (4096 characters at most).
Text = Annotated[str, Field(strict=True, min_length=1, max_length=4096)]
Besitos = Annotated[int, Field(strict=True, ge=0)]
ChapterNumber = Annotated[int, Field(strict=True, ge=1)]
Flag = Annotated[bool, Field(strict=True)]


class Reward(BaseModel):
    """What entering a fragment gives, once per player and fragment (even on revisit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    besitos: Besitos = 0
    clue: Id | None = None


class Choice(BaseModel):
    """A button under a fragment. `id` is unique in the whole story (it is the callback data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    label: Label
    next: Id
    cost: Besitos = 0
    vip_only: Flag = False
    requires_clue: Id | None = None


class Fragment(BaseModel):
    """One message of the story. `vip` None means "as its chapter says"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    chapter: ChapterNumber
    speaker: Name
    text: Text
    choices: tuple[Choice, ...] = ()
    is_ending: Flag = False
    reward: Reward | None = None
    vip: Flag | None = None

    @property
    def paragraphs(self) -> tuple[str, ...]:
        """The text split at line breaks (a blank line in a `>-` block): one paragraph each."""
        return tuple(p.strip() for p in self.text.split("\n") if p.strip())


class Chapter(BaseModel):
    """A numbered part of an arc; `vip` is the default for its fragments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: ChapterNumber
    title: Name
    arc: Name
    vip: Flag


class Clue(BaseModel):
    """A "pista" for the backpack: granted by fragment rewards, required by some choices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    name: Name
    description: Text


class Story(BaseModel):
    """A whole story. Build it with `model_validate` (or `load_story`); indexes are derived once.

    `max_free_cost` is the most besitos the author expects a free player to hold at one moment:
    a choice a free player can meet that costs more is reported as `unaffordable_cost`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: Slug
    title: Name
    version_label: Name
    start: Id
    max_free_cost: Besitos = DEFAULT_MAX_FREE_COST
    chapters: tuple[Chapter, ...]
    clues: tuple[Clue, ...] = ()
    fragments: tuple[Fragment, ...]

    _fragments: dict[str, Fragment] = PrivateAttr(default_factory=dict)
    _chapters: dict[int, Chapter] = PrivateAttr(default_factory=dict)
    _clues: dict[str, Clue] = PrivateAttr(default_factory=dict)
    _choice_owner: dict[str, str] = PrivateAttr(default_factory=dict)
    _hash: str = PrivateAttr(default="")

    @field_validator("chapters", "fragments")
    @classmethod
    def _not_empty(cls, value: tuple[Any, ...], info: ValidationInfo) -> tuple[Any, ...]:
        # An after-validator (not min_length) so item errors are not doubled by a length error.
        if not value:
            raise ValueError(f"a story needs at least one entry in `{info.field_name}`")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Story:
        # Lookups by id are the whole API, so two things with one id would make it lie.
        _reject_duplicates("fragment id", (f.id for f in self.fragments))
        _reject_duplicates("choice id", (c.id for f in self.fragments for c in f.choices))
        _reject_duplicates("chapter number", (c.number for c in self.chapters))
        _reject_duplicates("clue id", (c.id for c in self.clues))
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._fragments = {f.id: f for f in self.fragments}
        self._chapters = {c.number: c for c in self.chapters}
        self._clues = {c.id: c for c in self.clues}
        self._choice_owner = {c.id: f.id for f in self.fragments for c in f.choices}
        canonical = json.dumps(
            self.canonical_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        self._hash = hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    # --- lookups ---------------------------------------------------------------------------

    @property
    def fragment_ids(self) -> frozenset[str]:
        return frozenset(self._fragments)

    @property
    def start_fragment(self) -> Fragment:
        return self.fragment(self.start)

    @property
    def endings(self) -> frozenset[str]:
        return frozenset(f.id for f in self.fragments if f.is_ending)

    def has_fragment(self, fragment_id: str) -> bool:
        return fragment_id in self._fragments

    def fragment(self, fragment_id: str) -> Fragment:
        """The fragment with this id; KeyError if the story has none."""
        try:
            return self._fragments[fragment_id]
        except KeyError:
            raise KeyError(f"story {self.slug!r} has no fragment {fragment_id!r}") from None

    def chapter(self, number: int) -> Chapter:
        try:
            return self._chapters[number]
        except KeyError:
            raise KeyError(f"story {self.slug!r} has no chapter {number}") from None

    def chapter_of(self, fragment_id: str) -> Chapter:
        return self.chapter(self.fragment(fragment_id).chapter)

    def clue(self, clue_id: str) -> Clue:
        try:
            return self._clues[clue_id]
        except KeyError:
            raise KeyError(f"story {self.slug!r} has no clue {clue_id!r}") from None

    def is_vip_fragment(self, fragment_id: str) -> bool:
        """The fragment's own `vip` if set, else its chapter's.

        A fragment of an undeclared chapter (reported as `bad_chapter`) counts as VIP, so a broken
        file fails closed rather than giving VIP content away.
        """
        frag = self.fragment(fragment_id)
        if frag.vip is not None:
            return frag.vip
        chapter = self._chapters.get(frag.chapter)
        return True if chapter is None else chapter.vip

    def choice(self, fragment_id: str, choice_id: str) -> Choice | None:
        """The choice if it belongs to that fragment, else None (a stale or forged button)."""
        frag = self._fragments.get(fragment_id)
        if frag is None:
            return None
        return next((c for c in frag.choices if c.id == choice_id), None)

    def fragment_of_choice(self, choice_id: str) -> str | None:
        return self._choice_owner.get(choice_id)

    def choices_for(
        self, fragment_id: str, *, vip: bool, clues: Iterable[str] = ()
    ) -> tuple[Choice, ...]:
        """The choices this player may press: `vip_only` needs VIP, `requires_clue` the clue.

        Costs and the VIP flag of the target are not filtered here: the balance belongs to the
        Player, and a free player pressing a choice into VIP content is how the VIP gate is hit.
        """
        held = frozenset(clues)
        return tuple(
            c
            for c in self.fragment(fragment_id).choices
            if (vip or not c.vip_only) and (c.requires_clue is None or c.requires_clue in held)
        )

    # --- chapters --------------------------------------------------------------------------

    def completed_chapters(
        self, from_fragment_id: str | None, to_fragment_id: str
    ) -> tuple[int, ...]:
        """Chapters completed by moving from one fragment to the next (None: entering the start).

        Chapter N is completed when the player moves from a fragment of chapter N to a fragment of
        a higher chapter, or enters an ending fragment of chapter N. Both can happen at once.
        """
        target = self.fragment(to_fragment_id)
        done: set[int] = set()
        if from_fragment_id is not None:
            source = self.fragment(from_fragment_id)
            if target.chapter > source.chapter:
                done.add(source.chapter)
        if target.is_ending:
            done.add(target.chapter)
        return tuple(sorted(done))

    def chapter_last_fragments(self, number: int) -> frozenset[str]:
        """Fragments of chapter `number` whose entering or leaving can complete it."""
        return frozenset(
            f.id
            for f in self.fragments
            if f.chapter == number
            and (
                f.is_ending
                or any(
                    c.next in self._fragments and self._fragments[c.next].chapter > number
                    for c in f.choices
                )
            )
        )

    # --- identity --------------------------------------------------------------------------

    def canonical_dict(self) -> dict[str, Any]:
        """The model as plain data, with order-free collections sorted (the hash input)."""
        data = self.model_dump(mode="json")
        data["chapters"] = sorted(data["chapters"], key=lambda c: c["number"])
        data["clues"] = sorted(data["clues"], key=lambda c: c["id"])
        data["fragments"] = sorted(data["fragments"], key=lambda f: f["id"])
        return data

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON: same story, same hash, whatever the file's layout.

        Key order, whitespace, comments, YAML style, omitted defaults and the order of fragments,
        chapters and clues do not count; any text, choice order or value does.
        """
        return self._hash


def _reject_duplicates(what: str, values: Iterable[object]) -> None:
    seen: set[object] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


# --- where the story came from ------------------------------------------------------------


@dataclass(frozen=True)
class StorySourceMap:
    """Where things are in the file (1-based lines), so problems can point at them.

    Plain data filled by whoever parsed the file (the story file adapter); a story built in code
    has an empty map, and every line it answers is None.
    """

    file: str
    start_line: int | None = None
    fragment_lines: Mapping[str, int] = field(default_factory=dict)
    choice_lines: Mapping[str, int] = field(default_factory=dict)
    field_lines: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    """(kind, id, field) -> line, kind "fragment" or "choice"; field "reward.clue" for rewards."""

    def fragment_line(self, fragment_id: str, field_name: str | None = None) -> int | None:
        if field_name is not None and (
            line := self.field_lines.get(("fragment", fragment_id, field_name))
        ):
            return line
        return self.fragment_lines.get(fragment_id)

    def choice_line(self, choice_id: str, field_name: str | None = None) -> int | None:
        if field_name is not None and (
            line := self.field_lines.get(("choice", choice_id, field_name))
        ):
            return line
        return self.choice_lines.get(choice_id)


@dataclass(frozen=True)
class LoadedStory:
    """A story with the map of the file it was parsed from (what validation and publishing take)."""

    story: Story
    source: StorySourceMap
