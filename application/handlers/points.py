"""Handlers of the points context: registering, earning, spending, admin adjustments."""

from __future__ import annotations

from collections.abc import Callable

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
from dianabot.application.plans import Handler, Plan
from dianabot.domain.cause import Cause
from dianabot.domain.player import Player

PlayerAction = Callable[[Player, Cause], None]


def register_player(app: CoreApplication, command: RegisterPlayer) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        existing = app.get_player(command.telegram_id)
        if existing is not None:
            # A forgotten user who comes back: their name and language are recorded again.
            came_back = existing.come_back(command.display_name, command.language_code, cause)
            return [existing] if came_back else []
        return [
            Player.register(command.telegram_id, command.display_name, cause, command.language_code)
        ]

    return Plan(decide)


def forget_player(app: CoreApplication, command: ForgetPlayer) -> Plan:
    def decide(cause: Cause) -> list[Player]:
        player = app._player(command.telegram_id)
        return [player] if player.forget(cause) else []

    return Plan(decide)


def react(app: CoreApplication, command: ReactToPost) -> Plan:
    return on_player(app, command.telegram_id, lambda p, c: p.react(command.post, command.emoji, c))


def count_message(app: CoreApplication, command: CountMessage) -> Plan:
    return on_player(app, command.telegram_id, lambda p, c: p.count_message(command.message, c))


def answer_poll(app: CoreApplication, command: AnswerPoll) -> Plan:
    return on_player(app, command.telegram_id, lambda p, c: p.answer_poll(command.poll, c))


def check_in(app: CoreApplication, command: CheckIn) -> Plan:
    return on_player(app, command.telegram_id, lambda p, c: p.check_in(c))


def award_points(app: CoreApplication, command: AwardPoints) -> Plan:
    return on_player(
        app,
        command.telegram_id,
        lambda p, c: p.award(command.source, command.amount, command.reference, c),
    )


def spend_points(app: CoreApplication, command: SpendPoints) -> Plan:
    return on_player(
        app,
        command.telegram_id,
        lambda p, c: p.spend(command.amount, command.purpose, command.reference, c),
    )


def grant_points(app: CoreApplication, command: GrantPoints) -> Plan:
    """The bus has checked that the origin is this admin (or a system job)."""
    return on_player(
        app,
        command.telegram_id,
        lambda p, c: p.grant(command.amount, command.admin_id, command.reason, c),
    )


def deduct_points(app: CoreApplication, command: DeductPoints) -> Plan:
    """The bus has checked that the origin is this admin."""
    return on_player(
        app,
        command.telegram_id,
        lambda p, c: p.deduct(command.amount, command.admin_id, command.reason, c),
    )


def on_player(app: CoreApplication, telegram_id: int, act: PlayerAction) -> Plan:
    """Load the player, act on it, save it."""

    def decide(cause: Cause) -> list[Player]:
        player = app._player(telegram_id)
        act(player, cause)
        return [player]

    return Plan(decide)


HANDLERS: dict[type, Handler] = {
    RegisterPlayer: register_player,
    ForgetPlayer: forget_player,
    ReactToPost: react,
    CountMessage: count_message,
    AnswerPoll: answer_poll,
    CheckIn: check_in,
    AwardPoints: award_points,
    SpendPoints: spend_points,
    GrantPoints: grant_points,
    DeductPoints: deduct_points,
}
