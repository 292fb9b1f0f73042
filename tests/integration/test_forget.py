"""Forgetting a user: personal data encrypted per user, erased by destroying the key, history
never edited (docs/privacy.md). On every store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.eventstore.personal import delete_snapshots
from dianabot.adapters.eventstore.snapshots import snapshot_versions
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.ids import player_id
from dianabot.domain.personal import ERASED, PersonalText, subject_of
from dianabot.projections.history import EventHistory
from eventsourcing.persistence import StoredEvent
from sqlalchemy import select

from tests.conftest import make_settings

OLD = 31  # registered before encryption: a plain-text PlayerRegistered v2
NEW = 32  # registered now: encrypted


def legacy_registration(app: DianaApplication, telegram_id: int, name: str) -> None:
    """A PlayerRegistered as version 2 stored it: name and language in plain text."""
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2025-12-01T10:00:00+00:00"},
        "originator_topic": "domain.player:Player",
        "causation": "tg:update:1",
        "actor": subject_of(telegram_id),
        "telegram_id": telegram_id,
        "display_name": name,
        "language_code": "pt",
        "class_version": 2,
    }
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=player_id(telegram_id),
                originator_version=1,
                topic="domain.player:Player.PlayerRegistered",
                state=json.dumps(state).encode(),
            )
        ]
    )


def legacy_snapshot(app: DianaApplication, telegram_id: int, name: str) -> None:
    """Replace the player's snapshot by one as snapshots were stored before: plain text."""
    assert app.snapshots is not None
    aggregate = player_id(telegram_id)
    app.take_snapshot(aggregate)
    (taken,) = app.snapshots.recorder.select_events(aggregate)
    state = json.loads(taken.state)
    assert state["state"].pop("class_version") == 2  # the Player's
    state["state"]["display_name"], state["state"]["language_code"] = name, "pt"
    delete_snapshots(app.snapshots.recorder, aggregate)
    plain = StoredEvent(
        originator_id=taken.originator_id,
        originator_version=taken.originator_version,
        topic=taken.topic,
        state=json.dumps(state).encode(),
    )
    app.snapshots.recorder.insert_events([plain])


def stored_events(app: DianaApplication) -> list[tuple[int, bytes]]:
    return [(n.id, bytes(n.state)) for n in app.recorder.select_notifications(1, 100_000)]


def snapshot_rows(app: DianaApplication, telegram_id: int) -> list[bytes]:
    assert app.snapshots is not None
    return [bytes(s.state) for s in app.snapshots.recorder.select_events(player_id(telegram_id))]


def fresh(app: DianaApplication, telegram_id: int) -> Any:
    app.evict_cached(player_id(telegram_id))
    return app.get_player(telegram_id)


def names(services: Services) -> dict[int, tuple[str | None, str | None]]:
    assert services.projections is not None
    table = services.projections.table("player_points")
    with services.projections.store.read() as conn:
        found = conn.execute(
            select(table.c.telegram_id, table.c.display_name, table.c.language_code)
        )
        return {row[0]: (row[1], row[2]) for row in found}


def history(services: Services, telegram_id: int) -> list[Any]:
    app = services.app
    return EventHistory(event_log(app), app.scan_notifications).tail(user=telegram_id, limit=100)


@pytest.fixture
def played(services: Services, clock: ManualClock) -> Services:
    app = services.app
    legacy_registration(app, OLD, "Vieja")
    assert app.register_player(NEW, "Bruno", Origin.telegram(2, NEW), "ca").ok
    for user in (OLD, NEW):
        assert app.check_in(user, Origin.telegram(10 + user, user)).ok
        assert app.react(user, "chan:1", "❤️", Origin.telegram(100 + user, user)).ok
    app.take_snapshot(player_id(NEW))
    legacy_snapshot(app, OLD, "Vieja")
    assert services.projections is not None
    services.projections.catch_up()
    return services


def test_new_registrations_are_stored_encrypted_and_read_back(played: Services) -> None:
    app = played.app
    (registered,) = [
        s for s in app.recorder.select_events(player_id(NEW)) if s.originator_version == 1
    ]
    assert b"Bruno" not in registered.state and b'"_type_":"personal"' in registered.state
    assert b'"class_version":3' in registered.state
    assert all(b"Bruno" not in row for row in snapshot_rows(app, NEW))
    player = fresh(app, NEW)
    assert (player.display_name.text, player.language_code.text) == ("Bruno", "ca")
    old = fresh(app, OLD)  # from the plain-text snapshot, through the aggregate's upcaster
    assert (old.display_name.text, old.language_code.text) == ("Vieja", "pt")
    assert old.display_name.legacy
    assert names(played) == {OLD: ("Vieja", "pt"), NEW: ("Bruno", "ca")}
    assert len(app.personal_data.key_ids(subject_of(NEW))) == 1


