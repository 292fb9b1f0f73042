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
    GrantPoints,
    ReactToPost,
    RegisterPlayer,
    SpendPoints,
)
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.rules import PointSource


class PointsCommands(CoreApplication):
    def register_player(
        self, telegram_id: int, display_name: str, origin: Origin, language_code: str = ""
    ) -> CommandResult:
        """Idempotent: registering an existing user records nothing and succeeds."""
        return self.bus.handle(RegisterPlayer(telegram_id, display_name, language_code), origin)

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
