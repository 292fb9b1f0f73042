"""Background snapshots: written in order of arrival, flushed on demand, never lost on close,
and a failing write is logged without stopping later ones."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from dianabot.application.snapshotting import BackgroundSnapshots, InlineSnapshots


def test_flush_waits_for_what_was_queued_and_close_writes_the_rest() -> None:
    written: list[Any] = []
    gate = threading.Event()

    def put(snapshots: Sequence[Any]) -> None:
        gate.wait(timeout=10)
        written.extend(snapshots)

    sink = BackgroundSnapshots(put)
    sink.add(["a"])
    assert not sink.flush(timeout=0.05)  # the write is held up
    sink.add(["b", "c"])
    gate.set()
    assert sink.flush(timeout=10)
    assert written == ["a", "b", "c"]
    gate.clear()
    sink.add(["d"])
    gate.set()
    sink.close()
    assert written == ["a", "b", "c", "d"]
    sink.add(["e"])  # after close: written at once rather than lost
    assert written[-1] == "e"


def test_a_failing_write_is_logged_and_later_ones_still_happen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    written: list[Any] = []

    def put(snapshots: Sequence[Any]) -> None:
        if "bad" in snapshots:
            raise OSError("disk full")
        written.extend(snapshots)

    for sink in (BackgroundSnapshots(put), InlineSnapshots(put)):
        with caplog.at_level(logging.ERROR):
            sink.add(["bad"])
            assert sink.flush(timeout=10)
            sink.add(["good"])
            assert sink.flush(timeout=10)
        sink.close()
        assert "snapshot failed after commit" in caplog.text
        caplog.clear()
    assert written == ["good", "good"]
