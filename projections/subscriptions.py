"""Policies following the notification log: durable positions, exactly-once effects, isolation.

Each policy (`application.policies`) has its own position: the application's tracking record
under `policy:<name>`, written in the same transaction as the command it issues (the bus's
`tracking`), so its effect and its new position are recorded together or not at all; a worker
killed between the two, or an event seen twice, never applies an effect twice. Events a policy
had nothing to do for move its position at the end of the step (every policy's in one
statement, `SubscriberPositions`).

A step reads one page of the log (through the same `EventLog` port the projectors read),
decodes each event once for every policy that wants it, and lets each policy react in log
order. A policy that raises, or whose command fails for a reason other than a rule refusal
(`unavailable`, `corrupt_history`, `conflict`), stops just before that event and is retried
with a growing backoff while the other policies go on; after `max_attempts` the event is
parked (a `ParkEvent` command, recorded with the policy's new position) and the policy moves
past it. Projectors and commands never wait for a policy: it only reads the log and issues
commands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dianabot.application.commands import Command, ParkEvent
from dianabot.application.policies.base import Policy
from dianabot.application.results import (
    CONFLICT,
    CORRUPT_HISTORY,
    UNAVAILABLE,
    CommandResult,
    Origin,
)
from dianabot.projections.live import LiveRunner
from dianabot.projections.ports import EventLog, LoggedRow
from eventsourcing.persistence import Tracking

log = logging.getLogger(__name__)

FAILED_OUTCOMES = frozenset({UNAVAILABLE, CORRUPT_HISTORY, CONFLICT})
"""Results that mean the command did not run, as opposed to a rule refusing it."""

OK = "ok"
RETRYING = "retrying"


class CommandRunner(Protocol):
    def handle(
        self, command: Command, origin: Origin, *, tracking: Tracking | None = None
    ) -> CommandResult: ...


class PolicyHost(Protocol):
    """What the runner needs of the application: its bus and the subscribers' positions."""

    @property
    def bus(self) -> CommandRunner: ...

    def subscriber_position(self, name: str) -> int: ...

    def subscriber_positions(self, names: Sequence[str]) -> dict[str, int]: ...

    def advance_subscribers(self, positions: Mapping[str, int]) -> set[str]: ...

    def advance_subscriber(self, name: str, position: int) -> bool: ...

    def advance_cached(self, aggregate_id: Any, version: int, event: Callable[[], Any]) -> None: ...


@dataclass
class PolicySlot:
    """One policy in a runner: where it stands and how it is doing (this process's view)."""

    policy: Policy
    position: int = 0
    recorded: int = 0
    """The position last written (events after it that needed nothing may not be yet)."""
    failing_at: int | None = None
    attempts: int = 0
    last_error: str | None = None
    retry_at: float = 0.0
    handled: int = 0
    commands: int = 0
    errors: int = 0
    parked: int = 0
    stopped: bool = False

    @property
    def name(self) -> str:
        return self.policy.name


@dataclass(frozen=True)
class PolicyStatus:
    name: str
    position: int
    head: int
    state: str
    attempts: int
    failing_at: int | None
    last_error: str | None
    errors: int
    parked: int

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "state": self.state,
            "attempts": self.attempts,
            "failing_at": self.failing_at,
            "last_error": self.last_error,
            "errors": self.errors,
            "parked": self.parked,
        }


