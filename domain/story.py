"""The story as content: a typed model of the story file, its loader and its validator.

The story file is data people edit and diff, so it is checked twice: `load_story` refuses a file
that is not a well-formed story (syntax, unknown fields, wrong types, duplicate ids) and says
where; `validate_story` finds what a well-formed story can still get wrong (links, reachability
for free and VIP users, dead ends, traps, clues, costs). Everything here is pure except reading
the file.
See docs/story-format.md for the format and every check.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

BUNDLED_STORY_PATH = Path(__file__).resolve().parent.parent / "content" / "story.yaml"
"""The story shipped with the bot (Spanish, Diana and Lucien)."""

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


# --- loading -------------------------------------------------------------------------------


class StoryFileError(ValueError):
    """The file is not a well-formed story. `str()` is `file:line: message`."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class StorySourceMap:
    """Where things are in the file (1-based lines), so problems can point at them."""

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
    story: Story
    source: StorySourceMap


def load_bundled_story() -> LoadedStory:
    return load_story(BUNDLED_STORY_PATH)


def load_story(path: str | os.PathLike[str]) -> LoadedStory:
    """Read and parse a story file. Raises StoryFileError (unreadable, malformed, ill-typed)."""
    name = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise StoryFileError(name, None, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise StoryFileError(name, line, "the file is not UTF-8 text") from exc
    return parse_story(text, name)


def parse_story(text: str, file_name: str = "<story>") -> LoadedStory:
    """Parse story YAML from a string; `file_name` is only used in messages."""
    root, data = _compose_and_construct(text, file_name)
    if not isinstance(data, dict):
        raise StoryFileError(
            file_name, _line(root), "the top level must be a mapping of story fields (slug, ...)"
        )
    _check_duplicate_entries(root, data, file_name)
    try:
        story = Story.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc, root, data, file_name) from None
    return LoadedStory(story, _source_map(root, story, file_name))


