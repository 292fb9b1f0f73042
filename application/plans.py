"""A command as data, so that one definition of what a command does (`CoreApplication.
_command_steps`) runs both for blocking callers and for asyncio callers (the Telegram bot).

A use case method builds its `Plan` (which key orders it, how to decide, what caused it, how to
read the result) and hands it to `_command`. An `AsyncCommands` caller runs the same method with
`planning` set: `_command` then raises `PlannedCommand` with the plan instead of running it, and
the caller awaits `run_plan_async(plan)`. The steps a command takes are yielded to its driver:
`Commit` (answered with the recordings, or the exception raised), `Pause`, `Repair`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from dianabot.application.results import CommandResult, Origin
from dianabot.domain.cause import Cause
from eventsourcing.domain import Aggregate

Decide = Callable[[Cause], Iterable[Aggregate | None]]

planning: ContextVar[bool] = ContextVar("dianabot_planning", default=False)
"""Set while an asyncio caller asks a use case method for its plan."""


@dataclass(frozen=True, slots=True)
class Plan:
    key: object
    decide: Decide
    origin: Origin
    then: Callable[[CommandResult], CommandResult] | None = None

    def finish(self, result: CommandResult) -> CommandResult:
        return result if self.then is None else self.then(result)


class PlannedCommand(BaseException):  # noqa: N818 - not an error: a plan handed over
    """Carries a use case's plan out of the method to an asyncio caller. A BaseException, so
    that no `except Exception` in a use case can swallow it."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan.key)
        self.plan = plan


@dataclass(frozen=True, slots=True)
class Commit:
    """Run this attempt and save what it decided (through the writer)."""

    attempt: Callable[[], Sequence[Aggregate]]


@dataclass(frozen=True, slots=True)
class Pause:
    """Back off before retrying after a version conflict."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Repair:
    """Replace the connection pool's dead connections before retrying."""


Step = Commit | Pause | Repair
