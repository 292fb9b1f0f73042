"""The command bus: every command of the application runs here, blocking or awaited.

`bus.handle(command, origin)` runs a command in the calling thread; `await
bus.handle_async(command, origin)` runs the same steps without blocking the event loop (the
Telegram bot's handlers are coroutines). Both look the command's handler up by its type (a
registry built once: `application.handlers.HANDLERS`), which gives a `Plan`, and then

- hold the command's key (`application.locks.KeyLocks`, one FIFO per key shared by threads and
  tasks of any loop), so one user's commands are written in the order they were issued and a
  group-commit batch never holds two changes to one user;
- run the plan's decision through the writer (`writer.run`, or `writer.submit` for an awaited
  command with group commit: its outcome comes back to the loop, one wake-up per batch);
- refuse, before anything is loaded, a caller the command does not accept (`not_admin`) and a
  Telegram id outside Telegram's range (`invalid_input`): `application.authority.admit`;
- turn `DomainError` into a typed `CommandResult` (`already_reacted`, `cooldown`, ...);
- retry on a version conflict (`IntegrityError`) after evicting the cached aggregates, with a
  growing random back-off: optimistic concurrency across processes;
- after a dropped connection, ask the store through its circuit breaker (`application.breaker`,
  whose probe replaces the pool's dead connections): retried once if it answers; otherwise the
  breaker opens and the command is answered `unavailable`, with nothing half-written (one
  transaction). While the breaker is open, commands are answered `unavailable` at once, without
  waiting on the store;
- a stream whose stored history cannot be replayed (an undecodable event, a version gap) gives
  `corrupt_history`, logged with the stream and the version, and touches no other stream;
- release the key, then finish the result with the plan's `then` (off the loop when awaited:
  it may load aggregates or issue further commands);
- a command that failed for a reason other than a rule refusal (`corrupt_history`, or
  `conflict` once the retries gave up; not `unavailable`: the store is down then) is recorded
  on the system's journal (`RecordCommandFailure` -> `CommandFailed`), best effort: the
  caller gets its result whatever that recording does.

What a command does is written once, as a generator of steps (`Commit`, `Pause`, `Repair`); one
driver runs them blocking and the other awaits them. An awaited command whose caller is
cancelled once it holds its key is not cancelled: it is finished in the background (written or
refused all the same; the result is dropped) and only then releases the key. Cancelled while
still waiting for the key, it was never started and is not run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from dianabot.application.authority import admit
from dianabot.application.breaker import CONNECTION_ERRORS, StoreUnavailable
from dianabot.application.commands import Command, JournalCommand, RecordCommandFailure
from dianabot.application.corruption import CorruptHistory
from dianabot.application.group_commit import GroupCommitWriter
from dianabot.application.locks import KeyLocks
from dianabot.application.plans import Handler, Plan
from dianabot.application.results import (
    CONFLICT,
    CORRUPT_HISTORY,
    UNAVAILABLE,
    CommandResult,
    Origin,
)
from dianabot.domain.errors import DomainError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, PersistenceError, Tracking

if TYPE_CHECKING:
    from collections.abc import Hashable

    from dianabot.application.app import CoreApplication

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
"""Optimistic-concurrency retries before a command reports a conflict."""

JOURNALED_FAILURES = frozenset({CORRUPT_HISTORY, CONFLICT})
"""Outcomes recorded as `CommandFailed`: the command did not run, and not because of a rule
(nor because the store is down: nothing could be recorded then)."""


@dataclass(frozen=True, slots=True)
class Commit:
    """Run this attempt and save what it decided (through the writer)."""

    attempt: Callable[[], list[Aggregate]]
    tracking: Tracking | None = None
    """A subscriber's new position, written in the same transaction (even without events)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Back off before retrying after a version conflict."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Repair:
    """After a connection failure: ask the store through the breaker (its probe replaces the
    pool's dead connections); answered True if the store answers, so the command may be
    retried. Blocking (a connection attempt): off the event loop when awaited."""

    error: Exception


Step = Commit | Pause | Repair

CommandObserver = Callable[[Command, CommandResult, float], None]
"""Told each command, its result and the seconds it took (`CommandBus.observe`)."""
Steps = Generator[Step, Any, CommandResult]