def test_forgetting_erases_without_editing_history(played: Services, clock: ManualClock) -> None:
    app, projections = played.app, played.projections
    assert projections is not None
    before = stored_events(app)
    assert any(b"Vieja" in row for row in snapshot_rows(app, OLD))  # a legacy snapshot

    for user in (OLD, NEW):
        result = app.forget_player(user, Origin.console())
        assert result.ok and result.event_names() == ["PlayerForgotten"], result
        assert result.details["snapshots_deleted"] >= 1
        assert projections.forget(user) == 1

    # Events are never edited: the same bytes at the same positions, two events more.
    after = stored_events(app)
    assert after[: len(before)] == before and len(after) == len(before) + 2
    forgotten = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 999)]
    assert [type(e).__name__ for e in forgotten][-2:] == ["PlayerForgotten"] * 2
    # Honest: the legacy plain text is still in the stored event's bytes (masked when read).
    assert any(b"Vieja" in state for _, state in after)
    # The keys are gone, the snapshots too; the read models hold nothing personal.
    for user in (OLD, NEW):
        assert app.personal_data.key_ids(subject_of(user)) == []
        assert app.personal_data.forgotten(subject_of(user))
        assert snapshot_versions(app, player_id(user)) == []
        player = fresh(app, user)
        assert player.forgotten and player.display_name.text is None
        assert player.balance == 20  # the game's history is untouched
    assert names(played) == {OLD: (None, None), NEW: (None, None)}

    # History: both registrations read, their personal fields shown as erased.
    for user in (OLD, NEW):
        entries = history(played, user)
        registered = next(e for e in entries if e.type == "PlayerRegistered")
        assert registered.error is None
        assert f"display_name={ERASED}" in registered.summary()
        as_json = registered.to_dict()
        assert as_json["fields"]["display_name"] is None and as_json["erased"] is True
        assert as_json["erased_fields"] == ["display_name", "language_code"]
        assert entries[-1].type == "PlayerForgotten" and entries[-1].actor == "admin:0"

    # Projections catch up, reconcile, rebuild: all work, all consistent, all erased.
    projections.catch_up()
    assert projections.reconcile().consistent
    assert projections.rebuild().swapped
    assert names(played) == {OLD: (None, None), NEW: (None, None)}
    assert projections.reconcile().consistent
    assert projections.reconcile(user=NEW).consistent

    # Snapshots taken from now on hold no personal data either.
    app.take_snapshot(player_id(NEW))
    assert snapshot_rows(app, NEW) and all(b'"k"' not in row for row in snapshot_rows(app, NEW))
    assert fresh(app, NEW).forgotten


def test_a_new_process_replays_a_forgotten_user(
    played: Services, database_url: str, clock: ManualClock
) -> None:
    if database_url.startswith("memory"):
        pytest.skip("the in-memory store lives in one process")
    assert played.app.forget_player(OLD, Origin.console()).ok
    assert played.app.forget_player(NEW, Origin.console()).ok
    with bootstrap(make_settings(database_url), clock=clock) as other:
        for user in (OLD, NEW):
            player = other.app.get_player(user)
            assert player is not None and player.forgotten and player.balance == 20
        assert other.projections is not None
        assert other.projections.rebuild().swapped
        assert names(other) == {OLD: (None, None), NEW: (None, None)}
        assert other.projections.reconcile().consistent


def test_forgetting_twice_records_once(played: Services) -> None:
    app = played.app
    assert app.forget_player(NEW, Origin.console()).event_names() == ["PlayerForgotten"]
    again = app.forget_player(NEW, Origin.console())
    assert again.ok and again.event_names() == [] and again.details["keys_deleted"] == 0


def test_forgetting_an_unknown_user_or_as_a_player_is_refused(played: Services) -> None:
    app = played.app
    head = app.recorder.max_notification_id()
    assert app.forget_player(999, Origin.console()).outcome == "unknown_user"
    assert app.forget_player(NEW, Origin.telegram(50, NEW)).outcome == "not_admin"
    assert app.recorder.max_notification_id() == head
    assert len(app.personal_data.key_ids(subject_of(NEW))) == 1


