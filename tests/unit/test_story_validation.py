"""Story loading and validation: every load error and every problem code, and the bundled story.

Each fixture in story_fixtures/ marks what it must produce on the very line it is expected at:
`# expect: CODE FRAGMENT` (FRAGMENT `-` for none) for validation problems, and
`# expect-error: TEXT` in `error_*.yaml` for load errors.
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import dianabot.content
import dianabot.domain.story
import dianabot.domain.story_validation
import pytest
import yaml
from dianabot.adapters import story_file
from dianabot.adapters.story_file import (
    StoryFileError,
    bundled_story_file,
    load_bundled_story,
    load_story,
    parse_story,
)
from dianabot.domain.cause import Cause
from dianabot.domain.errors import InvalidAmount
from dianabot.domain.player import Player
from dianabot.domain.progress import begin, take_choice
from dianabot.domain.rules import MAX_AMOUNT
from dianabot.domain.story import Story
from dianabot.domain.story_validation import PROBLEM_CODES, StoryProblem, validate_story
from pydantic import ValidationError

FIXTURES = Path(__file__).parent / "story_fixtures"
REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECT = re.compile(r"#\s*expect:\s*(\w+)\s+(\S+)\s*$")
EXPECT_ERROR = re.compile(r"#\s*expect-error:\s*(.+?)\s*$")

PROBLEM_FIXTURES = sorted(p for p in FIXTURES.glob("*.yaml") if not p.name.startswith("error_"))
ERROR_FIXTURES = sorted(FIXTURES.glob("error_*.yaml"))


def expected_problems(path: Path) -> list[tuple[str, str | None, int]]:
    found = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if match := EXPECT.search(line):
            code, fragment = match.groups()
            found.append((code, None if fragment == "-" else fragment, number))
    return sorted(found, key=str)


def got(problems: list[StoryProblem]) -> list[tuple[str, str | None, int | None]]:
    return sorted(((p.code, p.fragment_id, p.line) for p in problems), key=str)


# --- one broken story per check ----------------------------------------------------------------


@pytest.mark.parametrize("path", PROBLEM_FIXTURES, ids=lambda p: p.stem)
def test_broken_story_reports_the_expected_problem_at_the_expected_line(path: Path) -> None:
    expected = expected_problems(path)
    assert expected, f"{path.name} has no '# expect:' marker"

    problems = validate_story(load_story(path))

    assert got(problems) == expected
    assert {p.file for p in problems} == {str(path)}


def test_every_problem_code_has_a_fixture() -> None:
    covered = {code for path in PROBLEM_FIXTURES for code, _, _ in expected_problems(path)}
    assert covered == set(PROBLEM_CODES)


def test_problem_text_names_file_line_fragment_and_code() -> None:
    text = (FIXTURES / "dangling_link.yaml").read_text("utf-8")
    [problem] = validate_story(parse_story(text, "story.yaml"))
    assert str(problem) == (
        "story.yaml:17: fragment 'a': choice 'a_1' leads to unknown fragment 'nowhere' "
        "[dangling_link]"
    )
    assert problem.to_dict() == {
        "code": "dangling_link",
        "message": "choice 'a_1' leads to unknown fragment 'nowhere'",
        "file": "story.yaml",
        "fragment_id": "a",
        "line": 17,
    }


def fixture_texts(name: str) -> list[str]:
    text = (FIXTURES / f"{name}.yaml").read_text("utf-8")
    return [str(p) for p in validate_story(parse_story(text, "story.yaml"))]


def test_amounts_over_the_cap_name_the_choice_or_reward_and_its_line() -> None:
    assert fixture_texts("amount_over_cap") == [
        "story.yaml:21: fragment 'a': choice 'a_2' costs 1000001 besitos, over the per-amount "
        "cap of 1000000: the game refuses to charge it, so no one can take it [amount_over_cap]",
        "story.yaml:32: fragment 'tesoro': reward of 2000000 besitos is over the per-amount cap "
        "of 1000000: the game refuses to award it, so no one can enter this fragment "
        "[amount_over_cap]",
    ]


def test_an_amount_over_the_cap_is_what_the_game_refuses_in_play() -> None:
    # The check mirrors the Player's own cap: the fragment it flags cannot be entered.
    loaded = load_story(FIXTURES / "amount_over_cap.yaml")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    player = Player.register(7, "Ana", Cause("tg:update:1", "tg:user:7", at))
    progress = begin(player, loaded.story, 1, Cause("tg:update:2", "tg:user:7", at))
    with pytest.raises(InvalidAmount):
        take_choice(progress, player, loaded.story, 1, "a_1", Cause("u:3", "tg:user:7", at))
    assert ("amount_over_cap", "tesoro") in {
        (p.code, p.fragment_id) for p in validate_story(loaded)
    }
    assert MAX_AMOUNT == 1_000_000  # the fixture's numbers sit on either side of it


def test_traps_name_the_fragment_and_who_is_trapped() -> None:
    assert fixture_texts("free_trap") == [
        "story.yaml:20: fragment 'b': free players can go no further: every choice is vip_only "
        "or leads into VIP content, and it is not an ending [free_trap]",
        "story.yaml:27: fragment 'c': free players cannot leave this loop: every way out of "
        "'c', 'd' is vip_only or leads into VIP content, and none of them is an ending "
        "[free_trap]",
    ]
    assert fixture_texts("clue_trap") == [
        "story.yaml:32: fragment 'b': players can reach it without clue 'llave', which every "
        "choice here needs: they would be stuck [clue_trap]",
        "story.yaml:44: fragment 'e': free players can reach it without clue 'llave', which "
        "every choice here open to free players needs: they would be stuck [clue_trap]",
    ]


TWO_CLUES = """\
slug: t
title: T
version_label: "1"
start: a
chapters:
  - {number: 1, title: Uno, arc: Libre, vip: false}
