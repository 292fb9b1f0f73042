"""`dianabot audit ...`: the auditor's commands (registered here by their modules)."""

from __future__ import annotations

import typer

audit_app = typer.Typer(
    help="Audits: history, state at a past moment, explanations, badges.", no_args_is_help=True
)
