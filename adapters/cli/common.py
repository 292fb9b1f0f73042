"""Shared CLI plumbing: wiring services, printing tables or JSON, clear errors and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.database import DatabaseUnavailable
from dianabot.adapters.logs import configure_logging
from dianabot.adapters.settings import Settings
from dianabot.application.results import CommandResult
from rich.console import Console

console = Console()
errors = Console(stderr=True)

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 2


@contextmanager
def services(database_url: str | None = None, **overrides: Any) -> Iterator[Services]:
    """Build the services from settings; a database that cannot be reached is a clear error."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        wired = bootstrap(settings, database_url=database_url, **overrides)
    except DatabaseUnavailable as error:
        errors.print(f"[red]database unavailable:[/red] {error}")
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    with wired:
        yield wired


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, default=str, ensure_ascii=False, indent=2))


def report(result: CommandResult, as_json: bool, success: str) -> None:
    """Print a command result and exit non-zero on refusal."""
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
            f"[green]{success}[/green] ({', '.join(result.event_names()) or 'no change'})"
        )
    else:
        errors.print(f"[red]{result.outcome}:[/red] {result.message}")
    if not result.ok:
        raise typer.Exit(EXIT_UNAVAILABLE if result.outcome == "unavailable" else EXIT_REFUSED)
