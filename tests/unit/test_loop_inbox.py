"""LoopInbox: the writer's outcomes reach awaiting callers, and the commands of callers that
were cancelled meanwhile are finished (or, with their loop gone, at least free their key)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from dianabot.application.bus import Expected, LoopInbox


def from_writer_thread(inbox: LoopInbox, expected: Expected, outcome: Any) -> None:
    thread = threading.Thread(target=inbox.put, args=(expected, outcome, None))
    thread.start()
    thread.join(timeout=10)


def test_outcomes_of_one_batch_reach_their_callers() -> None:
    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        inbox = LoopInbox(loop)
        first, second = Expected(loop.create_future()), Expected(loop.create_future())
        failure = ValueError("refused")

        def batch() -> None:
            inbox.put(first, ["recording"], None)
            inbox.put(second, None, failure)

        thread = threading.Thread(target=batch)
        thread.start()
        thread.join(timeout=10)
        results = await asyncio.gather(first.future, second.future, return_exceptions=True)
        return [results[0], results[1] is failure]

    assert asyncio.run(scenario()) == [["recording"], True]


def test_a_cancelled_callers_outcome_goes_to_whoever_finishes_its_command() -> None:
    async def scenario() -> tuple[list[Any], Any]:
        loop = asyncio.get_running_loop()
        inbox = LoopInbox(loop)
        finished: list[Any] = []
        abandoned = Expected(loop.create_future())
        abandoned.future.cancel()
        abandoned.abandoned = lambda outcome, error: finished.append(outcome)
        not_yet_told = Expected(loop.create_future())
        not_yet_told.future.cancel()  # cancelled; its caller has not run its handler yet
        from_writer_thread(inbox, abandoned, ["a"])
        from_writer_thread(inbox, not_yet_told, ["b"])
        await asyncio.sleep(0.01)
        return finished, not_yet_told.arrived

    finished, kept = asyncio.run(scenario())
    assert finished == [["a"]]
    assert kept == (["b"], None)


def test_with_its_loop_closed_an_abandoned_command_frees_its_key() -> None:
    loop = asyncio.new_event_loop()
    inbox = LoopInbox(loop)
    released: list[bool] = []
    expected = Expected(loop.create_future())
    expected.future.cancel()
    expected.abandoned = lambda outcome, error: None
    expected.release = lambda: released.append(True)
    loop.close()
    inbox.put(expected, ["recording"], None)
    assert released == [True]
