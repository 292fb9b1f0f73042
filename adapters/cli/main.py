"""The `dianabot` console script."""

from __future__ import annotations

import importlib
from typing import Annotated, Any, NoReturn

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.admin import admin_app
from dianabot.adapters.cli.audit import audit_app
from dianabot.adapters.cli.audit_trail import register as register_audit_trail
from dianabot.adapters.cli.common import fail, options
from dianabot.adapters.cli.config import config
from dianabot.adapters.cli.demo import demo
from dianabot.adapters.cli.events import events_app
from dianabot.adapters.cli.health import health, status
from dianabot.adapters.cli.policies import policies_app
from dianabot.adapters.cli.projections import projections_app
from dianabot.adapters.cli.reconcile import reconcile
from dianabot.adapters.cli.run import run
from dianabot.adapters.cli.story import story_app
from dianabot.adapters.cli.workers import workers
from typer.core import TyperGroup

from dianabot import __version__


def _click_errors(name: str) -> tuple[type[Exception], ...]:
    """Click's exception class `name`: Typer 0.29 raises its own copy of click's; older Typers
    raise click's (as in `common.wants_json`, ask both)."""
    found: list[type[Exception]] = []
    for module_name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found.append(getattr(module, name))
    return tuple(found)


CLICK_ERRORS = _click_errors("ClickException")
USAGE_ERRORS = _click_errors("UsageError")
JSON_ERRORS = "dianabot.json_errors"
"""The key, in the context's shared `meta`, of whether the command line asked for --json."""


def asks_for_json(args: list[str]) -> bool:
    """Whether `--json` is among the options (before a `--`, after which all is an argument)."""
    before = args[: args.index("--")] if "--" in args else args
    return "--json" in before


def _json_error(error: Exception) -> NoReturn:
    """Click's own error (what it would print as usage text) as `fail`'s JSON, same exit code."""
    message = getattr(error, "format_message", lambda: str(error))()
    context = getattr(error, "ctx", None)
    if context is not None:
        message = f"{message.rstrip('.')}; see `{context.command_path} --help`"
    usage = isinstance(error, USAGE_ERRORS)
    code = exits.USAGE if usage else int(getattr(error, "exit_code", exits.USAGE))
    fail(code, "bad usage" if usage else "error", message, as_json=True)


class JsonErrorsGroup(TyperGroup):
    """The root command: with --json among the arguments, the errors click raises itself (an
    unknown option or command, a missing argument, a value of the wrong type, a BadParameter
    from a command) are one JSON object on stdout, exit 2, like every other error of the CLI.
    Without --json, click's message for a person is left as it is (exit 2).

    Parsing the root's own options happens in `make_context`; a subcommand's, and everything
    the command does, inside `invoke`. Help, --version and `typer.Exit` are no errors: they
    pass through untouched, so their exit codes do too.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        as_json = asks_for_json(args)
        try:
            context = super().make_context(info_name, args, parent, **extra)
        except CLICK_ERRORS as error:
            if not as_json:
                raise
            _json_error(error)
        context.meta[JSON_ERRORS] = as_json
        return context

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CLICK_ERRORS as error:
            if not ctx.meta.get(JSON_ERRORS):
                raise
            _json_error(error)


app = typer.Typer(
    name="dianabot",
    cls=JsonErrorsGroup,
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


app.command()(run)
app.command()(demo)
app.command()(config)
app.add_typer(admin_app, name="admin")
app.add_typer(story_app, name="story")
app.add_typer(projections_app, name="projections")
app.add_typer(policies_app, name="policies")
app.command()(reconcile)
app.command()(workers)
app.command()(health)
app.command()(status)
app.add_typer(events_app, name="events")
register_audit_trail(audit_app)
app.add_typer(audit_app, name="audit")


def main() -> None:
    app()
