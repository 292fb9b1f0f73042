"""Exit codes of every `dianabot` command: one meaning each (table in docs/operations.md).

Scripts can branch on them: 1 means "look at the report", 2 "fix the command line or the settings",
3 "the system said no", 4 "try again when the store is there".
"""

from __future__ import annotations

OK = 0
DIFFERENCES = 1
"""Problems found: reconcile differences, story check problems, a failed projection."""
USAGE = 2
"""Bad usage or settings: an unknown option or argument value, an invalid `DIANABOT_*` setting,
a database URL that cannot work (also click's own usage errors)."""
REFUSED = 3
"""Refused: a command the rules refused (not_admin, insufficient_points, ...), or a destructive
command not confirmed (declined, or no terminal and no --yes)."""
UNAVAILABLE = 4
"""The store is unavailable: unreachable, or missing/empty for a command that only reads, or its
read models never built (a command that only reads creates no table)."""
