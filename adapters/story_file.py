"""Story files: read and parse story YAML into a `LoadedStory`, and the story the bot ships with.

`load_story` refuses a file that is not a well-formed story (unreadable, not UTF-8, YAML syntax,
duplicate keys, unknown fields, wrong types, duplicate ids) with a `StoryFileError` that says
`file:line: message`; on success it also maps every fragment, choice and field to its line
(`StorySourceMap`) so `validate_story` can point at the file. The domain does no I/O, so this
adapter is where files and YAML are met. The bundled story is package data of `dianabot.content`,
read through importlib.resources so any install (editable, wheel, zip) finds it.
See docs/story-format.md for the format and every message.
"""

from __future__ import annotations

import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from dianabot.domain.story import LoadedStory, Story, StorySourceMap
from pydantic import ValidationError

BUNDLED_STORY_PACKAGE = "dianabot.content"
BUNDLED_STORY_RESOURCE = "story.yaml"
"""The story shipped with the bot (Spanish, Diana and Lucien): a resource of the content package."""


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


def bundled_story_file() -> Traversable:
    """The bundled story as a package resource: a plain file in a normal install, else a zip entry.

    Its `str()` names it in messages (the file's path when it is a file).
    """
    return files(BUNDLED_STORY_PACKAGE) / BUNDLED_STORY_RESOURCE


def load_bundled_story() -> LoadedStory:
    """Read and parse the story shipped with the bot. Raises StoryFileError if it is broken."""
    resource = bundled_story_file()
    name = str(resource)
    try:
        raw = resource.read_bytes()
    except OSError as exc:
        raise StoryFileError(name, None, f"cannot read the file: {exc.strerror or exc}") from exc
    return _decode_and_parse(raw, name)


def load_story(path: str | os.PathLike[str]) -> LoadedStory:
    """Read and parse a story file. Raises StoryFileError (unreadable, malformed, ill-typed)."""
    name = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise StoryFileError(name, None, f"cannot read the file: {exc.strerror or exc}") from exc
    return _decode_and_parse(raw, name)


def _decode_and_parse(raw: bytes, name: str) -> LoadedStory:
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
