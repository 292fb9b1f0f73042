"""Long polling that loses no update (`dianabot run`, the demo and the end-to-end tests).

aiogram's own polling confirms an update (moves `offset` past it) as soon as it has started a
task for it, and on SIGTERM cancels what is in flight: an update fetched just before a stop, or
one that met a store that was down, was gone for good. `UpdatePoller` fetches a batch with
`getUpdates`, handles it (one sender's updates in order, different senders' concurrently), and
only then moves the offset:

- past the whole batch when every update in it was recorded;
- otherwise to the first update that could not be recorded (its `Receipt`: the store was
  unavailable; the user has been answered politely). No new update is taken until the store
  answers again (`store_answers`, asked with growing pauses); then the loop fetches from there,
  and Telegram delivers that update and those after it again. The ones already handled are
  skipped (they would be answered twice; recording them again would change nothing, by update
  id). An update that is still not recorded after `max_attempts` deliveries, with the store
  answering, is given up (logged with its id) so that one update cannot stop the bot.
- an update that does not parse (a kind or a shape this aiogram does not read) is logged (a
  warning, with its id) and confirmed with its batch: the other updates of the batch are
  handled, and one update cannot stop the bot (each update of a `getUpdates` answer is parsed
  on its own, `parse_update`; aiogram's would refuse the whole answer, again and again).
- on `stop()` (SIGINT/SIGTERM in `dianabot run`), the fetch in flight is abandoned (what it
  would have returned is not confirmed, so Telegram keeps it), the batch in hand is finished
  (within `stop_timeout`; if not, none of it is confirmed and it all comes again after the
  restart), and the offset is confirmed with one last short `getUpdates`.

The dispatcher's startup and shutdown hooks run around the loop, as with aiogram's polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from dianabot.adapters.telegram.context import CURRENT_RECEIPT, BotMonitor, Receipt
from pydantic import ValidationError

log = logging.getLogger(__name__)

FETCH_BACKOFF = (1.0, 30.0)
"""Pauses (first, longest) after a failed `getUpdates` (the Bot API cannot be reached)."""

STORE_BACKOFF = (0.5, 10.0)
"""Pauses (first, longest) between asking a store that is down whether it answers again."""


class GetRawUpdates(TelegramMethod[list[Any]]):
    """`getUpdates`, its answer left as JSON: each update is parsed on its own
    (`parse_update`), so one that does not parse is not the whole batch's failure."""

    __returning__ = list[Any]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


def parse_update(raw: Any, bot: Bot) -> Update | None:
    """An update as aiogram reads it; None (logged as a warning, no traceback) if it does not
    parse: it is not handled, only confirmed."""
    try:
        return Update.model_validate(raw, context={"bot": bot})
    except (ValidationError, ValueError, TypeError, RecursionError) as error:
        update_id = update_id_of(raw)
        log.warning("update %s does not parse; skipped: %s", update_id, str(error).splitlines()[0])
        return None


def update_id_of(raw: Any) -> int | None:
    """The `update_id` of a raw update, if it has a usable one."""
    update_id = raw.get("update_id") if isinstance(raw, dict) else None
    return update_id if type(update_id) is int else None


@dataclass
class PollerStats:
    batches: int = 0
    handled: int = 0
    skipped: int = 0
    """Updates delivered again after a pause that had been handled already."""
    unrecorded: int = 0
    given_up: int = 0
    unparsed: int = 0
    """Updates that did not parse (skipped and confirmed)."""


def sender_of(update: Update) -> Hashable:
    """Who an update is from (the user; else the chat, for channel posts): one sender's updates
    are handled in the order Telegram gave them."""
    for name in update.model_fields_set - {"update_id"}:
        event = getattr(update, name, None)
        user = getattr(event, "from_user", None) or getattr(event, "user", None)
        if user is not None and isinstance(getattr(user, "id", None), int):
            return ("user", user.id)
        chat = getattr(event, "chat", None)
        if chat is not None and isinstance(getattr(chat, "id", None), int):
            return ("chat", chat.id)
    return ("update", update.update_id)


async def first_of(*waits: Awaitable[Any]) -> None:
    """Until the first of `waits` is done; the others that were started here are cancelled
    (futures handed in are left running)."""
    futures: list[asyncio.Future[Any]] = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for given, future in zip(waits, futures, strict=True):
            if future is not given and not future.done():
                future.cancel()


