"""Per-key ordering inside one process: one user's commands run one at a time, users in parallel."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class StripedLocks:
    """A fixed set of locks picked by hash: bounded memory, rare false sharing between users."""

    def __init__(self, stripes: int = 1024) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    @contextmanager
    def holding(self, key: object) -> Iterator[None]:
        lock = self._locks[hash(key) % len(self._locks)]
        with lock:
            yield


class AsyncKeyLocks:
    """Per-key FIFO locks for asyncio tasks: taking a free key costs a dict lookup (no lock
    object, no await); a busy key queues the task on a future that the holder's release
    resolves, in arrival order. Keys are forgotten when free. Each event loop has its own keys
    (a future belongs to one loop); the last loop's are at hand, others in a weak mapping."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[object, deque[asyncio.Future[None]]]
        ] = weakref.WeakKeyDictionary()
        self._last: tuple[object, dict[object, deque[asyncio.Future[None]]]] = (None, {})

    def _keys(self, loop: asyncio.AbstractEventLoop) -> dict[object, deque[asyncio.Future[None]]]:
        last_loop, keys = self._last  # one read: safe if loops in other threads swap it
        if last_loop is loop:
            return keys
        keys = self._by_loop.setdefault(loop, {})
        self._last = (loop, keys)
        return keys

    async def acquire(self, key: object) -> None:
        loop = asyncio.get_running_loop()
        keys = self._keys(loop)
        waiting = keys.get(key)
        if waiting is None:
            keys[key] = deque()
            return
        turn = loop.create_future()
        waiting.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():  # given the key just as it was cancelled
                self.release(key)
            else:
                waiting.remove(turn)
            raise

    def release(self, key: object) -> None:
        keys = self._keys(asyncio.get_running_loop())
        waiting = keys[key]
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the key passes to that task
                return
        del keys[key]
