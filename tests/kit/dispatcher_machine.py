"""A stateful test of the bot itself: Telegram updates of every flow (and malformed, forged and
re-delivered ones) go through the real dispatcher at the JSON level (`bot_driver.BotDriver`),
while the clock jumps and the projectors, the policies and the bot restart. After each step the
cheap invariants hold, nothing was logged as a traceback, each update got at most one answer
per kind, and a re-delivered update had no effect again; at the end the full invariants.

Subclass `DispatcherMachine`, set `make_url` (and `cleanup`) and run `.TestCase`."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any, ClassVar

from dianabot.adapters.bootstrap import Services
from dianabot.adapters.coordination import build_coordinator
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.projections.service import Projections
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.kit import invariants as inv
from tests.kit import strategies as kst
from tests.kit.bot_driver import BOT_ID, BotDriver, Delivery, ErrorLog, run, wired_bot_services
from tests.policies import runner

CLAIMS_AN_EFFECT = ("+",)
"""What an answer that reports besitos earned starts a line with (`+10 besitos`)."""


def caused(services: Services, update_id: int) -> Counter[str]:
    """The events an update caused, by name."""
    causation = f"tg:{BOT_ID}:update:{update_id}"
    return Counter(
        type(e).__name__
        for e in inv.history(services)
        if getattr(e, "causation", None) == causation
    )


class DispatcherMachine(RuleBasedStateMachine):
    make_url: ClassVar[Any] = staticmethod(lambda: "memory://")
    """A zero-argument callable giving a fresh store URL for one example."""
    cleanup: ClassVar[Any] = staticmethod(lambda url: None)

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.url = type(self).make_url()
        self.services = wired_bot_services(self.url, self.clock)
        self.policies = runner(self.services)
        self.loop = asyncio.new_event_loop()
        self.driver = BotDriver(self.services)
        self.errors = ErrorLog()
        self.errors.__enter__()
        self.update_ids = itertools.count(1)
        self.delivered: list[dict[str, Any]] = []

    # ----- updates ------------------------------------------------------------------------

    def _deliver(self, raw: Any) -> Delivery:
        delivery = run(self.loop, self.driver, raw)
        self._one_answer_each(delivery)
        return delivery

    def _one_answer_each(self, delivery: Delivery) -> None:
        text = ""
        if isinstance(delivery.raw, dict):
            message = delivery.raw.get("message")
            text = str(message.get("text", "")) if isinstance(message, dict) else ""
        messages = 2 if text.startswith("/start vip-") else 1  # the welcome, the token's verdict
        assert delivery.count("answerCallbackQuery") <= 1, delivery.calls
        assert delivery.count("editMessageText") <= 1, delivery.calls
        assert delivery.count("sendMessage") <= messages, delivery.calls

    def _fresh(self, update: dict[str, Any]) -> Delivery:
        raw = {"update_id": next(self.update_ids), **update}
        delivery = self._deliver(raw)
        if delivery.update is not None:
            self.delivered.append(raw)
        return delivery

    @rule(updates=st.lists(kst.bot_updates(), min_size=1, max_size=4))
    def updates(self, updates: list[dict[str, Any]]) -> None:
        for update in updates:
            self._fresh(update)

    @rule(user=kst.users, walk=kst.story_walks(max_steps=6))
    def play_the_story(self, user: int, walk: list[str]) -> None:
        """/start, /story, then the buttons of a walk through the story, in order."""
        for text in ("/start", "/story"):
            self._fresh({"message": kst.message_in(user, user, text)})
        for choice in walk:
            self._fresh(kst.story_press(user, choice, 1))

    @rule(raw=kst.raw_updates())
    def malformed_or_forged(self, raw: Any) -> None:
        if isinstance(raw, dict) and type(raw.get("update_id")) is int:
            raw = raw | {"update_id": next(self.update_ids)}  # ids only grow, as Telegram's
        self._deliver(raw)

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """An update delivered again (a lost offset, a restart before the confirmation): no
        kind of effect it had happens again, and its answer claims no new one."""
        self.deliver_again(data.draw(st.sampled_from(self.delivered)))

    def deliver_again(self, raw: dict[str, Any]) -> None:
        before = caused(self.services, raw["update_id"])
        delivery = self._deliver(raw)
        after = caused(self.services, raw["update_id"])
        again = {name: after[name] - n for name, n in before.items() if after[name] != n}
        assert not again, f"update {raw['update_id']} had effects again: {again}"
        if after == before:
            claims = [t for t in delivery.texts() if t.lstrip().startswith(CLAIMS_AN_EFFECT)]
            assert not claims, f"update {raw['update_id']} again answered {claims}"

    # ----- time and the processes ----------------------------------------------------------

    @rule(jump=kst.clock_jumps)
    def advance_clock(self, jump: Any) -> None:
        """Time passes, and the expiry job (`dianabot workers` runs it every few minutes) with
        it: a VIP period is never left running past the reconciliation's grace."""
        self.clock.advance(jump)
        self.expire_vips()

    @rule(
        chore=st.sampled_from(
            [
                "catch_up_policies",
                "restart_policies",
                "catch_up_projections",
                "restart_projections",
                "restart_bot",
                "expire_vips",
            ]
        )
    )
    def processes(self, chore: str) -> None:
        """What the workers, the read side and the bot's process do meanwhile (one rule, so
        that updates stay most of the steps)."""
        getattr(self, chore)()

    def catch_up_policies(self) -> None:
        self.policies.catch_up()

    def restart_policies(self) -> None:
        self.policies = runner(self.services)

    def catch_up_projections(self) -> None:
        assert self.services.projections is not None
        self.services.projections.catch_up()

    def restart_projections(self) -> None:
        """New projectors over the same read-model tables (from their recorded positions),
        and the bot that reads them restarted with them."""
        old, app, database = self.services.projections, self.services.app, self.services.database
        assert old is not None
        fresh = Projections.open(
            app, event_log(app), database.kind, database.sqlalchemy_url, database.schema
        )
        old.close()
        self.services.projections = fresh
        self.services.coordinator = build_coordinator(
            app.bus,
            event_log(app),
            self.clock,
            fresh,
            self.services.policies,
            incidents=fresh.incidents(),
        )
        self.driver = BotDriver(self.services)

    def restart_bot(self) -> None:
        """A new dispatcher and bot services over the same store (no user known yet)."""
        self.driver = BotDriver(self.services)

    def expire_vips(self) -> None:
        self.services.app.expire_due_vips()

    # ----- after each step, and at the end -------------------------------------------------

    @invariant()
    def cheap_invariants(self) -> None:
        assert self.errors.unexpected() == [], self.errors.unexpected()
        inv.check_all(self.services, inv.CHEAP)

    def teardown(self) -> None:
        try:
            self.errors.__exit__()
            self.policies.catch_up()
            inv.check_all(self.services)
        finally:
            self.close()

    def close(self) -> None:
        self.errors.__exit__()
        self.loop.close()
        self.services.close()
        type(self).cleanup(self.url)