def _compose_and_construct(text: str, file_name: str) -> tuple[yaml.Node, Any]:
    # SafeLoader only: a story file never builds Python objects.
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise StoryFileError(file_name, 1, "the file is empty")
        _check_duplicate_keys(root, file_name)
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, file_name) from None
    except yaml.YAMLError as exc:
        raise StoryFileError(file_name, None, f"YAML error: {exc}") from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError, file_name: str) -> StoryFileError:
    kind = (
        "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    )
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    message = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context:
        # e.g. "while scanning a quoted scalar (line 11): found unexpected end of stream"
        context_line = exc.context_mark.line + 1 if exc.context_mark is not None else None
        where = f" (line {context_line})" if context_line not in (None, line) else ""
        message = f"{exc.context}{where}: {exc.problem}"
    return StoryFileError(file_name, line, f"{kind}: {message}")


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _pairs(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """Scalar key -> (key node, value node) of a mapping node; empty for anything else."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _check_duplicate_keys(root: yaml.Node, file_name: str) -> None:
    # PyYAML keeps the last of two equal keys silently; an editor's copy-paste slip must not.
    stack, seen_nodes = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in keys:
                        raise StoryFileError(
                            file_name,
                            _line(key),
                            f"duplicate key {key.value!r} (first on line {keys[key.value]})",
                        )
                    keys[key.value] = _line(key)
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _check_duplicate_entries(root: yaml.Node, data: dict[str, Any], file_name: str) -> None:
    """Duplicate ids and numbers, reported at the second occurrence (before type checks)."""
    top = _pairs(root)

    def entries(key: str) -> list[tuple[Any, yaml.Node]]:
        if key not in top or not isinstance(data.get(key), list):
            return []
        seq = top[key][1]
        if not isinstance(seq, yaml.SequenceNode):
            return []
        return list(zip(data[key], seq.value, strict=False))

    first_fragment: dict[str, int] = {}
    first_choice: dict[str, tuple[int, str]] = {}
    for item, node in entries("fragments"):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        fid = item["id"]
        id_line = _key_line(node, "id")
        if fid in first_fragment:
            raise StoryFileError(
                file_name,
                id_line,
                f"fragment {fid!r}: duplicate fragment id (first on line {first_fragment[fid]})",
            )
        first_fragment[fid] = id_line
        choices_node = _pairs(node).get("choices", (None, None))[1]
        if not isinstance(item.get("choices"), list) or not isinstance(
            choices_node, yaml.SequenceNode
        ):
            continue
        for choice, cnode in zip(item["choices"], choices_node.value, strict=False):
            if not isinstance(choice, dict) or not isinstance(choice.get("id"), str):
                continue
            cid = choice["id"]
            cline = _key_line(cnode, "id")
            if cid in first_choice:
                where, owner = first_choice[cid]
                raise StoryFileError(
                    file_name,
                    cline,
                    f"fragment {fid!r}: duplicate choice id {cid!r} "
                    f"(first on line {where}, in fragment {owner!r})",
                )
            first_choice[cid] = (cline, fid)

    first_chapter: dict[int, int] = {}
    for item, node in entries("chapters"):
        number = item.get("number") if isinstance(item, dict) else None
        if not isinstance(number, int) or isinstance(number, bool):
            continue
        line = _key_line(node, "number")
        if number in first_chapter:
            raise StoryFileError(
                file_name,
                line,
                f"chapter {number}: duplicate chapter number "
                f"(first on line {first_chapter[number]})",
            )
        first_chapter[number] = line

    first_clue: dict[str, int] = {}
    for item, node in entries("clues"):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        clue_id = item["id"]
        line = _key_line(node, "id")
        if clue_id in first_clue:
            raise StoryFileError(
                file_name,
                line,
                f"clue {clue_id!r}: duplicate clue id (first on line {first_clue[clue_id]})",
            )
        first_clue[clue_id] = line


def _line_at(root: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node along a pydantic error location that exists in the file."""
    node, line = root, _line(root)
    for part in loc:
        pairs = _pairs(node)
        if isinstance(part, str) and part in pairs:
            key, node = pairs[part]
            line = _line(key)
        elif (
            isinstance(part, int) and isinstance(node, yaml.SequenceNode) and part < len(node.value)
        ):
            node = node.value[part]
            line = _line(node)
        else:
            break
    return line


def _key_line(node: yaml.Node, key: str) -> int:
    """Line of `key` in a mapping node, or of the mapping itself (e.g. key from a merge)."""
    pair = _pairs(node).get(key)
    return _line(pair[0]) if pair is not None else _line(node)


def _describe(loc: tuple[Any, ...], data: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """Who the error is about ("fragment 'x'") and the rest of the path inside it."""
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data.get(loc[0]), list):
        items = data[loc[0]]
        item = items[loc[1]] if loc[1] < len(items) else None
        item = item if isinstance(item, dict) else {}
        if loc[0] == "fragments" and isinstance(item.get("id"), str):
            who, rest = f"fragment {item['id']!r}", loc[2:]
            choices = item.get("choices")
            if len(rest) >= 2 and rest[0] == "choices" and isinstance(choices, list):
                index = rest[1]
                choice = choices[index] if isinstance(index, int) and index < len(choices) else None
                if isinstance(choice, dict) and isinstance(choice.get("id"), str):
                    return f"{who}: choice {choice['id']!r}", rest[2:]
            return who, rest
        if loc[0] == "clues" and isinstance(item.get("id"), str):
            return f"clue {item['id']!r}", loc[2:]
        if loc[0] == "chapters" and isinstance(item.get("number"), int):
            return f"chapter {item['number']}", loc[2:]
        return f"{loc[0]}[{loc[1]}]", loc[2:]
    return "", loc


def _path(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_error(
    exc: ValidationError, root: yaml.Node, data: dict[str, Any], file_name: str
) -> StoryFileError:
    found = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        who, rest = _describe(loc, data)
        if err["type"] == "extra_forbidden":
            what = f"unknown field {rest[-1]!r}" if rest else "unknown field"
            rest = rest[:-1]
        elif err["type"] == "missing":
            what = f"missing field {rest[-1]!r}" if rest else "missing field"
            rest = rest[:-1]
        else:
            what = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            if isinstance(value, str | int | float | bool) or value is None:
                shown = repr(value)
                what += f" (got {shown[:40]}{'...' if len(shown) > 40 else ''})"
        prefix = ": ".join(p for p in (who, _path(rest)) if p)
        found.append((_line_at(root, loc), f"{prefix}: {what}" if prefix else what))
    found.sort(key=lambda item: item[0])
    line, message = found[0]
    if len(found) > 1:
        message += f" (and {len(found) - 1} more error{'s' if len(found) > 2 else ''})"
    return StoryFileError(file_name, line, message)


def _source_map(root: yaml.Node, story: Story, file_name: str) -> StorySourceMap:
    top = _pairs(root)
    fragment_lines: dict[str, int] = {}
    choice_lines: dict[str, int] = {}
    field_lines: dict[tuple[str, str, str], int] = {}
    seq = top["fragments"][1]
    for frag, node in zip(story.fragments, seq.value, strict=True):
        pairs = _pairs(node)
        fragment_lines[frag.id] = _key_line(node, "id")
        for key, (key_node, _) in pairs.items():
            field_lines[("fragment", frag.id, key)] = _line(key_node)
        if "reward" in pairs:
            for key, (key_node, _) in _pairs(pairs["reward"][1]).items():
                field_lines[("fragment", frag.id, f"reward.{key}")] = _line(key_node)
        if "choices" in pairs:
            for choice, cnode in zip(frag.choices, pairs["choices"][1].value, strict=True):
                cpairs = _pairs(cnode)
                choice_lines[choice.id] = _key_line(cnode, "id")
                for key, (key_node, _) in cpairs.items():
                    field_lines[("choice", choice.id, key)] = _line(key_node)
    return StorySourceMap(
        file=file_name,
        start_line=_line(top["start"][0]),
        fragment_lines=MappingProxyType(fragment_lines),
        choice_lines=MappingProxyType(choice_lines),
        field_lines=MappingProxyType(field_lines),
    )


# --- validation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoryProblem:
    """One thing wrong with a story, with a stable `code` (see docs/story-format.md)."""

    code: str
    message: str
    file: str
    fragment_id: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        who = f"fragment {self.fragment_id!r}: " if self.fragment_id else ""
        return f"{where}: {who}{self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROBLEM_CODES = (
    "dangling_link",
    "bad_chapter",
    "dead_end",
    "unreachable_free",
    "unreachable_vip",
    "free_behind_vip",
    "cycle_no_exit",
    "clue_never_granted",
    "unaffordable_cost",
)


def validate_story(loaded: LoadedStory | Story) -> list[StoryProblem]:
    """Every problem of a well-formed story, sorted by line. An empty list means publishable."""
    if isinstance(loaded, Story):
        loaded = LoadedStory(loaded, StorySourceMap(file="<story>"))
    story, src = loaded.story, loaded.source
    problems: list[StoryProblem] = []

    def report(code: str, message: str, fragment_id: str | None, line: int | None) -> None:
        problems.append(StoryProblem(code, message, src.file, fragment_id, line))

    ids = story.fragment_ids
    clue_ids = {c.id for c in story.clues}
    chapter_numbers = {c.number for c in story.chapters}

    if story.start not in ids:
        report(
            "dangling_link",
            f"start points to unknown fragment {story.start!r}",
            None,
            src.start_line,
        )

    for frag in story.fragments:
        if frag.chapter not in chapter_numbers:
            report(
                "bad_chapter",
                f"chapter {frag.chapter} is not declared in `chapters`",
                frag.id,
                src.fragment_line(frag.id, "chapter"),
            )
        if (
            frag.reward is not None
            and frag.reward.clue is not None
            and frag.reward.clue not in clue_ids
        ):
            report(
                "dangling_link",
                f"reward grants unknown clue {frag.reward.clue!r}",
                frag.id,
                src.fragment_line(frag.id, "reward.clue"),
            )
        if not frag.choices and not frag.is_ending:
            report(
                "dead_end",
                "has no choices and is not marked `is_ending: true`",
                frag.id,
                src.fragment_line(frag.id),
            )
        for choice in frag.choices:
            if choice.next not in ids:
                report(
                    "dangling_link",
                    f"choice {choice.id!r} leads to unknown fragment {choice.next!r}",
                    frag.id,
                    src.choice_line(choice.id, "next"),
                )
            if choice.requires_clue is not None and choice.requires_clue not in clue_ids:
                report(
                    "dangling_link",
                    f"choice {choice.id!r} requires unknown clue {choice.requires_clue!r}",
                    frag.id,
                    src.choice_line(choice.id, "requires_clue"),
                )

    _check_cycles(story, src, report)
    if story.start in ids:
        # With no start every fragment would be unreachable: one dangling_link says it better.
        _check_reachability(story, src, clue_ids, report)

    problems.sort(key=lambda p: (p.line is None, p.line or 0, p.code, p.fragment_id or ""))
    return problems


def _successors(story: Story, *, free: bool) -> dict[str, list[str]]:
    """The story graph as a free player (no VIP fragments, no vip_only choices) or VIP sees it."""
    ids = story.fragment_ids
    graph: dict[str, list[str]] = {}
    for frag in story.fragments:
        if free and story.is_vip_fragment(frag.id):
            graph[frag.id] = []
            continue
        graph[frag.id] = [
            c.next
            for c in frag.choices
            if c.next in ids and not (free and (c.vip_only or story.is_vip_fragment(c.next)))
        ]
    return graph


def _reach(graph: Mapping[str, list[str]], sources: Iterable[str]) -> set[str]:
    """Breadth-first: every node reachable from any source (sources included)."""
    seen = set(sources)
    queue = deque(seen)
    while queue:
        for nxt in graph[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _check_reachability(story: Story, src: StorySourceMap, clue_ids: set[str], report: Any) -> None:
    vip_graph = _successors(story, free=False)
    free_graph = _successors(story, free=True)
    vip_reach = _reach(vip_graph, [story.start])
    free_reach = set() if story.is_vip_fragment(story.start) else _reach(free_graph, [story.start])

    for frag in story.fragments:
        line = src.fragment_line(frag.id)
        if story.is_vip_fragment(frag.id):
            if frag.id not in vip_reach:
                report(
                    "unreachable_vip", f"no player can reach it from {story.start!r}", frag.id, line
                )
        elif frag.id not in vip_reach:
            report(
                "unreachable_free",
                f"no player, free or VIP, can reach it from {story.start!r}",
                frag.id,
                line,
            )
        elif frag.id not in free_reach:
            report(
                "free_behind_vip",
                "free fragment reachable only through VIP fragments or vip_only choices",
                frag.id,
                line,
            )

    granters: dict[str, list[str]] = {}
    for frag in story.fragments:
        if frag.reward is not None and frag.reward.clue is not None:
            granters.setdefault(frag.reward.clue, []).append(frag.id)
    holders: dict[tuple[str, bool], set[str]] = {}

    def can_hold(clue: str, fragment_id: str, *, free: bool) -> bool:
        # Some path start -> granter -> ... -> fragment exists for this kind of player.
        if (clue, free) not in holders:
            graph, reach = (free_graph, free_reach) if free else (vip_graph, vip_reach)
            sources = [g for g in granters.get(clue, []) if g in reach]
            holders[(clue, free)] = _reach(graph, sources)
        return fragment_id in holders[(clue, free)]

    for frag in story.fragments:
        if frag.id not in vip_reach:
            continue
        for choice in frag.choices:
            line = src.choice_line(choice.id, "requires_clue")
            needed = choice.requires_clue
            if needed is not None and needed in clue_ids:
                if not can_hold(needed, frag.id, free=False):
                    report(
                        "clue_never_granted",
                        f"choice {choice.id!r} needs clue {needed!r}, which no fragment a player "
                        "can visit before it grants",
                        frag.id,
                        line,
                    )
                elif (
                    frag.id in free_reach
                    and not choice.vip_only
                    and not can_hold(needed, frag.id, free=True)
                ):
                    report(
                        "clue_never_granted",
                        f"choice {choice.id!r} needs clue {needed!r}, which free players cannot "
                        "get before it (granted only in VIP content or on no free path)",
                        frag.id,
                        line,
                    )
            if frag.id in free_reach and not choice.vip_only and choice.cost > story.max_free_cost:
                report(
                    "unaffordable_cost",
                    f"choice {choice.id!r} costs {choice.cost} besitos, more than a free player "
                    f"can hold (max_free_cost {story.max_free_cost})",
                    frag.id,
                    src.choice_line(choice.id, "cost"),
                )


def _check_cycles(story: Story, src: StorySourceMap, report: Any) -> None:
    graph = _successors(story, free=False)
    order = [f.id for f in story.fragments]
    position = {fid: i for i, fid in enumerate(order)}
    for component in _strongly_connected(order, graph):
        members = set(component)
        first = min(component, key=position.__getitem__)
        looped = len(component) > 1 or first in graph[first]
        if not looped:
            continue
        if any(story.fragment(f).is_ending for f in component):
            continue
        if any(nxt not in members for f in component for nxt in graph[f]):
            continue
        names = ", ".join(repr(f) for f in sorted(component, key=position.__getitem__))
        report(
            "cycle_no_exit",
            f"loop with no way out and no ending: {names}",
            first,
            src.fragment_line(first),
        )


def _strongly_connected(nodes: list[str], graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so a long story cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, successors = work[-1]
            descended = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    descended = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components
