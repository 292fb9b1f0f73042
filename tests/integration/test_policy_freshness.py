"""A policy reads the stream of the event it reacts to at least as new as that event, even
when another process wrote it after this one cached it (the workers run in a process of their
own: the bot's and the CLI's commands never pass through their cache)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantPoints, RegisterPlayer, RevokeBadge
from dianabot.application.policies import build
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from dianabot.projections.subscriptions import PolicyRunner

from tests.conftest import ADMIN_ID, make_settings

ANA = 611


def grant(bot: Services, amount: int) -> None:
    """Ana gets `amount` besitos through the bot's process (not the workers')."""
    command = GrantPoints(ANA, admin_id=ADMIN_ID, amount=amount, reason="prueba")
    assert bot.app.bus.handle(command, Origin.admin(ADMIN_ID)).ok


def test_a_policy_sees_what_another_process_wrote_after_it_cached_the_stream(
    shared_database_url: str, clock: ManualClock
) -> None:
    settings = make_settings(shared_database_url)
    with (
        bootstrap(settings, clock=clock, projections=False) as workers,
        bootstrap(settings, clock=clock, projections=False) as bot,
    ):
        app = workers.app
        runner = PolicyRunner(app, event_log(app), build(app))

        assert bot.app.bus.handle(RegisterPlayer(ANA, "Ana"), Origin.telegram(1, ANA)).ok
        grant(bot, 60)
        runner.catch_up()  # the workers' process loads (and caches) Ana at 60 besitos
        assert app.get_award("primeros-besitos", ANA) is not None
        grant(bot, 60)  # written by the bot's process: the workers' cached copy is behind
        runner.catch_up()
        award = app.get_award("besitos-100", ANA)
        assert award is not None and award.held


def test_the_policies_follow_another_processs_writes_without_loading_again(
    shared_database_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a stream is cached, the events the runner reads bring it forward (no load per
    event); badges found held are not looked up again until a revocation passes, after which
    an event that still meets the criteria awards the badge again."""
    settings = make_settings(shared_database_url)
    with (
        bootstrap(settings, clock=clock, projections=False) as workers,
        bootstrap(settings, clock=clock, projections=False) as bot,
    ):
        app = workers.app
        runner = PolicyRunner(app, event_log(app), build(app))
        loads: list[UUID] = []
        select_events = app.recorder.select_events

        def counted(originator_id: UUID, **kwargs: Any) -> Any:
            loads.append(originator_id)
            return select_events(originator_id, **kwargs)

        monkeypatch.setattr(app.recorder, "select_events", counted)
        asked: list[str] = []
        get_award = app.get_award

        def asked_for(slug: str, telegram_id: int) -> Any:
            asked.append(slug)
            return get_award(slug, telegram_id)

        monkeypatch.setattr(app, "get_award", asked_for)

        assert bot.app.bus.handle(RegisterPlayer(ANA, "Ana"), Origin.telegram(1, ANA)).ok
        grant(bot, 120)
        runner.catch_up()
        assert app.get_award("besitos-100", ANA) is not None  # awarded, with its first badge
        loads.clear()
        asked.clear()
        for _ in range(5):
            grant(bot, 10)  # written by the bot's process, below the next badge (500)
        runner.catch_up()
        assert player_id(ANA) not in loads, "the player was loaded again"
        for slug in ("primeros-besitos", "besitos-100"):  # found held once, then remembered
            assert asked.count(slug) <= 1, f"{slug} was looked up for every event"
        assert app.get_player(ANA).version == bot.app.get_player(ANA).version

        revoke = RevokeBadge("besitos-100", ANA, reason="prueba")
        assert bot.app.bus.handle(revoke, Origin.admin(ADMIN_ID)).ok
        grant(bot, 10)
        runner.catch_up()
        award = app.get_award("besitos-100", ANA)
        assert award is not None and award.held, "the revoked badge was not awarded again"
