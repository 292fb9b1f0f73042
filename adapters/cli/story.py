"""`dianabot story ...`: check a story file, publish it as a new version.

Exit codes of `check` (docs/story-format.md): 0 publishable, 1 problems found, 2 unreadable file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.admin import admin_origin
from dianabot.adapters.cli.common import console, errors, print_json, report, services
from dianabot.adapters.story_file import StoryFileError, load_bundled_story, load_story
from dianabot.application.results import CONSOLE_ADMIN_ID
from dianabot.domain.story import LoadedStory
from dianabot.domain.story_validation import StoryProblem, validate_story
from rich.table import Table

EXIT_PROBLEMS = exits.DIFFERENCES
EXIT_UNREADABLE = exits.USAGE

story_app = typer.Typer(help="Story files: check and publish.", no_args_is_help=True)

StoryFile = Annotated[
    Path | None,
    typer.Argument(
        help="Story YAML file (default: the bundled content/story.yaml).", show_default=False
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@story_app.command()
def check(file: StoryFile = None, as_json: AsJson = False) -> None:
    """Load and validate a story file: exit 0 clean, 1 problems, 2 unreadable or malformed."""
    loaded = _load_or_exit(file, as_json)
    problems = validate_story(loaded)
    if as_json:
        print_json(
            {
                "file": loaded.source.file,
                "ok": not problems,
                "story": _summary(loaded),
                "problems": [p.to_dict() for p in problems],
            }
        )
    else:
        _print_summary(loaded, problems)
        _print_problems(problems)
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)


@story_app.command()
def publish(
    file: StoryFile = None,
    admin: Annotated[
        int, typer.Option("--admin", help="Acting admin's Telegram id (0 = server console).")
    ] = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Publish a story file as a new version (refused, exit 1, if it has problems).

    Players standing on a fragment the new version removed are moved to the nearest valid one,
    each by a recorded ProgressRelocated event.
    """
    loaded = _load_or_exit(file, as_json)
    with services() as wired:
        result = wired.app.publish_story(loaded, admin_origin(admin))
    if not result.ok and not as_json:
        problems = result.details.get("problems", [])
        for problem in problems:
            errors.print(
                str(StoryProblem(**problem)), markup=False, highlight=False, soft_wrap=True
            )
    details = result.details
    if result.ok and details.get("unchanged"):
        success = f"story {details['slug']} v{details['version']} is already published"
    elif result.ok:
        success = (
            f"published story {details['slug']} v{details['version']} "
            f"({details['relocated']} player(s) relocated)"
        )
    else:
        success = ""
    report(result, as_json, success)


def _load_or_exit(file: Path | None, as_json: bool) -> LoadedStory:
    """The story in `file`, or the bundled one when no file is given; exit 2 if unreadable."""
    try:
        return load_story(file) if file is not None else load_bundled_story()
    except StoryFileError as error:
        if as_json:
            print_json({"file": error.file, "ok": False, "error": error.to_dict()})
        else:
            errors.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_UNREADABLE) from None


def _summary(loaded: LoadedStory) -> dict[str, Any]:
    story = loaded.story
    return {
        "slug": story.slug,
        "title": story.title,
        "version_label": story.version_label,
        "content_hash": story.content_hash,
        "fragments": len(story.fragments),
        "chapters": len(story.chapters),
        "clues": len(story.clues),
        "endings": len(story.endings),
    }


def _print_summary(loaded: LoadedStory, problems: list[StoryProblem]) -> None:
    table = Table(title=f"{loaded.source.file}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key, value in _summary(loaded).items():
        table.add_row(key, str(value))
    verdict = (
        "[green]ok: publishable[/green]"
        if not problems
        else f"[red]{len(problems)} problem(s)[/red]"
    )
    table.add_row("result", verdict)
    console.print(table)


def _print_problems(problems: list[StoryProblem]) -> None:
    if not problems:
        return
    by_code = Table(title="problems by kind")
    by_code.add_column("code")
    by_code.add_column("count", justify="right")
    for code, count in sorted(Counter(p.code for p in problems).items()):
        by_code.add_row(code, str(count))
    console.print(by_code)
    # One grep-friendly line per problem: file:line: fragment 'x': message [code]
    for problem in problems:
        console.print(str(problem), markup=False, highlight=False, soft_wrap=True)