def test_a_forgotten_user_who_comes_back_gets_a_new_key(played: Services) -> None:
    app = played.app
    (first_key,) = app.personal_data.key_ids(subject_of(NEW))
    assert app.forget_player(NEW, Origin.console()).ok
    back = app.register_player(NEW, "Bruna", Origin.telegram(60, NEW), "es")
    assert back.ok and back.event_names() == ["PlayerReturned"]
    (second_key,) = app.personal_data.key_ids(subject_of(NEW))
    assert second_key != first_key
    player = fresh(app, NEW)
    assert (player.display_name.text, player.language_code.text) == ("Bruna", "es")
    assert not player.forgotten and player.balance == 20
    assert app.register_player(NEW, "Bruna", Origin.telegram(61, NEW)).event_names() == []
    # The first registration stays erased: its key is gone for good.
    entries = history(played, NEW)
    registered = next(e for e in entries if e.type == "PlayerRegistered")
    returned = next(e for e in entries if e.type == "PlayerReturned")
    assert registered.fields["display_name"] == PersonalText(subject_of(NEW), None)
    assert returned.fields["display_name"].text == "Bruna"
    assert played.projections is not None
    played.projections.catch_up()
    assert names(played)[NEW] == ("Bruna", "es")
    assert played.projections.reconcile().consistent


def test_the_bot_greets_an_unknown_user_and_a_forgotten_one_who_comes_back(
    database_url: str, clock: ManualClock
) -> None:
    from tests.integration.test_telegram_bot import run
    from tests.telegram_harness import CHANNEL, GROUP, Harness

    settings = make_settings(database_url, channel_id=CHANNEL, group_id=GROUP)
    with bootstrap(settings, clock=clock) as wired:
        assert wired.projections is not None
        wired.projections.start()

        async def first(h: Harness) -> None:
            assert "Soy Diana" in await h.command(NEW, "/start")  # unknown: registered

        run(wired, first)
        assert wired.app.forget_player(NEW, Origin.console()).ok
        wired.projections.forget(NEW)

        async def back(h: Harness) -> None:
            assert "Soy Diana" in await h.command(NEW, "/start")  # welcomed as new again
            assert "de nuevo" in await h.command(NEW, "/start")
            assert "Besitos: 0" in await h.command(NEW, "/profile")

        run(wired, back)
        player = fresh(wired.app, NEW)
        assert player.display_name.text == f"Usuario{NEW}" and not player.forgotten
        assert len(wired.app.personal_data.key_ids(subject_of(NEW))) == 1


def test_a_new_users_key_is_committed_before_the_events_that_use_it(
    shared_database_url: str, clock: ManualClock, monkeypatch: Any
) -> None:
    """The key row is written in its own transaction, committed before the events' transaction
    begins (docs/privacy.md): a crash between the two leaves a key without events (unused,
    harmless), never events encrypted under a key that was not stored. Here the events'
    write fails right after the key's commit, which another connection already sees."""
    subject = subject_of(NEW)
    with bootstrap(make_settings(shared_database_url), clock=clock) as wired:
        app = wired.app
        assert app.register_player(OLD, "Vieja", Origin.telegram(1, OLD)).ok  # tables exist
        seen: list[list[str]] = []
        real_insert = app.recorder.insert_events

        def crash_before_the_events(stored: Any, **kwargs: Any) -> Any:
            with bootstrap(
                make_settings(shared_database_url), read_only=True, projections=False
            ) as other:  # another connection (process): only committed rows are visible
                seen.append(other.app.personal_data.key_ids(subject))
            raise OSError("the process died between the key and the events")

        monkeypatch.setattr(app.recorder, "insert_events", crash_before_the_events)
        with pytest.raises(OSError, match="died"):
            app.register_player(NEW, "Bruno", Origin.telegram(2, NEW), "ca")
        assert len(seen) == 1 and len(seen[0]) == 1  # the key was durable before the events
        monkeypatch.setattr(app.recorder, "insert_events", real_insert)
        assert app.recorder.select_events(player_id(NEW)) == []  # no event lost its key
        assert app.register_player(NEW, "Bruno", Origin.telegram(3, NEW), "ca").ok  # retried
        assert app.personal_data.key_ids(subject) == seen[0]  # the same key, now used
    with bootstrap(make_settings(shared_database_url), clock=clock) as again:  # a new process
        player = again.app.get_player(NEW)
        assert (player.display_name.text, player.language_code.text) == ("Bruno", "ca")


def test_a_key_that_cannot_be_stored_writes_no_event(
    shared_database_url: str, clock: ManualClock, monkeypatch: Any
) -> None:
    """The other order's failure: the key's transaction fails, so nothing is encrypted with it
    and the command writes nothing."""
    with bootstrap(make_settings(shared_database_url), clock=clock) as wired:
        app = wired.app
        table = app.personal_data.keyring.table

        def refuse(*args: Any) -> Any:
            raise OSError("the key's transaction failed")

        monkeypatch.setattr(table, "add", refuse)
        with pytest.raises(OSError, match="key's transaction"):
            app.register_player(NEW, "Bruno", Origin.telegram(2, NEW), "ca")
        assert app.recorder.select_events(player_id(NEW)) == []
        monkeypatch.undo()
        assert app.register_player(NEW, "Bruno", Origin.telegram(3, NEW), "ca").ok
        assert len(app.personal_data.key_ids(subject_of(NEW))) == 1
