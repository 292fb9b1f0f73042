"""A stateful test base: commands through the bus, the clock jumping, projectors and policies
catching up and restarting, every cheap invariant after each step, the full replay at the end.

Subclass `InvariantMachine`, set `database_url` (a factory) and run `.TestCase`."""

from __future__ import annotations

from typing import Any, ClassVar

from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.story_file import load_bundled_story
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.conftest import make_settings
from tests.kit import invariants as inv
from tests.kit import strategies as kst
from tests.policies import runner


class InvariantMachine(RuleBasedStateMachine):
    make_url: ClassVar[Any] = staticmethod(lambda: "memory://")
    """A zero-argument callable giving a fresh store URL for one example."""
    cleanup: ClassVar[Any] = staticmethod(lambda url: None)

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.url = type(self).make_url()
        self.services: Services = bootstrap(make_settings(self.url), clock=self.clock)
        self.policies = runner(self.services)

    @initialize()
    def setup(self) -> None:
        app = self.services.app
        app.ensure_badges(INITIAL_BADGES, Origin.system("kit", "catalogue"))
        assert app.publish_story(load_bundled_story(), Origin.system("kit", "story")).ok

    @rule(issued=kst.commands())
    def command(self, issued: kst.Issued) -> None:
        self.services.app.bus.handle(issued.command, issued.origin)

    @rule(jump=kst.clock_jumps)
    def advance_clock(self, jump: Any) -> None:
        self.clock.advance(jump)

    @rule()
    def catch_up_policies(self) -> None:
        self.policies.catch_up()

    @rule()
    def restart_policies(self) -> None:
        self.policies = runner(self.services)

    @rule()
    def catch_up_projections(self) -> None:
        assert self.services.projections is not None
        self.services.projections.catch_up()

    @rule()
    def expire_vips(self) -> None:
        self.services.app.expire_due_vips()

    @rule(user=kst.users, update=st.integers(10**9 + 1, 10**9 + 50))
    def redeliver_spend(self, user: int, update: int) -> None:
        """The same update twice: a re-delivery must have its effect once."""
        from dianabot.application.commands import SpendPoints

        for _ in range(2):
            self.services.app.bus.handle(
                SpendPoints(user, 1, "shop", "again"), Origin.telegram(update, user)
            )

    @invariant()
    def cheap_invariants(self) -> None:
        inv.check_all(self.services, inv.CHEAP)

    def teardown(self) -> None:
        try:
            self.policies.catch_up()
            inv.check_all(self.services)
        finally:
            self.services.close()
            type(self).cleanup(self.url)