class PolicyRunner:
    """Feeds the policies from one notification log (see the module docstring)."""

    def __init__(
        self,
        host: PolicyHost,
        events: EventLog,
        policies: Sequence[Policy],
        *,
        page_size: int = 500,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.events = events
        self.slots = [PolicySlot(policy) for policy in policies]
        self.page_size = page_size
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self._synced = False
        self._lock = threading.Lock()
        self.halt: threading.Event | None = None
        """Once set, a step ends after the event in hand (its page may hold hundreds of events,
        each a command): the positions reached are recorded and the rest waits for the next
        step. The live loop's `stopping`, so that a stop does not wait for a whole page."""

    # ----- positions ------------------------------------------------------------------------

    def sync(self) -> None:
        """Adopt the recorded positions (another process may have moved them)."""
        names = [slot.policy.tracking_name for slot in self.slots]
        positions = self.host.subscriber_positions(names)  # one query, at every step
        for slot, name in zip(self.slots, names, strict=True):
            recorded = positions[name]
            if recorded != slot.recorded or not self._synced:
                slot.position = slot.recorded = recorded
        self._synced = True

    def status(self) -> list[PolicyStatus]:
        """Where each policy stands: positions as recorded (any process's), errors as seen by
        this runner."""
        head = self.events.head()
        return [
            PolicyStatus(
                slot.name,
                max(self.host.subscriber_position(slot.policy.tracking_name), slot.position),
                head,
                RETRYING if slot.failing_at is not None else OK,
                slot.attempts,
                slot.failing_at,
                slot.last_error,
                slot.errors,
                slot.parked,
            )
            for slot in self.slots
        ]

    def next_retry_in(self) -> float | None:
        """Seconds until a held-back policy may be retried (None when none is)."""
        now = self.clock()
        waits = [s.retry_at - now for s in self.slots if s.failing_at is not None]
        return max(0.0, min(waits)) if waits else None

    def retry_now(self) -> None:
        for slot in self.slots:
            slot.retry_at = 0.0

    # ----- catching up ----------------------------------------------------------------------

    def catch_up(self, until: int | None = None) -> int:
        """Step until every policy that is not held back reaches `until` (default: the head,
        including the events the policies' own commands add meanwhile). Returns the lowest
        position reached."""
        while self.step(until=until) is not None:
            pass
        return min((s.position for s in self.slots), default=0)

    def step(self, until: int | None = None) -> int | None:
        """One page of the log for the policies behind it; None when none has anything to do
        now. Returns the number of notifications read."""
        with self._lock:
            return self._step(until)

    def _step(self, until: int | None) -> int | None:
        self.sync()
        head = self.events.head()
        target = head if until is None else min(until, head)
        now = self.clock()
        runnable = [s for s in self.slots if s.position < target and now >= s.retry_at]
        if not runnable:
            return None
        start = min(s.position for s in runnable)
        end = min(start + self.page_size, target)
        interest: dict[str, list[PolicySlot]] = {}
        for slot in runnable:
            slot.stopped = False
            for name in slot.policy.handles:
                interest.setdefault(name, []).append(slot)
        read = 0
        names: dict[str, str] = {}
        halt = self.halt
        halted = False
        for page in self.events.pages(start, end, self.page_size):
            read += len(page)
            for row in page:
                if halt is not None and halt.is_set():
                    end, halted = min(end, row.id - 1), True
                    break
                known = names.get(row.topic)
                name = known if known is not None else self.events.name_of(row.topic)
                names[row.topic] = name
                decoded = _Decoded(self.events, row)
                # Every event, wanted or not, keeps the streams the policies read current.
                self.host.advance_cached(row.originator_id, row.originator_version, decoded)
                wanting = [
                    s for s in interest.get(name, ()) if not s.stopped and s.position < row.id
                ]
                if not wanting:
                    continue
                try:
                    event = decoded()
                except Exception as error:
                    for slot in wanting:
                        self._failed(slot, row, name, f"undecodable: {_describe(error)}")
                    continue
                for slot in wanting:
                    self._react(slot, row, name, event)
            if halted:
                break
        for slot in runnable:
            if not slot.stopped:
                slot.position = max(slot.position, end)
        self._record([slot for slot in runnable if slot.position > slot.recorded])
        return read

    def _react(self, slot: PolicySlot, row: LoggedRow, name: str, event: Any) -> None:
        policy = slot.policy
        try:
            command = policy.react(event)
        except Exception as error:
            log.debug("policy %s raised on %s", policy.name, row.id, exc_info=error)
            self._failed(slot, row, name, _describe(error))
            return
        slot.handled += 1
        if command is None:
            self._succeeded(slot, row.id)
            return
        origin = Origin.policy(policy.name, event.originator_id, event.originator_version)
        tracking = Tracking(policy.tracking_name, row.id)
        result = self.host.bus.handle(command, origin, tracking=tracking)
        slot.commands += 1
        if result.outcome in FAILED_OUTCOMES:
            recorded = self.host.subscriber_position(policy.tracking_name)
            if recorded >= row.id:  # another process handled it (its tracking conflicted)
                slot.position = slot.recorded = recorded
                self._succeeded(slot, recorded)
                return
            self._failed(slot, row, name, f"{result.outcome}: {result.message}")
            return
        if result.ok:
            slot.recorded = row.id  # written with the command's events
        self._succeeded(slot, row.id)

    def _succeeded(self, slot: PolicySlot, position: int) -> None:
        slot.position = max(slot.position, position)
        if slot.failing_at is not None and position >= slot.failing_at:
            slot.failing_at, slot.attempts, slot.last_error = None, 0, None

    def _failed(self, slot: PolicySlot, row: LoggedRow, name: str, error: str) -> None:
        """Hold the policy just before this event; after `max_attempts`, park the event."""
        slot.stopped = True
        slot.position = max(slot.position, row.id - 1)  # everything before it is handled
        slot.errors += 1
        if slot.failing_at != row.id:
            slot.failing_at, slot.attempts = row.id, 0
        slot.attempts += 1
        slot.last_error = error
        where = f"{name} at {row.id}"
        if slot.attempts < self.max_attempts:
            delay = min(self.base_delay * 2 ** (slot.attempts - 1), self.max_delay)
            slot.retry_at = self.clock() + delay
            log.warning(
                "policy %s failed on %s (attempt %d of %d, retrying in %.1f s): %s",
                slot.name, where, slot.attempts, self.max_attempts, delay, error,
            )  # fmt: skip
            return
        self._park(slot, row, name, error)

    def _park(self, slot: PolicySlot, row: LoggedRow, name: str, error: str) -> None:
        policy = slot.policy
        command = ParkEvent(
            policy.name,
            row.id,
            str(row.originator_id),
            row.originator_version,
            name,
            error,
            slot.attempts,
        )
        origin = Origin.system("policies", f"park:{policy.name}:{row.id}")
        result = self.host.bus.handle(
            command, origin, tracking=Tracking(policy.tracking_name, row.id)
        )
        if result.outcome in FAILED_OUTCOMES:
            slot.retry_at = self.clock() + self.max_delay
            log.error("policy %s could not park %s at %s: %s", slot.name, name, row.id, result)
            return
        log.error(
            "policy %s parked %s at %s after %d attempts: %s",
            slot.name, name, row.id, slot.attempts, error,
        )  # fmt: skip
        slot.parked += 1
        slot.recorded = max(slot.recorded, row.id)
        slot.failing_at, slot.attempts, slot.last_error = None, 0, None
        slot.position = max(slot.position, row.id)
        slot.retry_at = 0.0

    def _record(self, slots: Sequence[PolicySlot]) -> None:
        """Write the positions reached past events that needed nothing (one statement)."""
        if not slots:
            return
        moved = self.host.advance_subscribers(
            {slot.policy.tracking_name: slot.position for slot in slots}
        )
        for slot in slots:
            name = slot.policy.tracking_name
            if name in moved:
                slot.recorded = slot.position
                continue
            slot.recorded = self.host.subscriber_position(name)  # someone else got there
            slot.position = max(slot.position, slot.recorded)


class _Decoded:
    """A row's event, decoded on first use and then kept (for the cache and the policies)."""

    __slots__ = ("_events", "_row", "_event")

    def __init__(self, events: EventLog, row: LoggedRow) -> None:
        self._events, self._row = events, row
        self._event: Any = None

    def __call__(self) -> Any:
        if self._event is None:
            self._event = self._events.decode(self._row)
        return self._event


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Policies:
    """The policies of one application, kept at the head of the log by one live runner."""

    def __init__(
        self,
        host: PolicyHost,
        events: EventLog,
        policies: Sequence[Policy],
        *,
        poll_interval: float = 0.25,
        **runner_options: Any,
    ) -> None:
        self.runner = PolicyRunner(host, events, policies, **runner_options)
        self.live = LiveRunner(self.runner, poll_interval=poll_interval, name="policies")
        self.runner.halt = self.live.stopping

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(slot.name for slot in self.runner.slots)

    def by_name(self) -> dict[str, Policy]:
        """The policies themselves, by name (to retry their parked events)."""
        return {slot.name: slot.policy for slot in self.runner.slots}

    def catch_up(self, until: int | None = None) -> int:
        return self.runner.catch_up(until)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def status(self) -> list[PolicyStatus]:
        return self.runner.status()

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        return self.live.wait_for(position, timeout)
