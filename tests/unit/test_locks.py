"""AsyncKeyLocks: one asyncio task at a time per key, in arrival order."""

from __future__ import annotations

import asyncio
import threading

from dianabot.application.locks import AsyncKeyLocks


def test_a_key_is_held_by_one_task_at_a_time_in_arrival_order() -> None:
    locks = AsyncKeyLocks()
    log: list[str] = []

    async def hold(name: str, key: str) -> None:
        await locks.acquire(key)
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
    assert not locks._last[1]  # every key forgotten once free


def test_a_cancelled_waiter_neither_holds_nor_blocks_the_key() -> None:
    locks = AsyncKeyLocks()
    order: list[str] = []

    async def scenario() -> None:
        await locks.acquire("k")
        waiter = asyncio.ensure_future(locks.acquire("k"))
        after = asyncio.ensure_future(locks.acquire("k"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        locks.release("k")  # passes over the cancelled waiter to the next
        await after
        order.append("after got it")
        locks.release("k")

    asyncio.run(scenario())
    assert order == ["after got it"]


def test_event_loops_in_other_threads_have_their_own_keys() -> None:
    locks = AsyncKeyLocks()
    errors: list[BaseException] = []

    async def many() -> None:
        for _ in range(200):
            await locks.acquire("k")
            await asyncio.sleep(0)
            locks.release("k")

    def run() -> None:
        try:
            asyncio.run(many())
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
