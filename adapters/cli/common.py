"""Shared CLI plumbing: settings, wiring services, output as tables or JSON, errors, exit codes.

Every error a user can cause by a setting, an argument or the store's state ends here as one line
(or one JSON object with --json) and an exit code from `exits`, never a traceback.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.cli import exits
from dianabot.adapters.eventstore.chain import AuditKeyError
from dianabot.adapters.eventstore.database import (
    DatabaseMisconfigured,
    DatabaseUnavailable,
    StoreMissing,
    redact,
)
from dianabot.adapters.logs import configure_logging
from dianabot.adapters.settings import Settings, SettingsInvalid, load_settings, unknown_variables
from dianabot.application.results import CommandResult
from dianabot.projections.positions import ReadModelsMissing
from rich.console import Console
from rich.markup import escape

console = Console()
errors = Console(stderr=True)
log = logging.getLogger(__name__)

# Kept for callers written before `exits`: the same numbers.
EXIT_REFUSED = exits.REFUSED
EXIT_UNAVAILABLE = exits.UNAVAILABLE


@dataclass
class GlobalOptions:
    """What `dianabot [OPTIONS] COMMAND` was given before the command (set by the callback)."""

    database_url: str | None = None


options = GlobalOptions()


def wants_json() -> bool:
    """Whether the running command was given --json (its `as_json` parameter), so the commands
    that do not pass it along still answer errors in JSON."""
    # Typer 0.29 runs its own copy of click, whose context stack is not click's; ask both.
    for name in ("typer._click.globals", "click.globals"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        context = module.get_current_context(silent=True)
        if context is not None:
            return bool(context.params.get("as_json"))
    return False


def fail(code: int, kind: str, message: str, as_json: bool | None = None) -> NoReturn:
    """Print one error (a JSON object on stdout with --json) and exit with `code`."""
    if as_json is None:
        as_json = wants_json()
    if as_json:
        print_json({"error": kind, "message": message, "exit_code": code})
    else:
        errors.print(f"[red]{escape(kind)}:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    errors.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def settings(as_json: bool | None = None) -> Settings:
    """The resolved settings, with logging configured; a bad setting exits 2 naming it."""
    try:
        resolved = load_settings()
    except SettingsInvalid as error:
        fail(exits.USAGE, "invalid setting", str(error), as_json)
    for name, close, where in unknown_variables():
        hint = f"; did you mean {close}?" if close else ""
        warn(f"{name} (in the {where}) is not a dianabot setting and is ignored{hint}")
    configure_logging(resolved.log_level, resolved.log_format)
    return resolved


def database_url(resolved: Settings) -> str:
    """--database-url if given, else DIANABOT_DATABASE_URL (or its default)."""
    return options.database_url or resolved.database_url


@contextmanager
def services(
    database_url_override: str | None = None,
    *,
    read_only: bool = False,
    as_json: bool | None = None,
    unreachable: Callable[[DatabaseUnavailable], None] | None = None,
    configure: Callable[[Settings], Settings] | None = None,
    **overrides: Any,
) -> Iterator[Services]:
    """Build the services from settings; a setting or store that cannot be used is a clear error.

    `read_only`: the command only reads (or repairs what exists): a missing or empty store, or
    read models never built, are said plainly (exit 4) and nothing is created. `unreachable`:
    called first when the database cannot be reached (e.g. `health` reports it as failing).
    `configure`: adjusts the resolved settings (the demo's own chats and admin).
    """
    resolved = settings(as_json)
    if configure is not None:
        resolved = configure(resolved)
    url = database_url_override or database_url(resolved)
    try:
        wired = bootstrap(resolved, database_url=url, read_only=read_only, **overrides)
    except DatabaseMisconfigured as error:
        fail(exits.USAGE, "invalid setting", str(error), as_json)
    except AuditKeyError as error:
        fail(exits.USAGE, "audit key", str(error), as_json)
    except StoreMissing as error:
        fail(exits.UNAVAILABLE, "no store", str(error), as_json)
    except ReadModelsMissing as error:
        fail(
            exits.UNAVAILABLE,
            "no read models",
            f"{error} (store: {redact(url)}); run `dianabot projections run --once` to build "
            f"{'it' if len(error.names) == 1 else 'them'} from the events, then this command "
            "again",
            as_json,
        )
    except DatabaseUnavailable as error:
        if unreachable is not None:
            unreachable(error)
        fail(exits.UNAVAILABLE, "database unavailable", str(error), as_json)
    with wired:
        yield wired


def is_interactive() -> bool:
    """Whether a person can answer a question (stdin and stderr are terminals)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm(action: str, *, yes: bool, as_json: bool | None = None) -> None:
    """Go ahead with a destructive `action` only if --yes, or a person at a terminal says so."""
    if yes:
        return
    if not is_interactive():
        fail(
            exits.REFUSED,
            "confirmation needed",
            f"{action}: not at a terminal, so pass --yes to go ahead "
            "(or --dry-run to see what it would do)",
            as_json,
        )
    if not typer.confirm(f"{action}?", default=False, err=True):
        fail(exits.REFUSED, "cancelled", f"{action}: not done", as_json)


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, default=str, ensure_ascii=False, indent=2))


def report(result: CommandResult, as_json: bool, success: str) -> None:
    """Print a command result and exit non-zero on refusal (3) or an unavailable store (4).

    Messages and `success` may carry user text (a slug, a reason): printed literally, never as
    markup.
    """
    if as_json:
        print_json(
            {
                "outcome": result.outcome,
                "message": result.message,
                "events": [
                    {"name": e.name, "version": e.version, "position": e.position}
                    for e in result.events
                ],
                "details": dict(result.details),
            }
        )
    elif result.ok:
        console.print(
            f"[green]{escape(success)}[/green] "
            f"({escape(', '.join(result.event_names()) or 'no change')})"
        )
    else:
        errors.print(f"[red]{escape(result.outcome)}:[/red] {escape(result.message)}")
    if not result.ok:
        raise typer.Exit(exits.UNAVAILABLE if result.outcome == "unavailable" else exits.REFUSED)
