"""Per-key ordering inside one process: one key's holders one at a time, in arrival order,
whether they are threads or asyncio tasks (of any event loop).

One structure serves both, so a user's commands keep their order whatever mix of blocking
callers and coroutines issues them, and a group-commit batch never holds two changes to one
user. A free key costs a dict lookup under a short lock; a busy key queues the caller: a
thread on a lock of its own that the holder's release opens, a task on a future of its own
loop that the release resolves (directly on that loop's thread, else with
`call_soon_threadsafe`). Keys are forgotten when free.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Hashable, Iterator
from contextlib import contextmanager


class _ThreadWaiter:
    """A blocked thread: its lock is taken now and released when the key is handed to it."""

    __slots__ = ("_turn",)

    def __init__(self) -> None:
        self._turn = threading.Lock()
        self._turn.acquire()

    def wait(self) -> None:
        self._turn.acquire()

    def grant(self) -> bool:
        self._turn.release()
        return True


class _TaskWaiter:
    """A waiting task. `granted` (read and written under the locks' lock) says whether the key
    was handed to it, so that a task cancelled just then passes the key on instead of losing it."""

    __slots__ = ("loop", "turn", "granted")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.turn: asyncio.Future[None] = loop.create_future()
        self.granted = False

    def grant(self) -> bool:
        """False if its loop is closed (the task is gone): the key goes to the next waiter."""
        self.granted = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            _wake(self.turn)
            return True
        try:
            self.loop.call_soon_threadsafe(_wake, self.turn)
        except RuntimeError:
            return False
        return True


def _wake(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


class KeyLocks:
    """FIFO locks by key for threads (`holding`, `acquire`) and tasks (`acquire_async`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[Hashable, deque[_ThreadWaiter | _TaskWaiter]] = {}

    def acquire(self, key: Hashable) -> None:
        """Block the calling thread until it holds `key`. (Never from an event loop's thread
        while a task of that loop may hold the key: the loop could not run to release it.)"""
        with self._lock:
            waiting = self._queues.get(key)
            if waiting is None:
                self._queues[key] = deque()
                return
            waiter = _ThreadWaiter()
            waiting.append(waiter)
        waiter.wait()

    async def acquire_async(self, key: Hashable) -> None:
        """Wait, without blocking the loop, until this task holds `key`. If the task is
        cancelled while waiting it neither holds the key nor keeps others from it."""
        with self._lock:
            waiting = self._queues.get(key)
            if waiting is None:
                self._queues[key] = deque()
                return
            waiter = _TaskWaiter(asyncio.get_running_loop())
            waiting.append(waiter)
        try:
            await waiter.turn
        except BaseException:
            with self._lock:
                holding = waiter.granted
                if not holding:
                    waiting.remove(waiter)
            if holding:  # handed the key just as it was cancelled: pass it on
                self.release(key)
            raise

    def release(self, key: Hashable) -> None:
        """Hand `key` to its next waiter, or free it."""
        with self._lock:
            waiting = self._queues[key]
            while waiting:
                if waiting.popleft().grant():
                    return
            del self._queues[key]

    @contextmanager
    def holding(self, key: Hashable) -> Iterator[None]:
        self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    def __len__(self) -> int:
        """Keys held now."""
        with self._lock:
            return len(self._queues)
