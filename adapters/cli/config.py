"""`dianabot config [--json]`: the settings every command would use, secrets hidden.

The values after the defaults, `.env`, the environment and --database-url are applied: what to
check first when a command looks at the wrong store.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from dianabot.adapters.cli.common import console, database_url, print_json, settings
from dianabot.adapters.eventstore.database import redact
from dianabot.adapters.settings import SECRET_FIELDS, env_name
from rich.markup import escape
from rich.table import Table


def config(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the resolved settings (secrets and database passwords hidden)."""
    resolved = settings(as_json)
    values: dict[str, Any] = {}
    for field in type(resolved).model_fields:
        value = getattr(resolved, field)
        if field in SECRET_FIELDS:
            value = None if value is None else "***"
        elif field == "database_url":
            value = redact(database_url(resolved))
        elif isinstance(value, frozenset):
            value = sorted(value)
        values[env_name(field)] = value
    if as_json:
        print_json(values)
        return
    table = Table(title="dianabot settings")
    table.add_column("setting")
    table.add_column("value")
    for name, value in values.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        shown = "" if value is None else str(value)
        table.add_row(name, escape(shown))
    console.print(table)
