"""Use cases of the points context: registering, earning, spending, admin adjustments.

Each method is a blocking shorthand for one command on the bus (`application.commands`,
handled by `application.handlers.points`).
"""

from __future__ import annotations

from dianabot.application.app import CoreApplication
from dianabot.application.commands import (
    AnswerPoll,
    AwardPoints,
    CheckIn,
    CountMessage,
    DeductPoints,
    ForgetPlayer,
    GrantPoints,
    ReactToPost,
    RegisterPlayer,
    SpendPoints,
)
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.ids import player_id
from dianabot.domain.personal import subject_of
from dianabot.domain.rules import PointSource


class PointsCommands(CoreApplication):
    def register_player(
        self, telegram_id: int, display_name: str, origin: Origin, language_code: str = ""
    ) -> CommandResult:
        """Idempotent: registering an existing user records nothing and succeeds."""
        return self.bus.handle(RegisterPlayer(telegram_id, display_name, language_code), origin)

    def forget_player(self, telegram_id: int, origin: Origin) -> CommandResult:
        """Erase a user's personal data without editing history: record `PlayerForgotten`
        (nothing if already forgotten), then destroy the user's key and delete the Player's
        snapshots (`PersonalDataStore.erase`). Run again, it repeats the erasure (idempotent),
        which also finishes one interrupted after the event was recorded."""
        result = self.bus.handle(ForgetPlayer(telegram_id), origin)
        if not result.ok:
            return result
        self.flush_snapshots()  # none of ours, taken before the event, lands after the erasure
        aggregate = player_id(telegram_id)
        erased = self.personal_data.erase(subject_of(telegram_id), [aggregate])
        self.evict_cached(aggregate)  # a cached copy holds decrypted values
        return result.with_details(
            subject=subject_of(telegram_id),
            keys_deleted=erased.keys_deleted,
            snapshots_deleted=erased.snapshots_deleted,
        )

    def react(self, telegram_id: int, post: str, emoji: str, origin: Origin) -> CommandResult:
        return self.bus.handle(ReactToPost(telegram_id, post, emoji), origin)

    def count_message(self, telegram_id: int, message: str, origin: Origin) -> CommandResult:
        return self.bus.handle(CountMessage(telegram_id, message), origin)

    def answer_poll(self, telegram_id: int, poll: str, origin: Origin) -> CommandResult:
        return self.bus.handle(AnswerPoll(telegram_id, poll), origin)

    def check_in(self, telegram_id: int, origin: Origin) -> CommandResult:
        return self.bus.handle(CheckIn(telegram_id), origin)

    def award_points(
        self, telegram_id: int, source: PointSource, amount: int, reference: str, origin: Origin
    ) -> CommandResult:
        return self.bus.handle(AwardPoints(telegram_id, source, amount, reference), origin)

    def spend_points(
        self, telegram_id: int, amount: int, purpose: str, reference: str, origin: Origin
    ) -> CommandResult:
        return self.bus.handle(SpendPoints(telegram_id, amount, purpose, reference), origin)

    def grant_points(
        self, admin_id: int, telegram_id: int, amount: int, reason: str, origin: Origin
    ) -> CommandResult:
        return self.bus.handle(
            GrantPoints(telegram_id, admin_id=admin_id, amount=amount, reason=reason), origin
        )

    def deduct_points(
        self, admin_id: int, telegram_id: int, amount: int, reason: str, origin: Origin
    ) -> CommandResult:
        return self.bus.handle(
            DeductPoints(telegram_id, admin_id=admin_id, amount=amount, reason=reason), origin
        )