clues:
  - {id: llave, name: Llave, description: Una llave.}
  - {id: mapa, name: Mapa, description: Un mapa.}
fragments:
  - id: a
    chapter: 1
    speaker: Diana
    text: Hola.
    reward: {clue: mapa}
    choices:
      - {id: a_1, label: Buscar, next: g}
      - {id: a_2, label: Seguir, next: b}
  - id: g
    chapter: 1
    speaker: Diana
    text: La llave.
    reward: {clue: llave}
    choices:
      - {id: g_1, label: Seguir, next: b}
  - id: b
    chapter: 1
    speaker: Diana
    text: Dos cerraduras.
    choices:
      - {id: b_1, label: Con la llave, next: end, requires_clue: llave}
      - {id: b_2, label: Con el mapa, next: end, requires_clue: mapa}
  - id: end
    chapter: 1
    speaker: Diana
    text: Adiós.
    is_ending: true
"""


def test_a_fragment_is_no_trap_when_every_player_holds_one_of_the_clues_it_needs() -> None:
    # 'mapa' is granted at the start, so every player reaching 'b' can take b_2.
    assert validate_story(parse_story(TWO_CLUES, "t.yaml")) == []
    # Without it, a player can reach 'b' holding neither clue (a -> b).
    text = TWO_CLUES.replace("    reward: {clue: mapa}\n", "").replace(
        "      - {id: a_1, label: Buscar, next: g}",
        "      - {id: a_1, label: Buscar, next: g}\n      - {id: a_3, label: Mapa, next: m}",
    )
    text += (
        "  - id: m\n    chapter: 1\n    speaker: Diana\n    text: El mapa.\n"
        "    reward: {clue: mapa}\n    choices:\n      - {id: m_1, label: Seguir, next: b}\n"
    )
    assert [str(p) for p in validate_story(parse_story(text, "t.yaml"))] == [
        "t.yaml:26: fragment 'b': players can reach it holding none of the clues 'llave' or "
        "'mapa', and every choice here needs one: they would be stuck [clue_trap]"
    ]


def test_problem_without_fragment_or_line() -> None:
    problem = StoryProblem("dangling_link", "start points to unknown fragment 'x'", "s.yaml")
    assert str(problem) == "s.yaml: start points to unknown fragment 'x' [dangling_link]"


def test_a_dangling_start_is_reported_once_not_as_everything_unreachable() -> None:
    problems = validate_story(load_story(FIXTURES / "dangling_start.yaml"))
    assert [p.code for p in problems] == ["dangling_link"]


def test_validate_accepts_a_bare_story_without_source_lines() -> None:
    loaded = load_story(FIXTURES / "dead_end.yaml")
    [problem] = validate_story(loaded.story)
    assert (problem.code, problem.fragment_id, problem.file, problem.line) == (
        "dead_end",
        "b",
        "<story>",
        None,
    )


# --- load errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ERROR_FIXTURES, ids=lambda p: p.stem)
def test_malformed_file_is_refused_at_the_right_line(path: Path) -> None:
    [(line, text)] = [
        (number, match.group(1))
        for number, content in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if (match := EXPECT_ERROR.search(content))
    ]

    with pytest.raises(StoryFileError) as info:
        load_story(path)

    error = info.value
    assert isinstance(error, ValueError)
    assert (error.file, error.line) == (str(path), line)
    assert text in error.message
    assert str(error) == f"{path}:{line}: {error.message}"


def test_duplicate_fragment_message_reads_like_the_brief() -> None:
    text = (FIXTURES / "error_duplicate_fragment.yaml").read_text("utf-8")
    with pytest.raises(StoryFileError) as info:
        parse_story(text, "story.yaml")
    assert str(info.value).startswith("story.yaml:14: fragment 'a': duplicate fragment id")
    assert info.value.to_dict() == {
        "file": "story.yaml",
        "line": 14,
        "message": "fragment 'a': duplicate fragment id (first on line 9)",
    }


MINIMAL = """\
slug: t
title: T
version_label: "1"
start: a
chapters:
  - {number: 1, title: Uno, arc: Libre, vip: false}