class InTurn:
    """Handles updates through the dispatcher, each in a task of its own: one sender's in the
    order they were given, different senders' concurrently (at most `concurrency` at a time).
    Each update's `Receipt` says when it is settled and whether it was recorded. Long polling
    and the webhook both hand their updates to one of these."""

    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, *, concurrency: int = 64, sequential: bool = False
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.sequential = sequential
        self.stats = PollerStats()
        self._gate = asyncio.Semaphore(1 if sequential else max(1, concurrency))
        self._tails: dict[Hashable, tuple[asyncio.Future[None], Receipt]] = {}
        self._in_flight: set[asyncio.Future[None]] = set()

    def start(self, update: Update) -> Receipt:
        """Handle `update` after its sender's previous one; its receipt at once."""
        receipt = Receipt(update.update_id)
        sender = "all" if self.sequential else sender_of(update)
        before = self._tails.get(sender)
        task = asyncio.ensure_future(self._in_turn(before, update, receipt))
        self._tails[sender] = (task, receipt)
        self._in_flight.add(task)

        def done(finished: asyncio.Future[None]) -> None:
            self._in_flight.discard(task)
            if self._tails.get(sender, (None, None))[0] is task:
                del self._tails[sender]

        task.add_done_callback(done)
        return receipt

    async def _in_turn(
        self, before: tuple[asyncio.Future[None], Receipt] | None, update: Update, receipt: Receipt
    ) -> None:
        try:
            if before is not None:
                previous, previous_receipt = before
                await first_of(previous, previous_receipt.settled.wait())
                if not previous.done():  # it waits out flood control: so does this one
                    receipt.defer()
                    await asyncio.wait({previous})
                if previous_receipt.unrecorded:  # not out of turn: delivered again after it
                    receipt.unrecorded = True
                    return
            async with self._gate:
                await self._feed(update, receipt)
            if receipt.unrecorded:
                self.stats.unrecorded += 1
                if receipt.deferred:
                    log.error(
                        "update %s met an unavailable store after it was settled (it was "
                        "waiting out flood control); its sender was asked to try again",
                        update.update_id,
                    )
            else:
                self.stats.handled += 1
        finally:
            receipt.settled.set()

    async def _feed(self, update: Update, receipt: Receipt) -> None:
        token = CURRENT_RECEIPT.set(receipt)
        try:
            response: Any = await self.dispatcher.feed_update(
                self.bot, update, receipt=receipt, bots=[self.bot]
            )
            if isinstance(response, TelegramMethod):
                await self.dispatcher.silent_call_request(bot=self.bot, result=response)
        except Exception:
            log.exception("update %s could not be handled; dropped", update.update_id)
        finally:
            CURRENT_RECEIPT.reset(token)

    async def drain(self, timeout: float) -> None:
        """Wait for the updates still in flight (a stop), up to `timeout` seconds."""
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(set(self._in_flight), timeout=timeout)
        if pending:
            log.error("stopping: %d update(s) still in flight after %.0f s", len(pending), timeout)


