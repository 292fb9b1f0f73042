"""On PostgreSQL, a subscriber's position written alone (a policy past events that needed
nothing) is one INSERT: it neither waits for the events table's lock, which orders events'
positions and so holds up every writer, nor NOTIFYs the readers, who would wake for nothing."""

from __future__ import annotations

import threading
import time

import psycopg
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import RegisterPlayer
from dianabot.application.results import Origin
from psycopg import sql

from tests.conftest import POSTGRES_URL, make_settings


def test_a_position_alone_takes_no_table_lock_and_wakes_no_reader(
    postgres_url: str, clock: ManualClock
) -> None:
    with bootstrap(make_settings(postgres_url), clock=clock, projections=False) as services:
        app = services.app
        assert app.bus.handle(RegisterPlayer(5, "Ana"), Origin.telegram(1, 5)).ok
        schema = services.database.schema
        waker = event_log(app).waker()
        try:
            deadline = time.monotonic() + 10
            while not getattr(waker, "healthy", True):
                assert time.monotonic() < deadline, "the waker never started listening"
                time.sleep(0.02)
            waker.wait(0.05)  # the wake-up of "listening now"
            with psycopg.connect(POSTGRES_URL, autocommit=True) as holder:
                holder.execute("BEGIN")
                holder.execute(
                    sql.SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(
                        sql.Identifier(schema), sql.Identifier(app.recorder.events_table_name)
                    )
                )
                moved: list[bool] = []
                writer = threading.Thread(
                    target=lambda: moved.append(app.advance_subscriber("policy:test", 1))
                )
                writer.start()
                writer.join(3.0)
                waited = not moved
                holder.execute("ROLLBACK")
            writer.join(10)
            assert not waited, "the position waited for the events table's lock"
            assert moved == [True]
            assert app.subscriber_position("policy:test") == 1
            started = time.monotonic()
            waker.wait(1.0)
            assert time.monotonic() - started >= 0.9, "a position alone woke the readers"
            assert not app.advance_subscriber("policy:test", 1)  # already there
        finally:
            waker.close()


def test_positions_are_read_together_as_each_alone(database_url: str, clock: ManualClock) -> None:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as services:
        app = services.app
        assert app.bus.handle(RegisterPlayer(5, "Ana"), Origin.telegram(1, 5)).ok
        assert app.advance_subscriber("policy:a", 1)
        assert app.advance_subscriber("policy:b", 1)
        assert app.advance_subscriber("policy:b", 2)
        names = ["policy:a", "policy:b", "policy:never"]
        together = app.subscriber_positions(names)
        assert together == {name: app.subscriber_position(name) for name in names}
        assert together == {"policy:a": 1, "policy:b": 2, "policy:never": 0}


def test_positions_moved_together_move_each_only_forward(
    database_url: str, clock: ManualClock
) -> None:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as services:
        app = services.app
        assert app.bus.handle(RegisterPlayer(5, "Ana"), Origin.telegram(1, 5)).ok
        assert app.advance_subscriber("policy:ahead", 3)
        assert app.advance_subscriber("policy:level", 2)
        moved = app.advance_subscribers({"policy:ahead": 2, "policy:level": 2, "policy:new": 2})
        assert moved == {"policy:new"}
        moved = app.advance_subscribers({"policy:ahead": 4, "policy:level": 4, "policy:new": 3})
        assert moved == {"policy:ahead", "policy:level", "policy:new"}
        names = ["policy:ahead", "policy:level", "policy:new"]
        assert app.subscriber_positions(names) == {
            "policy:ahead": 4,
            "policy:level": 4,
            "policy:new": 3,
        }
