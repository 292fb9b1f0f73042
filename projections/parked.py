"""Parked events, tried again: `dianabot policies retry`.

For each parked event (not resolved), the event is read from the log at its position through
the `EventLog` port (the same reader the policies follow), the policy reacts to it again, and
the reaction goes through the bus as `RetryParkedEvent`: its handler decides the reaction's
command as that command's own handler does and saves its aggregates together with the parked
event's `ParkedEventResolved`, in one transaction, so the effect happens once (a second retry
finds the event resolved). A reaction the rules refuse resolves it as `refused: <reason>`; a
policy that raises again, or a command that cannot run (`corrupt_history`, `conflict`), is
recorded as `ParkedEventRetryFailed` and the event stays parked. While the store is unavailable
nothing is recorded and the retry stops.

Why here and not in the application: the policies live in the application, the log reader is a
port of the read side, and only the read side (or the adapters) may use both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dianabot.application.commands import FailParkedRetry, RetryParkedEvent
from dianabot.application.policies.base import Policy
from dianabot.application.results import UNAVAILABLE, Origin
from dianabot.projections.ports import EventLog, LoggedRow
from dianabot.projections.subscriptions import FAILED_OUTCOMES, CommandRunner

RESOLVED = "resolved"
"""Applied, refused by the rules, or nothing to do: the parked event is resolved."""
ALREADY_RESOLVED = "already_resolved"
"""Someone else resolved it meanwhile (another retry)."""
FAILED = "failed"
"""Failed again: recorded (`ParkedEventRetryFailed`), still parked."""
SKIPPED = "skipped"
"""Not tried: the policy is not one of this version's, or the retry was refused."""
UNAVAILABLE_OUTCOME = UNAVAILABLE
"""The store is unavailable: nothing recorded, the retry stopped."""
DRY_RUN = "would_retry"
"""`dry_run`: what the policy would issue now; nothing done."""


@dataclass(frozen=True)
class RetryOutcome:
    """What became of one parked event's retry."""

    policy: str
    position: int
    event_name: str
    outcome: str
    detail: str
    reaction: str | None = None
    """The command the policy issued for it (its class name), if any."""

    @property
    def ok(self) -> bool:
        return self.outcome in {RESOLVED, ALREADY_RESOLVED, DRY_RUN}

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "position": self.position,
            "event": self.event_name,
            "outcome": self.outcome,
            "detail": self.detail,
            "reaction": self.reaction,
        }


def retry_parked(
    bus: CommandRunner,
    events: EventLog,
    policies: Mapping[str, Policy],
    parked: Sequence[Mapping[str, Any]],
    origin: Origin,
    *,
    dry_run: bool = False,
) -> list[RetryOutcome]:
    """Try each of these parked events again (rows of the `parked_events` read model, or
    anything with `policy`, `position`, `event_name` and `stream_id`), in order; see the module
    docstring. Stops at the first `unavailable`."""
    outcomes: list[RetryOutcome] = []
    for row in parked:
        outcome = _retry_one(bus, events, policies, row, origin, dry_run=dry_run)
        outcomes.append(outcome)
        if outcome.outcome == UNAVAILABLE_OUTCOME:
            break
    return outcomes


def _retry_one(
    bus: CommandRunner,
    events: EventLog,
    policies: Mapping[str, Policy],
    row: Mapping[str, Any],
    origin: Origin,
    *,
    dry_run: bool,
) -> RetryOutcome:
    name, position, event_name = str(row["policy"]), int(row["position"]), str(row["event_name"])

    def outcome(kind: str, detail: str, reaction: str | None = None) -> RetryOutcome:
        return RetryOutcome(name, position, event_name, kind, detail, reaction)

    def failed(error: str) -> RetryOutcome:
        if dry_run:
            return outcome(DRY_RUN, f"would fail again: {error}")
        result = bus.handle(FailParkedRetry(name, position, error), origin)
        if result.outcome == UNAVAILABLE:
            return outcome(UNAVAILABLE_OUTCOME, result.message)
        return outcome(FAILED, error)

    policy = policies.get(name)
    if policy is None:
        return outcome(SKIPPED, f"no policy {name!r} in this version")
    notification = read_at(events, position)
    if notification is None or str(notification.originator_id) != str(row["stream_id"]):
        return failed(f"the event at {position} is not in the log")
    try:
        event = events.decode(notification)
        reaction = policy.react(event)
    except Exception as error:
        return failed(f"{type(error).__name__}: {_first_line(error)}")
    reaction_name = type(reaction).__name__ if reaction is not None else None
    if dry_run:
        what = f"would issue {reaction_name}" if reaction_name else "nothing to do now"
        return outcome(DRY_RUN, what, reaction_name)
    result = bus.handle(RetryParkedEvent(name, position, reaction), origin)
    if result.ok:
        resolution = next(
            (e.fields.get("outcome", "") for e in result.events if e.name == "ParkedEventResolved"),
            "",
        )
        return outcome(RESOLVED, str(resolution), reaction_name)
    if result.outcome == ALREADY_RESOLVED:
        return outcome(ALREADY_RESOLVED, result.message, reaction_name)
    if result.outcome == UNAVAILABLE:
        return outcome(UNAVAILABLE_OUTCOME, result.message, reaction_name)
    if result.outcome in FAILED_OUTCOMES:
        return failed(f"{result.outcome}: {result.message}")
    return outcome(SKIPPED, f"{result.outcome}: {result.message}", reaction_name)


def read_at(events: EventLog, position: int) -> LoggedRow | None:
    """The notification at `position`, None if there is none."""
    if position < 1:
        return None
    for page in events.pages(position - 1, position, 1):
        for notification in page:
            if notification.id == position:
                return notification
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
