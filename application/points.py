"""Use cases of the points context: registering, earning, spending, admin adjustments."""

from __future__ import annotations

from collections.abc import Callable

from dianabot.application.app import CoreApplication
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.cause import Cause
from dianabot.domain.player import Player
from dianabot.domain.rules import PointSource

PlayerAction = Callable[[Player, Cause], None]


class PointsCommands(CoreApplication):
    def register_player(
        self, telegram_id: int, display_name: str, origin: Origin, language_code: str = ""
    ) -> CommandResult:
        """Idempotent: registering an existing user records nothing and succeeds."""

        def decide(cause: Cause) -> list[Player]:
            if self.get_player(telegram_id) is not None:
                return []
            return [Player.register(telegram_id, display_name, cause, language_code)]

        return self._command(telegram_id, decide, origin)

    def react(self, telegram_id: int, post: str, emoji: str, origin: Origin) -> CommandResult:
        return self._on_player(telegram_id, origin, lambda p, c: p.react(post, emoji, c))

    def count_message(self, telegram_id: int, message: str, origin: Origin) -> CommandResult:
        return self._on_player(telegram_id, origin, lambda p, c: p.count_message(message, c))

    def answer_poll(self, telegram_id: int, poll: str, origin: Origin) -> CommandResult:
        return self._on_player(telegram_id, origin, lambda p, c: p.answer_poll(poll, c))

    def check_in(self, telegram_id: int, origin: Origin) -> CommandResult:
        return self._on_player(telegram_id, origin, lambda p, c: p.check_in(c))

    def award_points(
        self, telegram_id: int, source: PointSource, amount: int, reference: str, origin: Origin
    ) -> CommandResult:
        return self._on_player(
            telegram_id, origin, lambda p, c: p.award(source, amount, reference, c)
        )

    def spend_points(
        self, telegram_id: int, amount: int, purpose: str, reference: str, origin: Origin
    ) -> CommandResult:
        return self._on_player(
            telegram_id, origin, lambda p, c: p.spend(amount, purpose, reference, c)
        )

    def grant_points(
        self, admin_id: int, telegram_id: int, amount: int, reason: str, origin: Origin
    ) -> CommandResult:
        return self._as_admin(
            admin_id, telegram_id, origin, lambda p, c: p.grant(amount, admin_id, reason, c)
        )

    def deduct_points(
        self, admin_id: int, telegram_id: int, amount: int, reason: str, origin: Origin
    ) -> CommandResult:
        return self._as_admin(
            admin_id, telegram_id, origin, lambda p, c: p.deduct(amount, admin_id, reason, c)
        )

    def _as_admin(
        self, admin_id: int, telegram_id: int, origin: Origin, act: PlayerAction
    ) -> CommandResult:
        def decide(cause: Cause) -> list[Player]:
            self._require_admin(admin_id)
            player = self._player(telegram_id)
            act(player, cause)
            return [player]

        return self._command(telegram_id, decide, origin)

    def _on_player(self, telegram_id: int, origin: Origin, act: PlayerAction) -> CommandResult:
        def decide(cause: Cause) -> list[Player]:
            player = self._player(telegram_id)
            act(player, cause)
            return [player]

        return self._command(telegram_id, decide, origin)
