"""The `dianabot` console script."""

from __future__ import annotations

import typer
from dianabot.adapters.cli.admin import admin_app
from dianabot.adapters.cli.demo import demo
from dianabot.adapters.cli.projections import projections_app
from dianabot.adapters.cli.reconcile import reconcile
from dianabot.adapters.cli.story import story_app

app = typer.Typer(
    name="dianabot",
    help="Diana's event-sourced backend: demo, administration, and (soon) the bot and audits.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(demo)
app.add_typer(admin_app, name="admin")
app.add_typer(story_app, name="story")
app.add_typer(projections_app, name="projections")
app.command()(reconcile)


def main() -> None:
    app()
