"""KeyLocks: one holder at a time per key, in arrival order, whether threads or asyncio tasks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from dianabot.application.locks import KeyLocks


def test_a_key_is_held_by_one_task_at_a_time_in_arrival_order() -> None:
    locks = KeyLocks()
    log: list[str] = []

    async def hold(name: str, key: str) -> None:
        await locks.acquire_async(key)
        try:
            log.append(f"{name} in")
            await asyncio.sleep(0.01)
            log.append(f"{name} out")
        finally:
            locks.release(key)

    async def scenario() -> None:
        await asyncio.gather(hold("a", "k"), hold("b", "k"), hold("c", "k"), hold("x", "other"))

    asyncio.run(scenario())
    same_key = [entry for entry in log if not entry.startswith("x")]
    assert same_key == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert log.index("x in") < log.index("a out")  # another key is not held up
    assert len(locks) == 0  # every key forgotten once free


def test_threads_take_a_key_in_arrival_order() -> None:
    locks = KeyLocks()
    order: list[object] = []
    locks.acquire("k")
    threads = []
    for n in range(5):
        thread = threading.Thread(target=lambda n=n: _hold_and_log(locks, "k", n, order))
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=n: _waiting(locks, "k") == n + 1)  # queued before the next starts
    locks.release("k")
    for thread in threads:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3, 4]
    assert len(locks) == 0


def test_a_cancelled_waiter_neither_holds_nor_blocks_the_key() -> None:
    locks = KeyLocks()
    order: list[str] = []

    async def scenario() -> None:
        await locks.acquire_async("k")
        waiter = asyncio.ensure_future(locks.acquire_async("k"))
        after = asyncio.ensure_future(locks.acquire_async("k"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        locks.release("k")  # passes over the cancelled waiter to the next
        await after
        order.append("after got it")
        locks.release("k")

    asyncio.run(scenario())
    assert order == ["after got it"]
    assert len(locks) == 0


def test_a_waiter_cancelled_as_it_is_handed_the_key_passes_it_on() -> None:
    """The holder releases (handing the key to the first waiter) and that waiter is cancelled
    before it runs: it must not keep the key, and the next waiter gets it."""
    locks = KeyLocks()

    async def scenario() -> str:
        await locks.acquire_async("k")
        first = asyncio.ensure_future(locks.acquire_async("k"))
        second = asyncio.ensure_future(locks.acquire_async("k"))
        await asyncio.sleep(0)
        locks.release("k")  # granted to `first`, which has not run yet
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, timeout=5)
        locks.release("k")
        return "second got it"

    assert asyncio.run(scenario()) == "second got it"
    assert len(locks) == 0


def test_threads_and_tasks_of_several_loops_share_one_order() -> None:
    """A thread holds the key; a task of a loop in another thread and then a blocking thread
    queue behind it: they get the key in that order, the task woken from the releasing thread."""
    locks = KeyLocks()
    order: list[object] = []
    locks.acquire("k")

    async def task_holder() -> None:
        await locks.acquire_async("k")
        order.append("task")
        await asyncio.sleep(0.01)
        locks.release("k")

    loop_thread = threading.Thread(target=lambda: asyncio.run(task_holder()))
    loop_thread.start()
    _wait_until(lambda: _waiting(locks, "k") == 1)
    blocking = threading.Thread(target=lambda: _hold_and_log(locks, "k", "thread", order))
    blocking.start()
    _wait_until(lambda: _waiting(locks, "k") == 2)
    order.append("holder")
    locks.release("k")
    loop_thread.join(timeout=10)
    blocking.join(timeout=10)
    assert order == ["holder", "task", "thread"]
    assert len(locks) == 0


def test_many_threads_and_tasks_never_hold_one_key_together() -> None:
    locks = KeyLocks()
    inside: dict[str, int] = {"k0": 0, "k1": 0}
    overlaps: list[str] = []
    guard = threading.Lock()

    def enter(key: str) -> None:
        with guard:
            inside[key] += 1
            if inside[key] > 1:
                overlaps.append(key)

    def leave(key: str) -> None:
        with guard:
            inside[key] -= 1

    def thread_work(n: int) -> None:
        for i in range(200):
            key = f"k{(n + i) % 2}"
            with locks.holding(key):
                enter(key)
                time.sleep(0)
                leave(key)

    async def task_work(n: int) -> None:
        for i in range(200):
            key = f"k{(n + i) % 2}"
            await locks.acquire_async(key)
            try:
                enter(key)
                await asyncio.sleep(0)
                leave(key)
            finally:
                locks.release(key)

    async def tasks() -> None:
        await asyncio.gather(*(task_work(n) for n in range(8)))

    workers = [threading.Thread(target=thread_work, args=(n,)) for n in range(4)]
    workers += [threading.Thread(target=lambda: asyncio.run(tasks())) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert overlaps == []
    assert len(locks) == 0


def _hold_and_log(locks: KeyLocks, key: str, name: object, order: list[object]) -> None:
    with locks.holding(key):
        order.append(name)


def _waiting(locks: KeyLocks, key: str) -> int:
    with locks._lock:
        return len(locks._queues.get(key, ()))


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)
