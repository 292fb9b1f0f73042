"""The `dianabot` console script."""

from __future__ import annotations

from typing import Annotated

import typer
from dianabot.adapters.cli.admin import admin_app
from dianabot.adapters.cli.common import options
from dianabot.adapters.cli.config import config
from dianabot.adapters.cli.demo import demo
from dianabot.adapters.cli.policies import policies_app
from dianabot.adapters.cli.projections import projections_app
from dianabot.adapters.cli.reconcile import reconcile
from dianabot.adapters.cli.story import story_app

from dianabot import __version__

app = typer.Typer(
    name="dianabot",
    help="Diana's event-sourced backend: demo, administration, and (soon) the bot and audits.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dianabot {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The store for this command (overrides DIANABOT_DATABASE_URL): sqlite:///FILE, "
            "postgresql+psycopg://..., memory://",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Diana's event-sourced backend: demo, administration, read models and audits."""
    options.database_url = database_url


app.command()(demo)
app.command()(config)
app.add_typer(admin_app, name="admin")
app.add_typer(story_app, name="story")
app.add_typer(projections_app, name="projections")
app.add_typer(policies_app, name="policies")
app.command()(reconcile)


def main() -> None:
    app()
