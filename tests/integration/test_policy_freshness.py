"""A policy reads the stream of the event it reacts to at least as new as that event, even
when another process wrote it after this one cached it (the workers run in a process of their
own: the bot's and the CLI's commands never pass through their cache)."""

from __future__ import annotations

from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantPoints, RegisterPlayer
from dianabot.application.policies import build
from dianabot.application.results import Origin
from dianabot.projections.subscriptions import PolicyRunner

from tests.conftest import ADMIN_ID, make_settings

ANA = 611


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

        def grant(amount: int) -> None:
            command = GrantPoints(ANA, admin_id=ADMIN_ID, amount=amount, reason="prueba")
            assert bot.app.bus.handle(command, Origin.admin(ADMIN_ID)).ok

        assert bot.app.bus.handle(RegisterPlayer(ANA, "Ana"), Origin.telegram(1, ANA)).ok
        grant(60)
        runner.catch_up()  # the workers' process loads (and caches) Ana at 60 besitos
        assert app.get_award("primeros-besitos", ANA) is not None
        grant(60)  # written by the bot's process: the workers' cached copy is behind
        runner.catch_up()
        award = app.get_award("besitos-100", ANA)
        assert award is not None and award.held
