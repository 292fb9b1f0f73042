"""The `dianabot` command line (Typer + rich)."""
