"""Logging writes to the stderr of the moment, so a closed redirection never breaks it."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from dianabot.adapters.logs import configure_logging


def test_records_go_to_the_current_stderr_after_the_old_one_closed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    redirected = io.StringIO()
    real = sys.stderr
    try:
        sys.stderr = redirected  # what a CLI test runner does around one command
        configure_logging("INFO")
        logging.getLogger("dianabot.test").info("during")
        sys.stderr = real
        redirected.close()
        logging.getLogger("dianabot.test").info("after")  # raised "I/O on closed file" before
    finally:
        sys.stderr = real
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert "after" in capsys.readouterr().err
