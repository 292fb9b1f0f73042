"""The tamper-evident chain: a clean store verifies; rows edited, deleted, inserted or reordered
directly in SQLite and PostgreSQL are detected at the right position and named; a cut tail is
detected against an anchor; snapshots are checked against their events."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.chain import (
    Anchor,
    AuditChain,
    AuditKeyError,
    KeyFile,
    Verifier,
    micros,
)
from dianabot.adapters.eventstore.snapshot_check import verify_snapshots
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN_ID, make_settings

HEAVY = 1001
"""A user with more than 20 Player events: snapshotted at version 20."""


def populate(app: Any, clock: ManualClock) -> None:
    updates = iter(range(1, 10_000))
    for user in (HEAVY, 1002, 1003):
        assert app.register_player(user, f"user {user}", Origin.telegram(next(updates), user)).ok
        clock.advance(minutes=1)
    for i in range(14):
        for user in (HEAVY, 1002) if i < 4 else (HEAVY,):
            assert app.react(user, f"-100:{i}", "x", Origin.telegram(next(updates), user)).ok
            clock.advance(minutes=1)
    assert app.grant_points(ADMIN_ID, 1003, 50, "welcome", Origin.admin(ADMIN_ID)).ok
    app.flush_snapshots()


class Tables:
    """Direct access to a store's tables, as someone with database access would have."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            self.kind = "sqlite"
            self.path = parsed.database
            self.events, self.chain, self.pos = "stored_events", "stored_events_chain", "rowid"
            self.snapshots, self.mark = "stored_snapshots", "?"
        else:
            self.kind = "postgres"
            schema = dict(parsed.query)["schema"]
            self.events = f"{schema}.dianabot_events"
            self.chain = f"{schema}.dianabot_events_chain"
            self.snapshots = f"{schema}.dianabot_snapshots"
            self.pos, self.mark = "notification_id", "%s"
            self.conninfo = parsed.set(drivername="postgresql", query={}).render_as_string(False)

    def run(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        statement = statement.format(e=self.events, c=self.chain, p=self.pos, s=self.snapshots)
        statement = statement.replace("?", self.mark)
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as connection:
                return connection.execute(statement, params).fetchall()
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def head(self) -> int:
        return int(self.run("SELECT MAX({p}) FROM {e}")[0][0])

    def state(self, position: int) -> bytes:
        return bytes(self.run("SELECT state FROM {e} WHERE {p} = ?", (position,))[0][0])

    def set_state(self, position: int, state: bytes) -> None:
        self.run("UPDATE {e} SET state = ? WHERE {p} = ?", (state, position))

    def topic(self, position: int) -> str:
        return str(self.run("SELECT topic FROM {e} WHERE {p} = ?", (position,))[0][0])

    def position_of(self, user: int, version: int) -> int:
        stored = player_id(user).hex if self.kind == "sqlite" else player_id(user)
        rows = self.run(
            "SELECT {p} FROM {e} WHERE originator_id = ? AND originator_version = ?",
            (stored, version),
        )
        return int(rows[0][0])

    def move(self, old: int, new: int) -> None:
        self.run("UPDATE {e} SET {p} = ? WHERE {p} = ?", (new, old))

    def shift_after(self, position: int) -> None:
        """Renumber every event after `position` one up (the chain rows stay)."""
        self.run("UPDATE {e} SET {p} = {p} + 1000000 WHERE {p} > ?", (position,))
        self.run("UPDATE {e} SET {p} = {p} - 999999 WHERE {p} > 1000000")

    def insert_forged(self, position: int) -> None:
        state = (
            b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T09:00:00+00:00"},'
            b'"causation":"tg:0:update:1","actor":"tg:user:1003","source":"reaction",'
            b'"amount":999999,"reference":"forged"}'
        )
        stored = player_id(1003).hex if self.kind == "sqlite" else player_id(1003)
        self.run(
            "INSERT INTO {e} ({p}, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            (position, stored, 99, "dianabot.domain.player:Player.PointsAwarded", state),
        )


@pytest.fixture
def store(shared_database_url: str, clock: ManualClock) -> Iterator[tuple[Services, Tables]]:
    with bootstrap(make_settings(shared_database_url), clock=clock) as wired:
        populate(wired.app, clock)
        yield wired, Tables(shared_database_url)


def verify(wired: Services, anchor: Anchor | None = None) -> Any:
    return AuditChain(wired.app).verify(anchor=anchor)


def test_a_clean_store_verifies_on_every_store(services: Services, clock: ManualClock) -> None:
    populate(services.app, clock)
    report = verify(services)
    assert report.ok, report.problem
    assert report.checked == report.end > 40
    assert report.unchained == 0
    assert report.head is not None and report.head.position == report.end


def test_commit_times_follow_the_clock_and_answer_as_of(
    services: Services, clock: ManualClock
) -> None:
    start = clock.now()
    populate(services.app, clock)
    chain = AuditChain(services.app)
    assert chain.last_position_committed_by(start - timedelta(seconds=1)) == 0
    assert chain.last_position_committed_by(start) == 1  # the first registration
    assert chain.last_position_committed_by(start + timedelta(minutes=1, seconds=30)) == 2
    assert chain.last_position_committed_by(clock.now()) == chain.store.event_head()
    links = chain.store.links(1, chain.store.event_head() + 1)
    assert [link.committed_at for link in links] == sorted(link.committed_at for link in links)
    assert links[0].committed_at == micros(start)


SPOTS = ["start", "middle", "end", "before_snapshot", "after_snapshot"]


def spot(tables: Tables, where: str) -> int:
    head = tables.head()
    return {
        "start": 1,
        "middle": head // 2,
        "end": head,
        "before_snapshot": tables.position_of(HEAVY, 10),
        "after_snapshot": tables.position_of(HEAVY, 22),
    }[where]


@pytest.mark.parametrize("where", SPOTS)
@pytest.mark.parametrize("field", ["amount", "actor"])
def test_an_edited_event_is_detected(store: Any, where: str, field: str) -> None:
    wired, tables = store
    position = spot(tables, where)
    if field == "amount":  # the nearest event with an amount
        step = -1 if where == "end" else 1
        while "Points" not in tables.topic(position):
            position += step
        state = tables.state(position)
        edited = state.replace(b'"amount":', b'"amount":99', 1)
    else:
        state = tables.state(position)
        edited = state.replace(b'"actor":"', b'"actor":"admin:7-', 1)
    assert edited != state
    tables.set_state(position, edited)
    report = verify(wired)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (position, "altered")


@pytest.mark.parametrize("where", SPOTS)
def test_a_deleted_event_is_detected(store: Any, where: str) -> None:
    wired, tables = store
    position = spot(tables, where)
    tables.run("DELETE FROM {e} WHERE {p} = ?", (position,))
    report = verify(wired)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (position, "deleted")


@pytest.mark.parametrize("where", ["start", "middle", "before_snapshot", "after_snapshot"])
def test_an_event_deleted_with_its_link_is_detected(store: Any, where: str) -> None:
    wired, tables = store
    position = spot(tables, where)
    tables.run("DELETE FROM {e} WHERE {p} = ?", (position,))
    tables.run("DELETE FROM {c} WHERE position = ?", (position,))
    report = verify(wired)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (position, "deleted")


@pytest.mark.parametrize("where", SPOTS)
def test_a_forged_event_is_detected(store: Any, where: str) -> None:
    wired, tables = store
    if where == "end":
        position = tables.head() + 1  # appended: the +999,999 row
    else:
        position = spot(tables, where)
        tables.shift_after(position - 1)  # make room, as a forger must
    tables.insert_forged(position)
    report = verify(wired)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (position, "inserted")


def test_a_forged_event_with_a_forged_link_is_detected(store: Any) -> None:
    wired, tables = store
    head = tables.head()
    tables.insert_forged(head + 1)
    last = tables.run("SELECT committed_at FROM {c} WHERE position = ?", (head,))[0][0]
    tables.run("INSERT INTO {c} VALUES (?, ?, ?, ?)", (head + 1, head, last, bytes(32)))
    report = verify(wired)
    assert report.problem is not None
    assert report.problem.position == head + 1
    assert report.problem.kind in {"altered", "inserted"}


@pytest.mark.parametrize("where", ["start", "middle", "before_snapshot", "after_snapshot"])
def test_reordered_events_are_detected(store: Any, where: str) -> None:
    wired, tables = store
    first = spot(tables, where)
    second = first + 3
    tables.move(first, -1)
    tables.move(second, first)
    tables.move(-1, second)
    report = verify(wired)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (first, "reordered")


def test_a_cut_tail_is_detected_against_an_anchor(store: Any) -> None:
    wired, tables = store
    chain = AuditChain(wired.app)
    head = chain.head()
    assert head is not None
    anchor = Anchor(head.position, head.digest, head.committed_at)
    assert verify(wired, anchor).ok
    tables.run("DELETE FROM {e} WHERE {p} > ?", (head.position - 3,))
    tables.run("DELETE FROM {c} WHERE position > ?", (head.position - 3,))
    assert verify(wired).ok  # without an anchor a cut tail looks like a shorter history
    report = verify(wired, anchor)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (head.position - 2, "truncated")


def test_a_rewritten_chain_does_not_match_the_anchor(store: Any) -> None:
    wired, tables = store
    head = AuditChain(wired.app).head()
    assert head is not None
    anchor = Anchor(head.position, bytes(32), head.committed_at)
    report = verify(wired, anchor)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (head.position, "altered")


def test_snapshots_match_their_events_until_one_is_edited(store: Any) -> None:
    wired, tables = store
    clean = verify_snapshots(wired.app)
    assert clean.ok and clean.checked >= 1
    row = tables.run("SELECT state FROM {s} ORDER BY originator_version DESC LIMIT 1")[0][0]
    edited = bytes(row).replace(b'"balance":', b'"balance":9', 1)
    assert edited != bytes(row)
    tables.run("UPDATE {s} SET state = ?", (edited,))
    report = verify_snapshots(wired.app)
    assert not report.ok and report.failed >= 1
    assert verify(wired).ok  # the events are intact: only the snapshot pass sees it


def test_an_event_edited_before_a_snapshot_fails_both_passes(store: Any) -> None:
    wired, tables = store
    position = tables.position_of(HEAVY, 10)
    while "PointsAwarded" not in tables.topic(position):
        position += 1
    tables.set_state(position, tables.state(position).replace(b'"amount":', b'"amount":9', 1))
    assert not verify(wired).ok
    assert not verify_snapshots(wired.app).ok


def test_verify_from_a_position_trusts_the_link_before(store: Any) -> None:
    wired, tables = store
    tables.set_state(2, tables.state(2).replace(b'"actor":"', b'"actor":"x', 1))
    assert AuditChain(wired.app).verify(from_position=3).ok
    report = AuditChain(wired.app).verify(from_position=1)
    assert report.problem is not None and report.problem.position == 2


def test_verifying_without_the_key_is_a_clear_error(store: Any, tmp_path: Any) -> None:
    wired, _ = store
    verifier = Verifier(AuditChain(wired.app).store, KeyFile(tmp_path / "nowhere.key"))
    with pytest.raises(AuditKeyError, match="does not exist"):
        verifier.verify()


def test_a_wrong_key_fails_at_the_first_link(store: Any, tmp_path: Any) -> None:
    wired, _ = store
    (tmp_path / "other.key").write_text("ab" * 32)
    report = Verifier(AuditChain(wired.app).store, KeyFile(tmp_path / "other.key")).verify()
    assert report.problem is not None and report.problem.position == 1


def test_a_store_written_before_the_chain_reports_its_unchained_prefix(
    shared_database_url: str, clock: ManualClock
) -> None:
    with bootstrap(make_settings(shared_database_url), clock=clock) as wired:
        populate(wired.app, clock)
        tables = Tables(shared_database_url)
        head = tables.head()
        tables.run("DELETE FROM {c}")  # as a store from before the chain
        report = verify(wired)
        assert report.problem is not None and report.problem.kind == "unchained"
        assert wired.app.register_player(2001, "late", Origin.telegram(9999, 2001)).ok
        report = verify(wired)
        assert report.ok, report.problem
        assert report.unchained == head
        assert report.checked == 1  # the registration (PostgreSQL: past a skipped position)


def test_the_key_is_created_beside_a_sqlite_file_with_mode_0600(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    with bootstrap(make_settings(url)) as wired:
        assert wired.app.register_player(1, "a", Origin.telegram(1, 1)).ok
    key = tmp_path / "events.sqlite3.audit-key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600


def test_a_lost_key_stops_writes_rather_than_fork_the_chain(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    with bootstrap(make_settings(url)) as wired:
        assert wired.app.register_player(1, "a", Origin.telegram(1, 1)).ok
    (tmp_path / "events.sqlite3.audit-key").unlink()
    with bootstrap(make_settings(url)) as wired, pytest.raises(AuditKeyError, match="exist"):
        wired.app.register_player(2, "b", Origin.telegram(2, 2))
    with sqlite3.connect(tmp_path / "events.sqlite3") as connection:
        assert connection.execute("SELECT COUNT(*) FROM stored_events").fetchone() == (1,)
    assert not (tmp_path / "events.sqlite3.audit-key").exists()


def test_forged_rows_under_a_new_uuid_are_detected(store: Any) -> None:
    """A forged stream (a new aggregate id) appended without a link."""
    wired, tables = store
    position = tables.head() + 1
    stored = uuid4().hex if tables.kind == "sqlite" else uuid4()
    tables.run(
        "INSERT INTO {e} ({p}, originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?, ?)",
        (position, stored, 1, "x", b"{}"),
    )
    report = verify(wired)
    assert report.problem is not None and report.problem.kind == "inserted"


# Values of another type than the application writes, as SQL can leave them (SQLite keeps any
# type in any column; `replace(state, ...)` turns the BLOB into TEXT). Each is reported as an
# altered event at its position, never an exception.
WRONG_TYPES = {
    "sqlite": {
        "state as text, edited": 'state = replace(state, \'"actor":"\', \'"actor":"x\')',
        "state NULL": "state = NULL",
        "state a number": "state = 42",
        "topic NULL": "topic = NULL",
        "version as text": "originator_version = 'one'",
        "id NULL": "originator_id = NULL",
        "id not hex": "originator_id = 'not an id'",
    },
    "postgres": {
        "state NULL": "state = NULL",
        "topic NULL": "topic = NULL",
        "state empty": "state = ''::bytea",
    },
}


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        pytest.param(kind, change, marks=[pytest.mark.postgres] if kind == "postgres" else [])
        for kind, cases in WRONG_TYPES.items()
        for change in cases
    ],
)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_field_of_another_type_is_an_altered_event(
    request: pytest.FixtureRequest, tmp_path: Any, kind: str, change: str, where: str
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    clock = ManualClock()
    with bootstrap(make_settings(url), clock=clock) as wired:
        populate(wired.app, clock)
        tables = Tables(url)
        position = spot(tables, where)
        tables.run(f"UPDATE {{e}} SET {WRONG_TYPES[kind][change]} WHERE {{p}} = ?", (position,))
        report = verify(wired)
    assert report.problem is not None
    assert (report.problem.position, report.problem.kind) == (position, "altered")


def test_a_state_rewritten_as_text_with_the_same_bytes_still_verifies(tmp_path: Any) -> None:
    """SQLite: what the link covers is the bytes; the storage class (BLOB or TEXT) is not
    hashed, so a `replace` that changed nothing but the type is no edit."""
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    clock = ManualClock()
    with bootstrap(make_settings(url), clock=clock) as wired:
        populate(wired.app, clock)
        tables = Tables(url)
        tables.run("UPDATE {e} SET state = replace(state, 'actor', 'actor') WHERE {p} = 2")
        assert tables.run("SELECT typeof(state) FROM {e} WHERE {p} = 2") == [("text",)]
        report = verify(wired)
        assert report.ok, report.problem


def _counting(calls: list[str], name: str, function: Any) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return function(*args, **kwargs)

    return counted


@pytest.mark.postgres
def test_postgres_one_round_trip_falls_back_when_its_prediction_or_function_fails(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's one-round-trip write predicts the head and positions and calls a function
    of the store: when another process wrote in between, or the function is missing, it rolls
    back and takes two round trips. The chain holds either way."""
    clock = ManualClock()
    settings = make_settings(postgres_url)
    with (
        bootstrap(settings, clock=clock, projections=False, policies=False) as wired,
        bootstrap(settings, clock=clock, projections=False, policies=False) as other,
    ):
        app, recorder = wired.app, wired.app.recorder
        calls: list[str] = []
        monkeypatch.setattr(recorder, "_predicted", _counting(calls, "one", recorder._predicted))
        monkeypatch.setattr(
            recorder, "_one_round_trip", _counting(calls, "two", recorder._one_round_trip)
        )
        updates = iter(range(1, 1000))

        def react(user: int) -> None:
            assert app.react(
                user, f"-100:{next(updates)}", "x", Origin.telegram(next(updates), user)
            ).ok

        for user in (1, 2):
            assert app.register_player(user, f"u{user}", Origin.telegram(next(updates), user)).ok
        react(1)
        assert calls[-1] == "one"  # predicted, and right: one round trip

        assert other.app.register_player(3, "u3", Origin.telegram(next(updates), 3)).ok
        react(1)  # the head moved under this process's prediction
        assert calls[-2:] == ["one", "two"]
        react(2)
        assert calls[-1] == "one"

        pool = recorder.datastore.pool
        with pool.connection() as session:  # a store from before the function, say
            session.execute(f"DROP FUNCTION {recorder._chained}")
        react(2)
        assert calls[-2:] == ["one", "two"]
        react(1)
        assert calls[-2:] == ["one", "two"]

        report = AuditChain(app).verify()
        assert report.ok, report.problem
        assert report.checked == len(recorder.select_notifications(1, 1000))
