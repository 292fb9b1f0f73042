"""What a handler gives the bus to run one command: how to decide, and how to read the result.

A handler (`application.handlers`) turns a command into a `Plan`: `decide` is the use case's
get -> decide -> save (load aggregates, call their methods, return those to save), run by the bus
once per attempt, from fresh state after a version conflict; `then` finishes the typed result
(the details a use case adds, such as a token shown once), run after the command's key is
released. The bus (`application.bus`) does the rest: ordering by the command's key, retries,
connection repair, the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dianabot.application.results import CommandResult
from dianabot.domain.cause import Cause
from eventsourcing.domain import Aggregate

Decide = Callable[[Cause], Iterable[Aggregate | None]]
"""One attempt of a command: the aggregates to save together (None entries are skipped)."""

Then = Callable[[CommandResult], CommandResult]


@dataclass(frozen=True, slots=True)
class Plan:
    decide: Decide
    then: Then | None = None


Handler = Callable[[Any, Any], Plan]
"""`handler(app, command) -> Plan`; each handler names the application and command types it
takes, and the registry (`application.handlers.HANDLERS`) pairs it with its command type."""