class UpdatePoller:
    """See the module docstring. `run()` until `stop()`."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        store_answers: Callable[[], bool] | None = None,
        timeout: int = 10,
        limit: int = 100,
        allowed_updates: list[str] | None = None,
        concurrency: int = 64,
        sequential: bool = False,
        stop_timeout: float = 30.0,
        max_attempts: int = 5,
        monitor: BotMonitor | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.store_answers = store_answers or (lambda: True)
        self.timeout = timeout
        self.limit = limit
        self.allowed_updates = (
            dispatcher.resolve_used_update_types() if allowed_updates is None else allowed_updates
        )
        self.turns = InTurn(dispatcher, bot, concurrency=concurrency, sequential=sequential)
        self.stats = self.turns.stats
        self.stop_timeout = stop_timeout
        self.max_attempts = max_attempts
        self.monitor = monitor
        self.offset: int | None = None
        self._batch_end: int | None = None
        """The highest update id of the batch in hand, parsed or not."""
        self._confirmed: int | None = None
        self._handled: set[int] = set()
        self._attempts: dict[int, int] = {}
        self._store_down = False
        self._fetch_pause = FETCH_BACKOFF[0]
        self._stopping = asyncio.Event()

    # ----- control ------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the batch in hand, confirm it, and return from `run` (call on the loop)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        workflow = {"dispatcher": self.dispatcher, "bots": [self.bot]}
        await self.dispatcher.emit_startup(bot=self.bot, **workflow)
        log.info("polling for updates (%s)", ", ".join(self.allowed_updates) or "all kinds")
        try:
            while not self.stopping:
                if self._store_down and not await self._wait_for_store():
                    break
                updates = await self._fetch()
                if updates:
                    await self._finish(updates)
        finally:
            await self.turns.drain(self.stop_timeout)
            await self._confirm()
            await self.dispatcher.emit_shutdown(bot=self.bot, **workflow)
            log.info("polling stopped at offset %s", self.offset)

    # ----- the loop's steps ---------------------------------------------------------------

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or less if stopped; False if stopped."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self.stopping

    async def _wait_for_store(self) -> bool:
        """Until the store answers (True) or the poller is stopped (False)."""
        pause, longest = STORE_BACKOFF
        while True:
            if not await self._sleep(pause):
                return False
            pause = min(longest, pause * 2)
            if await asyncio.to_thread(self.store_answers):
                self._store_down = False
                log.warning("event store answers again; taking updates from %s", self.offset)
                return True

    async def _fetch(self) -> list[Update]:
        """One `getUpdates` (long polling), abandoned if the poller is stopped meanwhile; [] on
        a failure (after a pause)."""
        method = GetRawUpdates(
            offset=self.offset,
            limit=self.limit,
            timeout=self.timeout,
            allowed_updates=self.allowed_updates,
        )
        request_timeout = int((self.bot.session.timeout or 60) + self.timeout)
        fetch = asyncio.ensure_future(self.bot(method, request_timeout=request_timeout))
        await first_of(fetch, self._stopping.wait())
        if not fetch.done():
            fetch.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await fetch
            return []
        try:
            updates = fetch.result()
        except TelegramUnauthorizedError:
            raise
        except Exception as error:
            self._fetch_failed(error)
            await self._sleep(self._fetch_pause)
            return []
        self._fetch_pause = FETCH_BACKOFF[0]
        if self.monitor is not None:
            self.monitor.connected, self.monitor.detail = True, ""
        self._confirmed = self.offset
        parsed = self._parse(updates)
        if updates and not parsed and self._batch_end is None:  # nothing to move the offset by
            self._fetch_failed(ValueError("no update of the answer has an update_id"))
            await self._sleep(self._fetch_pause)
        return parsed

    def _parse(self, raw: list[Any]) -> list[Update]:
        """The batch's updates that parse; past the ones that do not, the offset moves with
        the batch (at once when none of it parses)."""
        updates: list[Update] = []
        ids: list[int] = []
        for item in raw:
            update = parse_update(item, self.bot)
            if update is None:
                self.stats.unparsed += 1
                ids.extend(i for i in [update_id_of(item)] if i is not None)
            else:
                updates.append(update)
                ids.append(update.update_id)
        self._batch_end = max(ids, default=None)
        if not updates and self._batch_end is not None:
            self.offset = self._batch_end + 1
        return updates

    def _fetch_failed(self, error: Exception) -> None:
        log.error(
            "getUpdates failed (%s: %s); again in %.0f s",
            type(error).__name__,
            error,
            self._fetch_pause,
        )
        if self.monitor is not None:
            self.monitor.connected, self.monitor.detail = False, f"getUpdates failed: {error}"
        self._fetch_pause = min(FETCH_BACKOFF[1], self._fetch_pause * 2)

    async def _finish(self, updates: list[Update]) -> None:
        """Start the batch's updates, wait until each is settled, and move the offset (see the
        module docstring); a stop meanwhile waits up to `stop_timeout`."""
        self.stats.batches += 1
        receipts = [self._start(update) for update in updates]
        settled = asyncio.ensure_future(
            asyncio.gather(*(receipt.settled.wait() for receipt in receipts))
        )
        await first_of(settled, self._stopping.wait())
        if not settled.done():
            try:
                await asyncio.wait_for(asyncio.shield(settled), self.stop_timeout)
            except TimeoutError:
                log.error(
                    "stopping: updates %s..%s not finished in %.0f s; they are not confirmed "
                    "and come again after the restart",
                    updates[0].update_id,
                    updates[-1].update_id,
                    self.stop_timeout,
                )
                settled.cancel()
                return
        self._handled.update(r.update_id for r in receipts if not r.unrecorded)
        self._move_offset(updates, [r.update_id for r in receipts if r.unrecorded])

    def _move_offset(self, updates: list[Update], unrecorded: list[int]) -> None:
        again = [u for u in unrecorded if self._attempt(u)]
        if not again:
            self.offset = max(updates[-1].update_id, self._batch_end or 0) + 1
            self._handled.clear()
            self._attempts.clear()
            return
        self.offset = min(again)
        self._handled = {u for u in self._handled if u >= self.offset}
        self._store_down = True
        log.warning(
            "%d update(s) not recorded (the store is unavailable); no new updates until it "
            "answers, then again from %s",
            len(again),
            self.offset,
        )

    def _attempt(self, update_id: int) -> bool:
        """Count a failed delivery; False once the update is given up."""
        attempts = self._attempts[update_id] = self._attempts.get(update_id, 0) + 1
        if attempts < self.max_attempts:
            return True
        self.stats.given_up += 1
        log.error("update %s not recorded after %d deliveries; given up", update_id, attempts)
        return False

    def _start(self, update: Update) -> Receipt:
        if update.update_id in self._handled:  # delivered again after a pause: done already
            self.stats.skipped += 1
            receipt = Receipt(update.update_id)
            receipt.settled.set()
            return receipt
        return self.turns.start(update)

    async def _confirm(self) -> None:
        """Tell the Bot API the updates handled so far are done (a short `getUpdates` with the
        offset; what it returns is not confirmed and comes again)."""
        if self.offset is None or self.offset == self._confirmed:
            return
        method = GetRawUpdates(offset=self.offset, limit=1, timeout=0)
        try:
            await asyncio.wait_for(self.bot(method, request_timeout=5), 6)
            self._confirmed = self.offset
        except Exception as error:
            log.warning("could not confirm updates before %s: %s", self.offset, error)