class CommandBus:
    """Runs commands for `app` (its writer, clock, cache and connections) with `handlers`."""

    def __init__(self, app: CoreApplication, handlers: Mapping[type[Command], Handler]) -> None:
        self._app = app
        self._handlers = dict(handlers)
        self._locks = KeyLocks()
        self._inbox: LoopInbox | None = None
        self._observers: tuple[CommandObserver, ...] = ()

    # ----- blocking ---------------------------------------------------------------------------

    def handle(
        self, command: Command, origin: Origin, *, tracking: Tracking | None = None
    ) -> CommandResult:
        """Run `command` in this thread and return its result. Not from an event loop's thread
        (use `handle_async` there).

        `tracking` (a policy's position: the notification it reacts to) is written in the
        command's transaction, so the effect and the position move together or not at all;
        such a command has a transaction of its own (never merged by group commit), written
        even when it decides nothing. A refused command writes nothing, tracking included.
        """
        started = time.perf_counter()
        plan = self._plan(command)
        refusal = admit(command, origin, self._app.admin_ids)
        if refusal is not None:
            return self._told(command, CommandResult.refused(refusal), started)
        key = command.key
        # Held until the commit returns, across retries too.
        with self._locks.holding(key):
            steps = self._steps(key, plan, origin, tracking)
            step: Step | CommandResult = _advance(steps)
            while not isinstance(step, CommandResult):
                try:
                    outcome = self._run_step(step)
                except Exception as error:  # answered to the steps, which decide what it means
                    step = _advance(steps, error=error)
                else:
                    step = _advance(steps, outcome)
        if step.outcome in JOURNALED_FAILURES:
            self._journal_failure(command, origin, step)
        return self._told(command, step if plan.then is None else plan.then(step), started)

    def _journal_failure(self, command: Command, origin: Origin, result: CommandResult) -> None:
        """Record a command that failed for a reason other than a rule (`CommandFailed` on the
        system's journal), best effort: never raises, never changes the caller's result."""
        if isinstance(command, JournalCommand):
            return  # its failure could only be recorded the same way, failing again
        try:
            details = result.details
            ids = command.telegram_ids()
            version = details.get("version")
            record = RecordCommandFailure(
                command=type(command).__name__,
                command_key=str(command.key),
                telegram_id=ids[0] if ids else None,
                outcome=result.outcome,
                message=result.message,
                requested_by=origin.actor,
                stream=str(details["stream"]) if "stream" in details else None,
                version=version if isinstance(version, int) else None,
            )
            recorded = self.handle(record, Origin(origin.causation, "system:bus"))
        except Exception:
            log.warning("could not record the failure of %s", type(command).__name__,
                        exc_info=True)  # fmt: skip
            return
        if not recorded.ok and recorded.outcome != "duplicate":
            log.warning(
                "could not record the failure of %s: %s %s",
                type(command).__name__, recorded.outcome, recorded.message,
            )  # fmt: skip

    def _run_step(self, step: Step) -> Any:
        if isinstance(step, Commit):
            if step.tracking is not None:
                return self._app._tracked_writer.run(step.attempt, step.tracking)
            return self._app._writer.run(step.attempt)
        if isinstance(step, Pause):
            time.sleep(step.seconds)
        elif isinstance(step, Repair):
            return self._app._breaker.trip(step.error)
        return None

    # ----- awaited ----------------------------------------------------------------------------

    async def handle_async(
        self, command: Command, origin: Origin, *, tracking: Tracking | None = None
    ) -> CommandResult:
        """`handle` for asyncio callers: the same steps, awaited instead of blocked on."""
        started = time.perf_counter()
        plan = self._plan(command)
        refusal = admit(command, origin, self._app.admin_ids)
        if refusal is not None:
            return self._told(command, CommandResult.refused(refusal), started)
        key = command.key
        await self._locks.acquire_async(key)
        steps = self._steps(key, plan, origin, tracking)
        try:
            step: Step | CommandResult = _advance(steps)
            while not isinstance(step, CommandResult):
                try:
                    outcome = await self._run_step_async(step, steps, key)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    step = _advance(steps, error=error)
                else:
                    step = _advance(steps, outcome)
        except asyncio.CancelledError:
            raise  # the key is released once the command is finished in the background
        except BaseException:
            self._locks.release(key)
            raise
        self._locks.release(key)
        if step.outcome in JOURNALED_FAILURES:
            await asyncio.to_thread(self._journal_failure, command, origin, step)
        if plan.then is not None:
            step = await asyncio.to_thread(plan.then, step)
        return self._told(command, step, started)

    # ----- observers (metrics) ----------------------------------------------------------------

    def observe(self, observer: CommandObserver) -> Callable[[], None]:
        """Tell `observer` every command's result from now on (in the caller's thread or on
        its loop, after the command); returns the function that stops it. For metrics: it
        must be quick, and what it raises is logged, never the command's caller's problem."""
        self._observers = (*self._observers, observer)

        def forget() -> None:
            self._observers = tuple(o for o in self._observers if o is not observer)

        return forget

    def _told(self, command: Command, result: CommandResult, started: float) -> CommandResult:
        for observer in self._observers:
            try:
                observer(command, result, time.perf_counter() - started)
            except Exception:
                log.exception("a command observer failed")
        return result

    async def _run_step_async(self, step: Step, steps: Steps, key: Hashable) -> Any:
        """One step, awaited. If the caller is cancelled meanwhile, the rest of the command
        (from this step's outcome on) is handed to a background task, which releases the key."""
        loop = asyncio.get_running_loop()
        if isinstance(step, Commit):
            if step.tracking is not None:
                tracked = self._app._tracked_writer
                work = asyncio.to_thread(tracked.run, step.attempt, step.tracking)
                return await self._shielded(work, steps, key)
            writer = self._app._writer
            if not isinstance(writer, GroupCommitWriter):
                return await self._shielded(asyncio.to_thread(writer.run, step.attempt), steps, key)
            inbox = self._inbox
            if inbox is None or inbox.loop is not loop:
                inbox = self._inbox = LoopInbox(loop)
            expected = Expected(loop.create_future())
            writer.submit(step.attempt, partial(inbox.put, expected))
            try:
                return await expected.future
            except asyncio.CancelledError:
                future = expected.future
                if expected.arrived is not None:  # delivered after the cancellation
                    self._finish_abandoned(steps, key, *expected.arrived)
                elif not future.cancelled():  # delivered just before it
                    error = future.exception()
                    outcome = None if error is not None else future.result()
                    self._finish_abandoned(steps, key, outcome, error)
                else:  # still with the writer: finish the command when it answers
                    expected.abandoned = partial(self._finish_abandoned, steps, key)
                    expected.release = partial(self._locks.release, key)
                raise
        if isinstance(step, Pause):
            return await self._shielded(asyncio.sleep(step.seconds), steps, key)
        return await self._shielded(
            asyncio.to_thread(self._app._breaker.trip, step.error),
            steps,
            key,
        )

    async def _shielded(self, work: Any, steps: Steps, key: Hashable) -> Any:
        """Await `work`; if the caller is cancelled, let it finish and the command go on
        without the caller."""
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(partial(self._continue_after, steps, key))
            raise

    def _continue_after(self, steps: Steps, key: Hashable, task: asyncio.Future[Any]) -> None:
        error = task.exception() if not task.cancelled() else asyncio.CancelledError()
        outcome = None if error is not None else task.result()
        self._finish_abandoned(steps, key, outcome, error)

    def _finish_abandoned(
        self, steps: Steps, key: Hashable, outcome: Any, error: BaseException | None
    ) -> None:
        """On the loop: finish a command whose caller was cancelled, then release its key."""
        asyncio.get_running_loop().create_task(self._drive_abandoned(steps, key, outcome, error))

    async def _drive_abandoned(
        self, steps: Steps, key: Hashable, outcome: Any, error: BaseException | None
    ) -> None:
        handed_over = False
        try:
            if error is not None and not isinstance(error, Exception):  # the work was cancelled
                steps.close()
                return
            step = _advance(steps, outcome, error)
            while not isinstance(step, CommandResult):
                try:
                    outcome = await self._run_step_async(step, steps, key)
                except asyncio.CancelledError:
                    handed_over = True  # to yet another background task, which releases
                    raise
                except Exception as failure:
                    step = _advance(steps, error=failure)
                else:
                    step = _advance(steps, outcome)
        except Exception:
            log.exception("a command whose caller was cancelled failed", extra={"key": str(key)})
        finally:
            if not handed_over:
                self._locks.release(key)

    # ----- what a command does --------------------------------------------------------------

    def _plan(self, command: Command) -> Plan:
        try:
            handler = self._handlers[type(command)]
        except KeyError:
            raise TypeError(f"no handler for {type(command).__name__}") from None
        return handler(self._app, command)

    def _steps(
        self, key: Hashable, plan: Plan, origin: Origin, tracking: Tracking | None = None
    ) -> Steps:
        """What a command does, as steps its driver runs (blocking or awaited): each `Commit`
        is answered with the recordings, or with the exception its attempt or commit raised."""
        app, decide = self._app, plan.decide
        breaker = app._breaker
        connection_retried = False
        aggregates: list[Aggregate] = []  # what the latest attempt decided, to evict on failure

        def attempt_once() -> list[Aggregate]:
            # Runs on the group-commit writer's thread, or inline without one. Refused at once
            # while the store is known to be down (commands queued before the breaker opened).
            with breaker.guard():
                aggregates[:] = [a for a in decide(origin.cause(app.clock.now())) if a is not None]
            return aggregates

        for attempt in range(1, MAX_ATTEMPTS + 1):
            if breaker.is_open:
                return _refused_while_down(key)
            aggregates.clear()
            try:
                recordings = yield Commit(attempt_once, tracking)
            except DomainError as error:
                return CommandResult.refused(error)
            except CorruptHistory as error:
                return _corrupt(key, error)
            except IntegrityError:
                app._forget(aggregates)
                log.info("version conflict on %s (attempt %d); retrying", key, attempt)
                yield Pause(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                continue
            except StoreUnavailable:
                app._forget(aggregates)
                return _refused_while_down(key)
            except CONNECTION_ERRORS as error:
                # A dropped connection (server restart or stop, idle timeout). The store is
                # asked at once (`Repair`, through the breaker, whose probe replaces the pool's
                # dead connections): if it answers, the command is retried once from fresh
                # state (if the failed commit did in fact land, the retry is refused as a
                # duplicate: never applied twice); if not, the breaker is open and the command
                # is answered `unavailable`, as every command is until the store answers.
                app._forget(aggregates)
                if not connection_retried:
                    connection_retried = True
                    if (yield Repair(error)):
                        log.info("database connection failed (%s); retrying once", error)
                        continue
                return _unavailable(key, error)
            except PersistenceError as error:
                app._forget(aggregates)
                return _unavailable(key, error)
            return CommandResult.accepted(recordings)
        return CommandResult(CONFLICT, message=f"gave up after {MAX_ATTEMPTS} version conflicts")


def _advance(steps: Steps, outcome: Any = None, error: BaseException | None = None) -> Any:
    """Answer a command's last step with its outcome (or the error it raised): the next step,
    or the command's result once it has one. An error the steps do not handle propagates."""
    try:
        return steps.send(outcome) if error is None else steps.throw(error)
    except StopIteration as done:
        return done.value


class Expected:
    """An awaited command's outcome from the writer: its future, and, if the caller was
    cancelled meanwhile, what to do with the outcome instead (finish the command without the
    caller), or the outcome kept until the cancelled caller says so (`arrived`)."""

    __slots__ = ("future", "abandoned", "release", "arrived")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.abandoned: Callable[[Any, BaseException | None], None] | None = None
        self.release: Callable[[], None] | None = None
        self.arrived: tuple[Any, BaseException | None] | None = None


class LoopInbox:
    """Outcomes from the writer thread for the commands awaited on one event loop. The writer
    settles a whole batch at once; the loop is woken once for all of it (one
    `call_soon_threadsafe`, one write to its self-pipe) rather than once per command."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._outcomes: list[tuple[Expected, Any, BaseException | None]] = []
        self._lock = threading.Lock()

    def put(self, expected: Expected, recordings: Any, error: BaseException | None) -> None:
        """On the writer thread: a command's outcome."""
        with self._lock:
            self._outcomes.append((expected, recordings, error))
            first = len(self._outcomes) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: its callers are gone
                with self._lock:
                    orphans, self._outcomes = self._outcomes, []
                for orphan, _, _ in orphans:  # nothing can finish them: free their keys
                    if orphan.release is not None:
                        orphan.release()

    def _deliver(self) -> None:
        """On the loop: hand every outcome received so far to its awaiting caller."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        for expected, recordings, error in outcomes:
            future = expected.future
            if future.cancelled():  # the caller went away; its command goes on without it
                if expected.abandoned is not None:
                    expected.abandoned(recordings, error)
                else:  # the caller has not heard of its cancellation yet
                    expected.arrived = (recordings, error)
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(recordings)


def _unavailable(key: object, error: Exception) -> CommandResult:
    log.error("event store unavailable: %s", error, extra={"key": str(key)})
    return CommandResult(UNAVAILABLE, message=f"the event store is unavailable: {error}")


def _refused_while_down(key: object) -> CommandResult:
    """The breaker is open: said once by the breaker, not for every command refused."""
    log.debug("event store unavailable; command refused", extra={"key": str(key)})
    return CommandResult(UNAVAILABLE, message="the event store is unavailable; try again shortly")


def _corrupt(key: object, error: CorruptHistory) -> CommandResult:
    """A stream that cannot be replayed: logged with where (no traceback), the command refused."""
    log.error(
        "corrupt history in stream %s at version %s: %s",
        error.stream,
        error.version,
        error.reason,
        extra={"key": str(key)},
    )
    return CommandResult(
        CORRUPT_HISTORY,
        message=f"the stored history of {error.stream} cannot be read at version {error.version}",
        details={"stream": str(error.stream), "version": error.version},
    )
