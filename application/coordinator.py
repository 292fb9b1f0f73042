"""The coordinator: one facade over the command bus and the subscriptions, for the bot and the CLI.

What the old bot's "central coordinator" promised, on the event store:

- `execute(action)` runs one user action (a reaction, VIP story access, a paid decision, group
  participation, the daily check-in, a fragment completion, a clue unlock) as the command it
  stands for, on the one command bus (`application.bus`: there is no second engine), and returns
  a typed `ActionResult`: ok, or the bus's typed refusal (`already_reacted`, `vip_required`,
  `insufficient_points`, `invalid_choice`, `cooldown`, `already_checked_in`, `clue_required`,
  `duplicate`, `unavailable`, ...). `execute_sync` is the blocking form (CLI, jobs).
- `execute_many(actions)` runs different users' actions concurrently (one asyncio task per
  user, over `bus.handle_async`, so they share group-commit batches) while one user's actions
  run one after another in the order given; results come back in input order.
- **Unit of work.** A change to several aggregates is decided by one handler and saved by one
  call of the library's save of several aggregates: one transaction (`EventWriter.record`), all
  or nothing. A paid story choice (the player's `PointsSpent` with the progress's
  `ChoiceMade`), a VIP token redeemed (`VipTokenRedeemed` with the player's `VipGranted`),
  badges earned together (`AwardEarnedBadges`) are each one command and one transaction. The
  coordinator adds no transaction of its own around them: there is nothing to wrap.
- `initialize()` starts the subscriptions (the projectors' and the policies' live runners,
  through the `SubscriberGroup` ports the composition root hands in) and reports where each
  subscriber stands.
- `health()`: the overall status (ok / degraded / failing), each module's (the event store:
  reachable, its latency; each projection and policy: position, lag, state, last error, parked
  events; Telegram when the bot runs), the integrity metrics of the last reconciliation (from
  `IncidentLog`) and concrete recommendations. The reports and the rules that judge them are
  in `application.health`.
- `status()`: a compact summary; `check_consistency(user)`: the per-user reconciliation of the
  read side, through `ConsistencyChecker`.

The application layer imports neither the read side nor the adapters: what the coordinator
needs of them are ports (`SubscriberGroup`, `StoreProbe`, `TelegramMonitor`, `Census` in
`application.health`; `IncidentLog`, `ConsistencyChecker` in `application.ports`);
`adapters/coordination.py` adapts the projections and policies to them and
`adapters/bootstrap.py` builds the coordinator (`Services.coordinator`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, ClassVar, Protocol

from dianabot.application.clock import Clock, SystemClock
from dianabot.application.commands import (
    DEFAULT_STORY,
    CheckIn,
    Command,
    CountMessage,
    MakeChoice,
    ReactToPost,
)
from dianabot.application.health import (
    DEGRADED,
    FAILING,
    NOT_RUNNING,
    OK,
    UNKNOWN,
    Census,
    HealthReport,
    HealthRules,
    IntegrityMetrics,
    StatusReport,
    StoreHealth,
    StoreProbe,
    SubscriberGroup,
    SubscriberHealth,
    SubscriberState,
    SubscriptionReport,
    TelegramHealth,
    TelegramMonitor,
    describe,
    worst,
)
from dianabot.application.ports import ConsistencyChecker, ConsistencyOutcome, IncidentLog
from dianabot.application.results import CommandResult, Origin, RecordedEvent

log = logging.getLogger(__name__)
ERROR = "error"
"""The outcome `execute_many` reports for an action whose command raised (a bug: the bus
turns every refusal and store failure into a result); logged with its traceback."""

DEFAULT_CONCURRENCY = 64
"""Commands `execute_many` keeps in flight at once (each user's still one at a time)."""


# ----- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """A user action: who (`telegram_id`), why (`origin`: the Telegram update, a job), and the
    command it stands for. Frozen: it may be handed to another task or thread."""

    kind: ClassVar[str] = "action"

    telegram_id: int
    origin: Origin

    def command(self) -> Command:
        raise NotImplementedError

    @property
    def user(self) -> Hashable:
        """Whose actions must stay in order (`execute_many` runs one user's in sequence)."""
        return self.telegram_id


@dataclass(frozen=True, slots=True, kw_only=True)
class React(Action):
    """A reaction to a channel post (refused `already_reacted` the second time)."""

    kind: ClassVar[str] = "reaction"

    post: str
    emoji: str

    def command(self) -> Command:
        return ReactToPost(self.telegram_id, self.post, self.emoji)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipateInGroup(Action):
    """A message in the group (counted; `cooldown` between rewarded messages)."""

    kind: ClassVar[str] = "group_participation"

    message: str

    def command(self) -> Command:
        return CountMessage(self.telegram_id, self.message)


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyCheckIn(Action):
    """The daily check-in (`already_checked_in` within the day; streak bonuses)."""

    kind: ClassVar[str] = "daily_checkin"

    def command(self) -> Command:
        return CheckIn(self.telegram_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryAction(Action):
    """A choice taken in a story: the story actions differ in what the player meant and what
    the caller expects back, not in the command (`MakeChoice`), which checks every rule."""

    kind: ClassVar[str] = "story_choice"

    choice_id: str
    slug: str = DEFAULT_STORY

    def command(self) -> Command:
        return MakeChoice(self.telegram_id, self.choice_id, self.slug)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessVipStory(StoryAction):
    """Enter VIP content (a VIP fragment, or a VIP-only choice): `vip_required` for a free
    player, with the gate hit recorded for the conversion funnel and its policy."""

    kind: ClassVar[str] = "vip_story_access"


@dataclass(frozen=True, slots=True, kw_only=True)
class PaidDecision(StoryAction):
    """A choice that costs besitos (paid once; `insufficient_points` without the balance): the
    payment and the move are saved together."""

    kind: ClassVar[str] = "paid_decision"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteFragment(StoryAction):
    """Leave the current fragment by one of its choices: the next fragment's reward and any
    chapter completed come with it."""

    kind: ClassVar[str] = "fragment_completion"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlockClue(StoryAction):
    """Take the choice that needs (`clue_required` without it) or leads to a clue."""

    kind: ClassVar[str] = "clue_unlock"


@dataclass(frozen=True, slots=True)
class Issue:
    """Any command of the bus with its origin, run like an action (a VIP token redeemed, a
    registration, an admin's grant)."""

    kind: ClassVar[str] = "command"

    wrapped: Command
    origin: Origin

    def command(self) -> Command:
        return self.wrapped

    @property
    def user(self) -> Hashable:
        ids = self.wrapped.telegram_ids()
        return ids[0] if ids else self.wrapped.key


Executable = Action | Issue


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action came to: ok, or a typed failure (the command's outcome code)."""

    action: Executable
    result: CommandResult

    @property
    def kind(self) -> str:
        return self.action.kind

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def outcome(self) -> str:
        """ "ok", or the failure: already_reacted, vip_required, insufficient_points, ..."""
        return self.result.outcome

    @property
    def failure(self) -> str | None:
        return None if self.result.ok else self.result.outcome

    @property
    def message(self) -> str:
        return self.result.message

    @property
    def retry_after(self) -> timedelta | None:
        return self.result.retry_after

    @property
    def details(self) -> Mapping[str, Any]:
        return self.result.details

    @property
    def events(self) -> tuple[RecordedEvent, ...]:
        return self.result.events

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "outcome": self.outcome,
            "message": self.message,
            "events": [e.name for e in self.events],
            "details": dict(self.details),
        }


# ----- ports ----------------------------------------------------------------------------------


class CommandBusPort(Protocol):
    """The command bus (`application.bus.CommandBus`)."""

    def handle(self, command: Command, origin: Origin) -> CommandResult: ...

    async def handle_async(self, command: Command, origin: Origin) -> CommandResult: ...


# ----- the coordinator ------------------------------------------------------------------------


class Coordinator:
    """The facade (see the module docstring). Built by the composition root with the bus and
    the ports; everything optional is reported as unknown or not running when absent."""

    def __init__(
        self,
        bus: CommandBusPort,
        *,
        store: StoreProbe,
        subscribers: Iterable[SubscriberGroup] = (),
        incidents: IncidentLog | None = None,
        consistency: ConsistencyChecker | None = None,
        telegram: TelegramMonitor | None = None,
        census: Census | None = None,
        clock: Clock | None = None,
        rules: HealthRules | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.bus = bus
        self.store = store
        self.subscribers = tuple(subscribers)
        self.incidents = incidents
        self.consistency = consistency
        self.telegram = telegram
        self.census = census
        self.clock: Clock = clock or SystemClock()
        self.rules = rules or HealthRules()
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency

    def attach_telegram(self, monitor: TelegramMonitor | None) -> None:
        """The bot reports its connection here once it runs (None when it stops)."""
        self.telegram = monitor

    # ----- actions ------------------------------------------------------------------------

    async def execute(self, action: Executable) -> ActionResult:
        """Run one action's command on the bus (awaited) and return its typed result."""
        result = await self.bus.handle_async(action.command(), action.origin)
        return ActionResult(action, result)

    def execute_sync(self, action: Executable) -> ActionResult:
        """`execute`, blocking the calling thread (not from an event loop's thread)."""
        return ActionResult(action, self.bus.handle(action.command(), action.origin))

    async def execute_many(self, actions: Iterable[Executable]) -> list[ActionResult]:
        """Run the actions: each user's in the order given, different users' concurrently (at
        most `concurrency` commands in flight). Results in input order. An action whose command
        raised is reported with the outcome `error` and does not stop the others."""
        ordered = list(actions)
        results: list[ActionResult | None] = [None] * len(ordered)
        queues: dict[Hashable, list[int]] = {}
        for index, action in enumerate(ordered):
            queues.setdefault(action.user, []).append(index)
        gate = asyncio.Semaphore(self.concurrency)

        async def run_user(indices: list[int]) -> None:
            for index in indices:
                action = ordered[index]
                async with gate:
                    try:
                        results[index] = await self.execute(action)
                    except Exception as error:
                        log.exception("action %s of user %s raised", action.kind, action.user)
                        failed = CommandResult(ERROR, message=f"{type(error).__name__}: {error}")
                        results[index] = ActionResult(action, failed)

        async with asyncio.TaskGroup() as group:
            for indices in queues.values():
                group.create_task(run_user(indices))
        return [r for r in results if r is not None]

    def execute_many_sync(self, actions: Iterable[Executable]) -> list[ActionResult]:
        """`execute_many` from blocking code (runs its own event loop)."""
        return asyncio.run(self.execute_many(actions))

    # ----- subscriptions ------------------------------------------------------------------

    def initialize(self) -> tuple[SubscriptionReport, ...]:
        """Start every subscription (the projectors' and the policies' live runners; a no-op
        for one already running) and report where each subscriber stands."""
        for group in self.subscribers:
            group.start()
            log.info("started the %s subscriptions", group.kind)
        return self.subscriptions()

    def subscriptions(self) -> tuple[SubscriptionReport, ...]:
        return tuple(
            SubscriptionReport(group.kind, s.name, s.position, s.head, s.state, group.running)
            for group in self.subscribers
            for s in group.standings()
        )

    # ----- health and status --------------------------------------------------------------

    def health(self) -> HealthReport:
        """Every module's health, the overall status, and what to do (see `HealthRules`)."""
        errors: dict[str, str] = {}
        store = self._probe_store()
        if not store.reachable:
            return self.rules.report(self.clock.now(), store, errors={"event_store": store.error})
        projections: list[SubscriberHealth] = []
        policies: list[SubscriberHealth] = []
        parked = self._parked_counts(errors)
        for group in self.subscribers:
            target = policies if group.kind == "policy" else projections
            try:
                standings = group.standings()
            except Exception as error:
                errors[group.kind] = describe(error)
                continue
            target.extend(self._subscriber_health(group, s, parked) for s in standings)
        return self.rules.report(
            self.clock.now(),
            store,
            projections,
            policies,
            self._telegram(errors),
            self._integrity(parked, errors),
            errors,
        )

    def status(self) -> StatusReport:
        """The head of the log, cheap counts, and each subscriber's position."""
        errors: dict[str, str] = {}
        store = self._probe_store()
        if store.error is not None:
            errors["event_store"] = store.error
        counts: dict[str, int] = {}
        subscriptions: list[SubscriptionReport] = []
        if store.reachable:
            if self.census is not None:
                try:
                    counts.update(self.census.counts())
                except Exception as error:
                    errors["counts"] = describe(error)
            for group in self.subscribers:
                try:
                    subscriptions.extend(
                        SubscriptionReport(
                            group.kind, s.name, s.position, s.head, s.state, group.running
                        )
                        for s in group.standings()
                    )
                except Exception as error:
                    errors[group.kind] = describe(error)
        return StatusReport(self.clock.now(), store.head, counts, tuple(subscriptions), errors)

    def check_consistency(self, telegram_id: int) -> ConsistencyOutcome:
        """One user's read models against a replay of their history (reads only)."""
        if self.consistency is None:
            raise LookupError("no consistency checker is configured (no read side)")
        return self.consistency.check(telegram_id)

    # ----- helpers ------------------------------------------------------------------------

    def _probe_store(self) -> StoreHealth:
        started = time.perf_counter()
        try:
            head = self.store.head()
        except Exception as error:
            return StoreHealth(False, None, None, describe(error), FAILING)
        latency = (time.perf_counter() - started) * 1000
        return StoreHealth(True, latency, head)

    def _parked_counts(self, errors: dict[str, str]) -> dict[str, int] | None:
        if self.incidents is None:
            return None
        try:
            return dict(self.incidents.parked_counts())
        except Exception as error:
            errors["incidents"] = describe(error)
            return None

    def _subscriber_health(
        self, group: SubscriberGroup, s: SubscriberState, parked: dict[str, int] | None
    ) -> SubscriberHealth:
        held = s.parked if parked is None else parked.get(s.name, 0)
        health = SubscriberHealth(
            kind=group.kind,
            name=s.name,
            status=OK,
            position=s.position,
            head=s.head,
            lag=s.lag,
            state=s.state,
            last_error=s.last_error,
            failed_at=s.failed_at,
            parked=held,
            running=group.running,
        )
        judged = (
            self.rules.policy(health) if group.kind == "policy" else self.rules.projection(health)
        )
        return replace(health, status=worst(judged))

    def _integrity(self, parked: dict[str, int] | None, errors: dict[str, str]) -> IntegrityMetrics:
        if self.incidents is None:
            return IntegrityMetrics(available=False)
        total = None if parked is None else sum(parked.values())
        try:
            last = self.incidents.last_reconciliation()
        except Exception as error:
            errors["integrity"] = describe(error)
            return IntegrityMetrics(available=False, parked_events=total)
        if last is None:
            return IntegrityMetrics(available=True, parked_events=total)
        checks = last.get("checks") or {}
        return IntegrityMetrics(
            available=True,
            reconciled_at=None if last.get("at") is None else str(last.get("at")),
            position=last.get("position"),
            consistent=last.get("consistent"),
            differences=last.get("differences"),
            checks={str(k): int(v) for k, v in dict(checks).items()},
            parked_events=total,
        )

    def _telegram(self, errors: dict[str, str]) -> TelegramHealth:
        if self.telegram is None:
            return TelegramHealth(NOT_RUNNING, False, False)
        try:
            seen = self.telegram.telegram_status()
        except Exception as error:
            errors["telegram"] = describe(error)
            return TelegramHealth(UNKNOWN, True, False, describe(error))
        if not seen.running:
            return TelegramHealth(NOT_RUNNING, False, False, seen.detail, seen.last_update_at)
        status = OK if seen.connected else DEGRADED
        return TelegramHealth(status, True, seen.connected, seen.detail, seen.last_update_at)