fragments:
  - id: a
    chapter: 1
    speaker: Diana
    text: Hola.
    is_ending: true
"""


def test_minimal_story_loads_clean() -> None:
    loaded = parse_story(MINIMAL, "t.yaml")
    assert validate_story(loaded) == []
    assert loaded.source.fragment_lines == {"a": 8}
    assert loaded.source.start_line == 4


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "the file is empty"),
        ("- a\n- b\n", 1, "the top level must be a mapping"),
        (MINIMAL.replace("title: T", "title: !!python/object/apply:os.system [ls]"), 2, "YAML"),
        (MINIMAL + "foo: 1\n", 13, "unknown field 'foo'"),
        (MINIMAL.replace('"1"', "1.0"), 3, "version_label: Input should be a valid string"),
        (MINIMAL.replace("is_ending: true", "is_ending: si"), 12, "is_ending"),
        (MINIMAL.replace("id: a", "id: A b"), 8, "fragment 'A b': id: String should match"),
        (MINIMAL.replace("chapter: 1", "chapter: 0"), 9, "greater than or equal to 1"),
        (MINIMAL.split("fragments:")[0] + "fragments: []\n", 7, "at least one entry"),
        (MINIMAL + "    reward: {besitos: -5}\n", 13, "reward.besitos"),
        (MINIMAL.replace("text: Hola.", 'text: "Hola.'), 13, "quoted scalar (line 11)"),
    ],
    ids=[
        "empty",
        "not-a-mapping",
        "python-tag",
        "unknown-top-field",
        "unquoted-version",
        "yes-no-bool",
        "bad-id",
        "chapter-zero",
        "no-fragments",
        "negative-reward",
        "unclosed-quote",
    ],
)
def test_load_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(StoryFileError) as info:
        parse_story(text, "t.yaml")
    assert info.value.line == line
    assert message in info.value.message


def test_several_schema_errors_report_the_first_and_count_the_rest() -> None:
    text = MINIMAL.replace("chapter: 1", "chapter: uno").replace("text: Hola.", "text: 5")
    with pytest.raises(StoryFileError) as info:
        parse_story(text, "t.yaml")
    assert info.value.line == 9
    assert info.value.message.endswith("(and 1 more error)")


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(StoryFileError) as info:
        load_story(missing)
    assert (info.value.file, info.value.line) == (str(missing), None)
    assert str(info.value).startswith(f"{missing}: cannot read the file")

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(MINIMAL.replace("Hola.", "Adiós.").encode("latin-1"))
    with pytest.raises(StoryFileError) as info:
        load_story(latin1)
    assert (info.value.line, info.value.message) == (11, "the file is not UTF-8 text")


def test_story_model_refuses_duplicates_when_built_directly() -> None:
    data = yaml.safe_load(MINIMAL)
    data["fragments"].append(dict(data["fragments"][0]))
    with pytest.raises(ValidationError, match="duplicate fragment id 'a'"):
        Story.model_validate(data)


# --- the model's helpers ---------------------------------------------------------------------


def docs_example() -> str:
    text = (REPO_ROOT / "docs" / "story-format.md").read_text("utf-8")
    return text.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_documented_example_is_a_valid_story() -> None:
    loaded = parse_story(docs_example(), "docs/story-format.md")
    assert validate_story(loaded) == []


def test_vip_is_inherited_from_the_chapter_unless_the_fragment_says_otherwise() -> None:
    story = parse_story(docs_example()).story
    assert story.is_vip_fragment("e1_puerta") is False  # chapter 1, free
    assert story.is_vip_fragment("e1_palco") is True  # chapter 1, but vip: true
    assert story.is_vip_fragment("e2_divan") is True  # chapter 2, VIP
    assert story.chapter_of("e2_divan").title == "El Diván"


def test_choices_belong_to_their_fragment() -> None:
    story = parse_story(docs_example()).story
    assert story.choice("e1_puerta", "e1_puerta_b").cost == 20
    assert story.choice("e1_salon", "e1_puerta_b") is None  # a stale or forged button
    assert story.choice("nowhere", "e1_puerta_b") is None
    assert story.fragment_of_choice("e1_salon_c") == "e1_salon"
    with pytest.raises(KeyError):
        story.fragment("nowhere")


def test_choices_for_filters_vip_only_and_clues_but_not_costs_or_targets() -> None:
    story = parse_story(docs_example()).story
    ids = [c.id for c in story.choices_for("e1_salon", vip=False)]
    assert ids == ["e1_salon_b", "e1_salon_c", "e1_salon_d"]  # gated by clue 'llave'
    ids = [c.id for c in story.choices_for("e1_salon", vip=False, clues={"llave"})]
    assert ids == ["e1_salon_a", "e1_salon_b", "e1_salon_c", "e1_salon_d"]

    bundled = load_bundled_story().story
    free = {c.id for c in bundled.choices_for("c3_escalera", vip=False)}
    vip = {c.id for c in bundled.choices_for("c3_escalera", vip=True)}
    assert "c3_escalera_b" in vip - free  # vip_only


def test_chapter_completion() -> None:
    story = load_bundled_story().story
    # Moving to a higher chapter completes the chapter left behind.
    assert story.completed_chapters("c1_cierre", "c2_regreso") == (1,)
    # Entering an ending completes its chapter, even if the player can go no further (free).
    assert story.completed_chapters("c3_negativa", "c3_final_alba") == (3,)
    # Within a chapter, nothing.
    assert story.completed_chapters("c2_regreso", "c2_terraza") == ()
    assert story.completed_chapters(None, story.start) == ()
    assert story.completed_chapters("c5_revelacion", "c6_madrugada") == (5,)
    assert story.completed_chapters("c6_madrugada", "c6_final_promesa") == (6,)
    assert story.chapter_last_fragments(3) == {"c3_escalera", "c3_final_beso", "c3_final_alba"}
    assert story.chapter_last_fragments(1) == {"c1_cierre"}


def test_completing_two_chapters_in_one_move() -> None:
    story = parse_story(docs_example()).story  # e2_divan is an ending of chapter 2
    assert story.completed_chapters("e1_salon", "e2_divan") == (1, 2)


def test_paragraphs_follow_blank_lines_of_the_folded_text() -> None:
    story = load_bundled_story().story
    assert len(story.fragment("c1_llegada").paragraphs) == 3
    assert all("\n" not in p for p in story.fragment("c1_llegada").paragraphs)


def test_source_map_points_at_the_file() -> None:
    loaded = load_bundled_story()
    lines = bundled_story_file().read_text("utf-8").splitlines()
    for fragment_id, line in loaded.source.fragment_lines.items():
        assert lines[line - 1].strip() == f"- id: {fragment_id}"
    for choice_id, line in loaded.source.choice_lines.items():
        assert lines[line - 1].strip() == f"- id: {choice_id}"
    cost_line = loaded.source.choice_line("c1_salon_c", "cost")
    assert lines[cost_line - 1].strip() == "cost: 20"


def test_deep_stories_do_not_hit_the_recursion_limit() -> None:
    n = 5000
    fragments = [
        {
            "id": f"f{i}",
            "chapter": 1,
            "speaker": "Diana",
            "text": "...",
            "choices": [{"id": f"f{i}_a", "label": "Seguir", "next": f"f{(i + 1) % n}"}],
        }
        for i in range(n)
    ]
    data = {
        "slug": "deep",
        "title": "Deep",
        "version_label": "1",
        "start": "f0",
        "chapters": [{"number": 1, "title": "Uno", "arc": "Libre", "vip": False}],
        "fragments": fragments,
    }
    problems = validate_story(Story.model_validate(data))
    assert [(p.code, p.fragment_id) for p in problems] == [("cycle_no_exit", "f0")]

    fragments[-1] = {**fragments[-1], "choices": [], "is_ending": True}
    assert validate_story(Story.model_validate(data)) == []


# --- content hash ----------------------------------------------------------------------------


def reordered(value: object) -> object:
    """Same data, every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def test_content_hash_is_stable_under_reformatting() -> None:
    original = load_bundled_story().story
    data = yaml.safe_load(bundled_story_file().read_text("utf-8"))
    data = reordered(data)
    data["fragments"].reverse()
    data["clues"].reverse()
    data["fragments"][0]["choices"] = data["fragments"][0].get("choices", [])  # explicit default
    # JSON is valid YAML: no comments, flow style, different quoting and whitespace.
    reformatted = parse_story(json.dumps(data, indent=1, ensure_ascii=True), "reformatted.json")
    assert reformatted.story.content_hash == original.content_hash
    assert re.fullmatch(r"[0-9a-f]{64}", original.content_hash)


