"""The narrative use cases on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections import Counter

import pytest
from dianabot.adapters.story_file import load_bundled_story
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.ids import progress_id, story_id
from eventsourcing.persistence import PersistenceError

from tests.conftest import ADMIN_ID
from tests.unit.test_progress import SMALL_STORY, WITHOUT_B, small_story

USER = 7
SLUG = "prueba"
_update = iter(range(1, 10**6))


def tg(user: int = USER) -> Origin:
    return Origin.telegram(next(_update), user)


def head(app: DianaApplication) -> int:
    return app.recorder.max_notification_id() or 0


def choose(app: DianaApplication, choice: str, user: int = USER, slug: str = SLUG):  # type: ignore[no-untyped-def]
    return app.make_choice(user, choice, tg(user), slug)


@pytest.fixture
def playing(app: DianaApplication) -> DianaApplication:
    """USER registered with 100 besitos, the small story published and started (on `a`)."""
    assert app.register_player(USER, "Ana", tg()).ok
    assert app.grant_points(ADMIN_ID, USER, 100, "seed", Origin.admin(ADMIN_ID)).ok
    assert app.publish_story(small_story(), Origin.admin(ADMIN_ID)).ok
    assert app.start_story(USER, tg(), SLUG).ok
    return app


def test_publish_records_the_version_and_refuses_problems(app: DianaApplication) -> None:
    loaded = load_bundled_story()
    result = app.publish_story(loaded, Origin.admin(ADMIN_ID))
    assert result.ok and result.event_names() == ["StoryCreated", "StoryPublished"]
    published = result.events[1].fields
    assert published["slug"] == "diana" and published["version"] == 1
    assert published["content_hash"] == loaded.story.content_hash
    assert published["fragment_ids"] == sorted(loaded.story.fragment_ids)
    assert published["start"] == loaded.story.start
    assert result.details["version"] == 1 and not result.details["unchanged"]

    again = app.publish_story(loaded, Origin.admin(ADMIN_ID))
    assert again.ok and again.events == () and again.details["unchanged"]

    before = head(app)
    broken = small_story(SMALL_STORY.replace("next: b}", "next: nowhere}"))
    refused = app.publish_story(broken, Origin.admin(ADMIN_ID))
    assert refused.outcome == "invalid_story"
    assert {p["code"] for p in refused.details["problems"]} >= {"dangling_link"}
    assert head(app) == before
    assert app.published_story("prueba") is None
    version, story = app.published_story("diana")  # type: ignore[misc]
    assert version == 1 and story.content_hash == loaded.story.content_hash


def test_start_is_idempotent_and_rewards_the_start(playing: DianaApplication) -> None:
    app = playing
    progress = app.get_progress(USER, SLUG)
    assert progress is not None and progress.fragment_id == "a"
    assert app.get_player(USER).balance == 105
    before = head(app)
    again = app.start_story(USER, tg(), SLUG)
    assert again.ok and again.events == () and not again.details["started"]
    assert head(app) == before


def test_start_and_choices_need_a_published_story_and_a_player(app: DianaApplication) -> None:
    assert app.start_story(USER, tg(), SLUG).outcome == "unknown_user"
    assert app.register_player(USER, "Ana", tg()).ok
    assert app.start_story(USER, tg(), SLUG).outcome == "story_not_published"
    assert app.publish_story(small_story(), Origin.admin(ADMIN_ID)).ok
    assert choose(app, "a_b").outcome == "story_not_started"
    assert app.current_fragment(USER, SLUG) is None


def test_a_choice_from_another_fragment_writes_nothing(playing: DianaApplication) -> None:
    app = playing
    before = head(app)
    result = choose(app, "b_c")
    assert result.outcome == "invalid_choice" and "fragment 'b'" in result.message
    assert choose(app, "nope").outcome == "invalid_choice"
    assert head(app) == before


def test_paid_choice_spends_once_with_the_move_in_one_transaction(
    playing: DianaApplication,
) -> None:
    app = playing
    result = choose(app, "a_c")
    assert result.ok and result.details["paid"] == 20
    assert result.event_names() == [
        "ChoiceMade",
        "FragmentEntered",
        "ChapterCompleted",
        "PointsSpent",
    ]
    positions = [e.position for e in result.events]
    assert positions == list(range(positions[0], positions[0] + 4))  # one contiguous commit
    spent = result.events[-1].fields
    assert (spent["purpose"], spent["amount"], spent["reference"]) == (
        "story_choice",
        20,
        "choice:a_c",
    )
    assert app.get_player(USER).balance == 85
    assert choose(app, "c_a").ok
    again = choose(app, "a_c")
    assert again.ok and again.details["paid"] == 0 and "PointsSpent" not in again.event_names()
    assert app.get_player(USER).balance == 85


def test_insufficient_points_moves_nothing(app: DianaApplication) -> None:
    assert app.register_player(USER, "Ana", tg()).ok
    assert app.publish_story(small_story(), Origin.admin(ADMIN_ID)).ok
    assert app.start_story(USER, tg(), SLUG).ok  # balance 5
    before = head(app)
    result = choose(app, "a_c")
    assert result.outcome == "insufficient_points" and result.details["cost"] == 20
    assert head(app) == before
    assert app.get_progress(USER, SLUG).fragment_id == "a"
    assert app.get_player(USER).balance == 5


def test_a_failed_save_neither_spends_nor_moves(
    playing: DianaApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = playing
    before = head(app)

    def broken(*args: object) -> None:
        raise PersistenceError("disk on fire")

    monkeypatch.setattr(app._writer, "commit", broken)
    assert choose(app, "a_c").outcome == "unavailable"
    monkeypatch.undo()
    assert head(app) == before
    assert app.get_player(USER).balance == 105
    assert app.get_progress(USER, SLUG).fragment_id == "a"
    assert choose(app, "a_c").ok and app.get_player(USER).balance == 85


def test_vip_gate_is_recorded_and_refused(playing: DianaApplication) -> None:
    app = playing
    assert choose(app, "a_c").ok
    before = head(app)
    result = choose(app, "c_d")
    assert result.outcome == "vip_required" and not result.ok
    assert result.event_names() == ["VipGateHit"]
    assert result.events[0].fields["fragment_id"] == "c"
    assert result.events[0].fields["choice_id"] == "c_d"
    assert head(app) == before + 1
    assert app.get_progress(USER, SLUG).fragment_id == "c"
    assert choose(app, "a_v").outcome == "invalid_choice"  # not on c

    assert app.grant_vip(USER, 30, "stars", "charge:1", Origin.system("stars", "charge:1")).ok
    opened = choose(app, "c_d")
    assert opened.ok and opened.details["chapters_completed"] == [2]
    view = app.current_fragment(USER, SLUG)
    assert view is not None and view.fragment_id == "d" and view.vip_fragment and not view.locked


def test_rewards_and_clues_once_even_on_revisit(playing: DianaApplication) -> None:
    app = playing
    for choice in ["a_b", "b_a", "a_b", "b_a", "a_b"]:
        assert choose(app, choice).ok
    assert app.get_player(USER).balance == 115  # 100 + 5 (a) + 10 (b), once each
    progress = app.get_progress(USER, SLUG)
    assert progress.clues == {"llave"} and progress.visited == {"a", "b"}
    view = app.current_fragment(USER, SLUG)
    assert [c.id for c in view.choices] == ["b_a", "b_c"]  # b_c offered: the clue is held
    assert choose(app, "b_c").ok


def test_current_fragment_filters_choices_for_the_player(playing: DianaApplication) -> None:
    app = playing
    view = app.current_fragment(USER, SLUG)
    assert view is not None and (view.fragment_id, view.speaker, view.text) == (
        "a",
        "Diana",
        "Hola.",
    )
    assert [c.id for c in view.choices] == ["a_b", "a_c"]  # a_v is vip_only
    paid = view.choices[1]
    assert (paid.cost, paid.paid, paid.affordable) == (20, False, True)
    assert app.grant_vip(USER, 30, "admin", "gift", Origin.admin(ADMIN_ID)).ok
    assert [c.id for c in app.current_fragment(USER, SLUG).choices] == ["a_b", "a_c", "a_v"]


def test_new_version_relocates_players_on_removed_fragments(playing: DianaApplication) -> None:
    app = playing
    assert choose(app, "a_b").ok  # on b, which version 2 removes
    assert app.register_player(8, "Bruno", tg(8)).ok
    assert app.start_story(8, tg(8), SLUG).ok  # on a, which stays

    result = app.publish_story(small_story(WITHOUT_B), Origin.admin(ADMIN_ID))
    assert result.ok and result.details["version"] == 2 and result.details["relocated"] == 1
    progress = app.get_progress(USER, SLUG)
    assert progress.fragment_id == "a" and progress.story_version == 2
    assert app.get_progress(8, SLUG).story_version == 1  # untouched: its fragment still exists
    relocated = [
        n
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("ProgressRelocated")
    ]
    assert len(relocated) == 1
    event = app.mapper.to_domain_event(relocated[0])
    assert (event.from_fragment, event.to_fragment, event.story_version) == ("b", "a", 2)
    assert app.relocate_stranded(SLUG) == []  # nobody left to move
    assert app.current_fragment(USER, SLUG).fragment_id == "a"


def test_a_player_the_sweep_missed_is_relocated_by_their_next_command(
    playing: DianaApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = playing
    assert choose(app, "a_b").ok
    monkeypatch.setattr(app, "relocate_stranded", lambda slug="": [])
    assert app.publish_story(small_story(WITHOUT_B), Origin.admin(ADMIN_ID)).ok
    view = app.current_fragment(USER, SLUG)
    assert view is not None and view.stranded and view.choices == ()
    before = head(app)
    result = choose(app, "b_c")  # a button from the removed fragment
    assert result.outcome == "invalid_choice"
    assert result.event_names() == ["ProgressRelocated"]  # the move is kept, never silent
    assert head(app) == before + 1
    assert app.get_progress(USER, SLUG).fragment_id == "a"
    assert choose(app, "a_c").ok


def test_state_replays_identically_from_the_store(playing: DianaApplication) -> None:
    app = playing
    for choice in ["a_b", "b_c", "c_a", "a_c"] + ["c_a", "a_b", "b_a", "a_c"] * 16:
        assert choose(app, choice).ok
    live = app.get_progress(USER, SLUG)
    assert live.version > 100  # past the snapshot interval: reloading uses a snapshot
    app.repository.cache.get(progress_id(USER, SLUG), evict=True)  # type: ignore[union-attr]
    app.repository.cache.get(story_id(SLUG), evict=True)  # type: ignore[union-attr]
    replayed = app.get_progress(USER, SLUG)
    assert vars(replayed) == vars(live)
    assert app.snapshots is not None
    assert app.flush_snapshots()
    assert list(app.snapshots.get(progress_id(USER, SLUG), desc=True, limit=1))
    assert app.published_story(SLUG)[1].content_hash == small_story().story.content_hash  # type: ignore[index]


def test_bundled_story_scenario_free_user_meets_the_vip_gate(
    app: DianaApplication, clock: ManualClock
) -> None:
    """Spec scenario 4: /story shows the fragment, choices advance, VIP content is refused."""
    assert app.register_player(USER, "Ana", tg()).ok
    assert app.grant_points(ADMIN_ID, USER, 400, "seed", Origin.admin(ADMIN_ID)).ok
    assert app.publish_story(load_bundled_story(), Origin.admin(ADMIN_ID)).ok
    assert app.start_story(USER, tg()).ok
    story = load_bundled_story().story
    outcomes: Counter[str] = Counter()
    for _ in range(200):
        view = app.current_fragment(USER)
        assert view is not None and story.has_fragment(view.fragment_id)
        assert not view.vip_fragment
        into_vip = [c for c in view.choices if c.leads_to_vip]
        if into_vip and view.is_ending:
            gate = app.make_choice(USER, into_vip[0].id, tg())
            assert gate.outcome == "vip_required" and gate.event_names() == ["VipGateHit"]
            outcomes[gate.outcome] += 1
            break
        pick = next(c for c in view.choices if c.affordable and not c.leads_to_vip)
        result = app.make_choice(USER, pick.id, tg())
        assert result.ok, result
    assert outcomes["vip_required"] == 1
    progress = app.get_progress(USER)
    assert 3 in progress.chapters_completed and progress.chapters_completed <= {1, 2, 3}
