"""Undecodable stored events in a reconciliation: found, reported, and never rebuilt from.

A reconciliation's replay goes past an event it cannot decode (noting its position) so that
every other difference is still found; the live projections stop before such an event. Either
way the report names the position (check `corrupt_history`), and `--fix` refuses to rebuild a
projection from that history: its rows would silently lack the event.
"""

from __future__ import annotations

from dianabot.projections.fold import corrupt_detail
from dianabot.projections.ports import EventLog
from dianabot.projections.reconcile.report import Fix


def undecodable_at(events: EventLog, position: int) -> str | None:
    """Why the stored event at `position` cannot be decoded; None if it can (or is gone)."""
    for page in events.pages(position - 1, position, 1):
        for row in page:
            if row.id != position:
                continue
            try:
                events.decode(row)
            except Exception as error:
                return corrupt_detail(row, events.name_of(row.topic), error)
    return None


def refuse_blocked(blocked: dict[str, list[int]], differing: set[str]) -> list[Fix]:
    """The repairs a fix will not make: rebuilding a projection from an undecodable history
    would silently drop those events from its rows."""
    fixes = []
    for name in sorted(set(blocked) & differing):
        positions = ", ".join(str(p) for p in sorted(set(blocked[name]))[:10])
        fixes.append(
            Fix("swap", name, "refused",
                f"the history cannot be decoded at position(s) {positions}: nothing is "
                "rebuilt from it; restore those events from a backup, then reconcile again")
        )  # fmt: skip
    return fixes
