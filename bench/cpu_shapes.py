"""The write-side load both CPU benchmarks drive (bench/ab_cpu.py, bench/audit.py `cpu`): 32
users reacting `per_user` times, either as asyncio tasks through a group-committing app
(`async`) or in turn from one thread, one transaction per command (`seq`). Imports nothing of
dianabot, so an older checkout's run can load it too (by its path: the benchmarks take their
own folder off sys.path)."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

USERS = range(1, 33)


def measure(
    app: Any,
    react: Callable[[int, int], Awaitable[Any]],
    origin: Callable[[int, int], Any],
    shape: str,
    per_user: int,
) -> dict[str, float]:
    """CPU seconds (user + system, `getrusage`, this process only) and wall seconds of the
    reactions; `react(user, i)` issues one asynchronously, `origin(user, i)` names its update."""

    async def user_loop(user: int) -> None:
        for i in range(per_user):
            assert (await react(user, i)).ok

    async def concurrently() -> None:
        await asyncio.gather(*(user_loop(user) for user in USERS))

    def in_turn() -> None:
        for i in range(per_user):
            for user in USERS:
                assert app.react(user, f"p:{i}", "x", origin(user, i)).ok

    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    asyncio.run(concurrently()) if shape == "async" else in_turn()
    elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"cpu_s": cpu, "seconds": elapsed, "commands": per_user * len(USERS)}