def test_content_hash_changes_with_the_content() -> None:
    base = bundled_story_file().read_text("utf-8")
    original = parse_story(base).story.content_hash

    text_changed = base.replace("Sostengo puertas", "Abro puertas", 1)
    assert parse_story(text_changed).story.content_hash != original

    data = yaml.safe_load(base)
    salon = next(f for f in data["fragments"] if f["id"] == "c1_salon")
    salon["choices"].reverse()  # the buttons' order is content
    assert parse_story(json.dumps(data)).story.content_hash != original


# --- the bundled story -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled() -> Story:
    return load_bundled_story().story


def test_bundled_story_is_the_content_package_file() -> None:
    # In this (editable) install the content package is the repo's folder, so edits are seen.
    package_dir = Path(dianabot.content.__file__).parent
    assert Path(str(bundled_story_file())) == package_dir / "story.yaml"
    assert package_dir == REPO_ROOT / "content"


def test_bundled_story_is_read_through_importlib_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installed package may be a zip (no file path at all): the loader must only ask the
    # package for its resource, as importlib.resources does, and read it as such.
    archive = tmp_path / "installed.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("dianabot/content/__init__.py", "")
        zipped.writestr("dianabot/content/story.yaml", MINIMAL)
    asked: list[str] = []

    def files(package: str) -> zipfile.Path:
        asked.append(package)
        return zipfile.Path(archive, "dianabot/content/")

    monkeypatch.setattr(story_file, "files", files)
    loaded = load_bundled_story()
    assert asked == ["dianabot.content"]
    assert loaded.story.content_hash == parse_story(MINIMAL).story.content_hash
    assert loaded.source.file == f"{archive}/dianabot/content/story.yaml"
    assert loaded.source.fragment_lines == {"a": 8}


