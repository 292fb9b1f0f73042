"""A stateful test base: commands through the bus, the clock jumping, projectors and policies
catching up and restarting, every cheap invariant after each step, the full replay at the end.

Subclass `InvariantMachine`, set `database_url` (a factory) and run `.TestCase`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import (
    Command,
    GrantPoints,
    MakeChoice,
    RegisterPlayer,
    SpendPoints,
    StartStory,
)
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.projections.service import Projections
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.conftest import make_settings
from tests.kit import invariants as inv
from tests.kit import strategies as kst
from tests.policies import runner

STORY = kst.LOADED_STORY
"""Parsed once: every example publishes it."""


class InvariantMachine(RuleBasedStateMachine):
    make_url: ClassVar[Any] = staticmethod(lambda: "memory://")
    """A zero-argument callable giving a fresh store URL for one example."""
    cleanup: ClassVar[Any] = staticmethod(lambda url: None)
    final_invariants: ClassVar[list[inv.Invariant]] = inv.FULL
    """Checked at the end of every example (the cheap ones run after every step)."""
    read_models: ClassVar[bool | tuple[str, ...]] = True
    """Build the read models (about half of an example's set-up time), or only those named:
    without them the projection rules do nothing and the invariants of `inv.READ_MODEL` are
    left out; with some, only `read_model_agrees_with_history` (it reads `player_points`)."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.url = type(self).make_url()
        wanted = type(self).read_models
        self.services: Services = bootstrap(
            make_settings(self.url), clock=self.clock, projections=wanted is True
        )
        if isinstance(wanted, tuple):
            database = self.services.database
            self.services.projections = Projections.open(
                self.services.app,
                event_log(self.services.app),
                database.kind,
                database.sqlalchemy_url,
                database.schema,
                names=wanted,
            )
        self.policies = runner(self.services)

    PLAYERS: ClassVar[tuple[int, ...]] = (1, 2, 3)
    """Registered up front, so most commands reach a player rather than `unknown_user`."""
    STARTING_POINTS: ClassVar[int] = 100
    """Granted to each of them up front (through the bus), so spends and gates get decided."""

    TICK: ClassVar[timedelta] = timedelta(milliseconds=1)

    def handle(self, command: Command, origin: Origin) -> CommandResult:
        """Through the bus, a tick after the last command: in production no two commands share
        an instant (with a frozen clock the reconciliation read an award made just before a
        badge's retirement, at the same instant, as made after it: docs/invariant-testing.md)."""
        self.clock.advance(self.TICK)
        return self.services.app.bus.handle(command, origin)

    @initialize()
    def setup(self) -> None:
        app = self.services.app
        app.ensure_badges(INITIAL_BADGES, Origin.system("kit", "catalogue"))
        assert app.publish_story(STORY, Origin.system("kit", "story")).ok
        for user in self.PLAYERS:
            registered = self.handle(
                RegisterPlayer(user, f"kit {user}"), Origin.telegram(user, user)
            )
            assert registered.ok, registered
            granted = self.handle(
                GrantPoints(user, admin_id=kst.ADMIN_ID, amount=self.STARTING_POINTS, reason="kit"),
                Origin.admin(kst.ADMIN_ID),
            )
            assert granted.ok, granted

    @rule(issued=kst.commands())
    def command(self, issued: kst.Issued) -> None:
        self.handle(issued.command, issued.origin)

    @rule(user=kst.users, pick=st.integers(0, 3), update=kst.update_ids())
    def walk_story(self, user: int, pick: int, update: int) -> None:
        """Start the story, or take one of the choices the player's fragment offers (gates may
        refuse it): reaches decisions, chapters and their rewards, unlike a random choice id."""
        app = self.services.app
        progress = app.get_progress(user)
        published = app.published_story("diana")
        if progress is None or published is None or progress.fragment_id is None:
            self.handle(StartStory(user), Origin.telegram(update, user))
            return
        story = published[1]
        if not story.has_fragment(progress.fragment_id):
            return
        choices = story.fragment(progress.fragment_id).choices
        if choices:
            choice = choices[pick % len(choices)].id
            self.handle(MakeChoice(user, choice), Origin.telegram(update, user))

    @rule(issued=kst.commands())
    def redeliver(self, issued: kst.Issued) -> None:
        """Any command twice under one origin (an update delivered again, a job run twice)."""
        for _ in range(2):
            self.handle(issued.command, issued.origin)

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
        """The projectors catch up; their rows then agree with the history."""
        if self.services.projections is not None:
            inv.read_model_agrees_with_history(self.services)

    @rule()
    def expire_vips(self) -> None:
        self.services.app.expire_due_vips()

    @rule(user=kst.users, amount=kst.amounts, update=kst.update_ids())
    def spend(self, user: int, amount: int, update: int) -> None:
        """Spends, often: the points flow the other commands mostly feed."""
        self.handle(SpendPoints(user, amount, "shop", "kit"), Origin.telegram(update, user))

    @rule(user=kst.users, update=st.integers(10**9 + 1, 10**9 + 50))
    def redeliver_spend(self, user: int, update: int) -> None:
        """The same update twice: a re-delivery must have its effect once."""
        for _ in range(2):
            self.handle(SpendPoints(user, 1, "shop", "again"), Origin.telegram(update, user))

    @invariant()
    def cheap_invariants(self) -> None:
        inv.check_all(self.services, inv.CHEAP)

    def teardown(self) -> None:
        try:
            self.policies.catch_up()
            final = type(self).final_invariants
            wanted = type(self).read_models
            if wanted is not True:
                kept = [inv.read_model_agrees_with_history] if wanted else []
                final = [i for i in final if i not in inv.READ_MODEL or i in kept]
            inv.check_all(self.services, final)
        finally:
            self.services.close()
            type(self).cleanup(self.url)
