"""`dianabot workers`: the projectors, the policies and the time-driven jobs, until a signal."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import console, fail, services
from dianabot.adapters.workers import Workers


def workers(
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Port of /healthz and /metrics (overrides DIANABOT_WORKERS_PORT; 0: a free one).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the read models' projectors, the policies and the time-driven jobs (VIP expiry,
    snapshot pruning) until SIGINT or SIGTERM, serving /healthz and /metrics on a local port.

    When several processes run it, one holds the workers and the others stand by.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with services() as wired:
        settings = wired.settings
        if port is not None:
            settings = settings.model_copy(update={"workers_port": port})
        runner = Workers(wired, settings)
        try:
            runner.start()
        except OSError as error:
            runner.stop()
            fail(
                exits.USAGE,
                "cannot serve",
                f"{settings.workers_host}:{settings.workers_port} (DIANABOT_WORKERS_PORT): "
                f"{error.strerror or error}",
            )
        console.print(
            f"workers: {runner.role}; /healthz and /metrics on "
            f"http://{settings.workers_host}:{runner.port}; Ctrl-C or SIGTERM to stop",
            highlight=False,
            soft_wrap=True,
        )
        while not stop.wait(0.5):
            pass
        clean = runner.stop()
        console.print(
            "workers: stopped" if clean else "workers: stopped (a batch in flight was abandoned)",
            highlight=False,
        )