def test_story_modules_of_the_domain_do_no_io() -> None:
    # Files and YAML belong to the adapter (dianabot.adapters.story_file), not to the domain.
    io_modules = {"os", "io", "pathlib", "yaml", "importlib", "shutil", "tempfile"}
    for module in (dianabot.domain.story, dianabot.domain.story_validation):
        tree = ast.parse(Path(str(module.__file__)).read_text("utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        calls = {
            node.func.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not imported & io_modules, module.__name__
        assert "open" not in calls, module.__name__


def test_bundled_story_has_no_problems() -> None:
    problems = validate_story(load_bundled_story())
    assert [str(p) for p in problems] == []


def test_bundled_story_arcs(bundled: Story) -> None:
    arcs = {(c.number, c.arc, c.vip) for c in bundled.chapters}
    assert arcs == {
        (1, "Los Kinkys", False),
        (2, "Los Kinkys", False),
        (3, "Los Kinkys", False),
        (4, "El Diván", True),
        (5, "El Diván", True),
        (6, "El Diván", True),
    }
    assert not bundled.is_vip_fragment(bundled.start)
    assert {f.speaker for f in bundled.fragments} == {"Diana", "Lucien", "Narrador"}


def test_bundled_story_meets_the_content_minimums(bundled: Story) -> None:
    free = [f for f in bundled.fragments if not bundled.is_vip_fragment(f.id)]
    vip = [f for f in bundled.fragments if bundled.is_vip_fragment(f.id)]
    assert len(bundled.fragments) >= 40
    assert {f.chapter for f in free} == {1, 2, 3}
    assert {f.chapter for f in vip} == {4, 5, 6}

    assert sum(f.is_ending for f in free) >= 2
    assert sum(f.is_ending for f in vip) >= 2

    assert any(c.cost > 0 for f in free for c in f.choices if not c.vip_only)
    assert any(c.cost > 0 for f in vip for c in f.choices)

    granted = {f.reward.clue for f in bundled.fragments if f.reward and f.reward.clue}
    assert len(bundled.clues) >= 3
    assert granted == {c.id for c in bundled.clues}
    assert any(c.requires_clue for f in bundled.fragments for c in f.choices)

    rewards = [f.reward.besitos for f in bundled.fragments if f.reward and f.reward.besitos]
    assert rewards and all(5 <= b <= 20 for b in rewards)


def test_free_endings_lead_into_the_vip_arc(bundled: Story) -> None:
    free_endings = [
        f for f in bundled.fragments if f.is_ending and not bundled.is_vip_fragment(f.id)
    ]
    for ending in free_endings:
        targets = [bundled.fragment(c.next) for c in ending.choices if not c.vip_only]
        assert any(t.chapter == 4 and bundled.is_vip_fragment(t.id) for t in targets), ending.id


def test_bundled_ids_follow_the_convention(bundled: Story) -> None:
    for fragment in bundled.fragments:
        assert fragment.id.startswith(f"c{fragment.chapter}_")
        for choice in fragment.choices:
            assert re.fullmatch(rf"{fragment.id}_[a-z]", choice.id), choice.id
