"""Deliberately broken variants of the application, each a context manager patching one narrow
point, to prove the invariant machine finds what they break (tests/property/test_kit_bites.py).

Each is what a plausible regression would look like: the code around it is left as it is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from dianabot.application.commands import AwardPoints, Command
from dianabot.application.policies.story_decisions import StoryDecisions
from dianabot.domain import rules
from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.player import Player
from dianabot.projections.player_points import PlayerPointsProjector


@contextmanager
def spend_without_balance_check() -> Iterator[None]:
    """`Player.spend` forgets `_require_balance`: a spend above the balance is recorded."""

    def spend(self: Player, amount: int, purpose: str, reference: str, cause: Cause) -> None:
        amount = rules.checked_amount(amount)
        self._refuse_duplicate(f"spend:{purpose}", cause)
        self._points_spent(
            purpose=purpose, amount=amount, reference=reference, **cause.event_fields()
        )

    with mock.patch.object(Player, "spend", spend):
        yield


@contextmanager
def projector_applies_twice() -> Iterator[None]:
    """The `player_points` projector applies every `PointsAwarded` twice."""
    original = PlayerPointsProjector.on_PointsAwarded

    def twice(self: PlayerPointsProjector, event: Any, position: int) -> None:
        original(self, event, position)
        original(self, event, position)

    with mock.patch.object(PlayerPointsProjector, "on_PointsAwarded", twice):
        yield


@contextmanager
def policy_awards_twice() -> Iterator[None]:
    """The story-decisions policy awards a chapter's decision bonus on every decision in it,
    as a plain `AwardPoints`, without asking whether the chapter was rewarded."""

    def react(self: StoryDecisions, event: Any) -> Command | None:
        if self.directory.noted(event):
            return None
        owner = self.owner(event)
        progress = self.app._load(event.originator_id) if owner is not None else None
        if owner is None or progress is None:
            return None
        chapter = self.chapter(progress.story_slug, event.fragment_id)
        if chapter == 0:
            return None
        reference = rules.decision_reference(progress.story_slug, chapter)
        return AwardPoints(
            owner, rules.PointSource.STORY_DECISION, rules.STORY_DECISION_BONUS, reference
        )

    with mock.patch.object(StoryDecisions, "react", react):
        yield


@contextmanager
def handler_ignores_update_id() -> Iterator[None]:
    """Idempotency by Telegram update id is gone: a re-delivered update is applied again (the
    other causes, a policy's event or a job's key, are still checked)."""
    original = DianaAggregate._refuse_duplicate

    def refuse(self: DianaAggregate, command: str, cause: Cause) -> None:
        if not cause.causation.startswith("tg:"):
            original(self, command, cause)

    with mock.patch.object(DianaAggregate, "_refuse_duplicate", refuse):
        yield


@dataclass(frozen=True)
class Variant:
    broken: Callable[[], AbstractContextManager[None]]
    words: str
    """Words of the invariant failure that must catch it."""
    read_models: bool | tuple[str, ...] = False
    """The read models the machine needs to see it (each adds set-up time to every run)."""
    steps: int = 12
    """Steps an example may take (shorter examples shrink in fewer runs)."""


VARIANTS: dict[str, Variant] = {
    "spend without a balance check": Variant(spend_without_balance_check, "balance of"),
    "projector applies an event twice": Variant(
        projector_applies_twice, "read model", read_models=("player_points",), steps=8
    ),
    "policy awards twice": Variant(policy_awards_twice, "awarded twice"),
    "handler ignores the update id": Variant(handler_ignores_update_id, "had effects twice"),
}
