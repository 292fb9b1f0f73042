"""The application's commands for asyncio callers: the Telegram bot's handlers are coroutines.

`await AsyncCommands(app).react(user, post, emoji, origin)` does what `app.react(...)` does, with
the same result, without blocking the event loop: the use case method is asked for its plan
(`application.plans`), and the plan's steps are awaited. With group commit, a command's attempt
goes to the writer thread and its outcome comes back to the loop as a future; so many users'
commands in flight are tasks of one loop, not one thread each. That is how the bot serves
concurrent users, and it is cheaper: 32 threads, each woken for every command, spent about half
the process's CPU handing the GIL around (see docs/performance.md).

One user's commands still run one at a time, in order (a per-key asyncio lock). Ordering holds
among asyncio callers of one loop; between them and blocking callers of the same user, the
version check does it (a stale decision conflicts and is retried). A cancelled caller does not
cancel its command: it is written (or refused) all the same, and the result is dropped.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from dianabot.application.app import CoreApplication
from dianabot.application.plans import PlannedCommand, planning
from dianabot.application.results import CommandResult


class AsyncCommands:
    """Awaitable versions of every single-command use case of `app` (those that return a
    `CommandResult`); reads and multi-command operations stay on `app`."""

    def __init__(self, app: CoreApplication) -> None:
        self.app = app
        self._commands = frozenset(
            name
            for name, member in inspect.getmembers(type(app), inspect.isfunction)
            if not name.startswith("_")
            and not inspect.iscoroutinefunction(member)
            and inspect.signature(member).return_annotation in ("CommandResult", CommandResult)
        )

    @property
    def commands(self) -> frozenset[str]:
        return self._commands

    def __getattr__(self, name: str) -> Callable[..., Awaitable[CommandResult]]:
        if name not in self._commands:
            raise AttributeError(f"{name!r} is not a command of {type(self.app).__name__}")
        method = getattr(self.app, name)

        async def command(*args: Any, **kwargs: Any) -> CommandResult:
            return await self.run(method, *args, **kwargs)

        command.__name__ = command.__qualname__ = name
        command.__doc__ = method.__doc__
        self.__dict__[name] = command  # made once: later lookups do not come here
        return command

    async def run(self, method: Callable[..., CommandResult], *args: Any, **kwargs: Any) -> Any:
        """Run one use case method of the application as a command awaited on this loop."""
        token = planning.set(True)
        try:
            answer = method(*args, **kwargs)
        except PlannedCommand as planned:
            plan = planned.plan
        else:  # answered without a command (bad input, nothing to do)
            return answer
        finally:
            planning.reset(token)
        return await self.app.run_plan_async(plan)
