"""Commands validate at the boundary: Telegram ids outside Telegram's range are refused
(`invalid_input`, nothing recorded) wherever an id enters; free text from Telegram is cleaned,
not refused, so an odd display name locks no one out and every stored value can be projected."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from dianabot.application.commands import (
    AwardBadge,
    Caller,
    Command,
    GrantPoints,
    PlayerCommand,
    RevokeBadge,
)
from dianabot.application.handlers import HANDLERS
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.badge import BadgeSpec
from dianabot.domain.rules import MAX_TELEGRAM_ID

from tests.conftest import ADMIN_ID, by_system
from tests.integration.test_authorisation import TABLE

USER = 7
BAD_IDS = [2**63, 2**52, 0, -1, True]


def head(app: Any) -> int:
    return app.recorder.max_notification_id() or 0


def origin_for(command: Command) -> Origin:
    """An origin allowed to issue `command`, so the id check is what answers."""
    if Caller.SYSTEM in command.callers:
        return by_system()
    if Caller.ADMIN in command.callers:
        return Origin.admin(ADMIN_ID)
    return Origin.telegram(1, command.telegram_ids()[0])


def commands_naming(bad: int) -> list[Command]:
    """Every command type of the bus that names a user, naming `bad` instead."""
    named = []
    for build, _ in TABLE.values():
        command = build(ADMIN_ID)
        if command.telegram_ids():
            named.append(dataclasses.replace(command, telegram_id=bad))  # type: ignore[type-var]
    return named


def test_every_command_naming_a_user_is_covered() -> None:
    expected = {t for t in HANDLERS if issubclass(t, PlayerCommand)} | {AwardBadge, RevokeBadge}
    assert {type(command) for command in commands_naming(2**63)} == expected


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_ids_outside_telegrams_range_are_refused_everywhere(
    app: DianaApplication, bad: int
) -> None:
    assert app.register_player(USER, "Ana", Origin.telegram(1, USER)).ok
    before = head(app)
    for command in commands_naming(bad):
        result = app.bus.handle(command, origin_for(command))
        # A player-only command from `tg:user:True` has no player to match: refused as well.
        expected = {"invalid_input"} if bad is not True else {"invalid_input", "not_admin"}
        assert result.outcome in expected, (type(command).__name__, result)
    if bad != 0:  # 0 is the console's admin id, which a system job records
        command = GrantPoints(USER, admin_id=bad, amount=1, reason="x")
        assert app.bus.handle(command, by_system()).outcome == "invalid_input"
    assert head(app) == before


def test_the_largest_telegram_id_is_accepted(app: DianaApplication) -> None:
    top = MAX_TELEGRAM_ID
    assert app.register_player(top, "Top", Origin.telegram(1, top)).ok
    assert app.check_in(top, Origin.telegram(2, top)).ok


def stored(result: Any, name: str) -> dict[str, Any]:
    return dict(next(e for e in result.events if e.name == name).fields)


def test_names_are_cleaned_not_refused(app: DianaApplication) -> None:
    nul = app.register_player(1, "An\x00a\u200b \x1b[31m", Origin.telegram(1, 1), "e\x00s\n")
    assert nul.ok
    fields = stored(nul, "PlayerRegistered")
    assert fields["display_name"].text == "Ana\u200b [31m" and fields["language_code"].text == "es"
    long = app.register_player(2, "x" * 10_000, Origin.telegram(2, 2), "y" * 100)
    fields = stored(long, "PlayerRegistered")
    assert fields["display_name"].text == "x" * 64 and fields["language_code"].text == "y" * 8
    empty = app.register_player(3, "\x00\x01 \t", Origin.telegram(3, 3), "\x00")
    fields = stored(empty, "PlayerRegistered")
    assert fields["display_name"].text == "user 3" and fields["language_code"].text == "es"
    surrogate = app.register_player(4, "Bad\ud800Name", Origin.telegram(4, 4))
    assert stored(surrogate, "PlayerRegistered")["display_name"].text == "BadName"
    assert app.get_player(1).display_name.text == "Ana\u200b [31m"  # as stored, on every store


def test_reasons_and_payment_references_are_cleaned_and_cut(app: DianaApplication) -> None:
    assert app.register_player(USER, "Ana", Origin.telegram(1, USER)).ok
    grant = app.grant_points(ADMIN_ID, USER, 5, "sor\x00teo\n" + "z" * 500, Origin.admin(ADMIN_ID))
    reason = stored(grant, "PointsAdjusted")["reason"]
    assert reason == "sorteo " + "z" * 193 and len(reason) == 200
    vip = app.grant_vip(USER, 3, "stars", "charge\x00:1", by_system("stars"))
    assert stored(vip, "VipGranted")["reference"] == "charge:1"
    react = app.react(USER, "chan\x00:1", "❤️", Origin.telegram(2, USER))
    assert stored(react, "ReactionRecorded")["post"] == "chan:1"
    before = head(app)
    refused = app.grant_points(ADMIN_ID, USER, 5, "\x00\x00", Origin.admin(ADMIN_ID))
    assert refused.outcome == "invalid_input" and head(app) == before


def test_badge_reasons_are_cleaned_and_cut(app: DianaApplication) -> None:
    spec = BadgeSpec("fiel", "Fi\x00el", "Siempre\x07 vuelve", "🫶", {"kind": "manual"})
    defined = app.define_badge(spec, Origin.admin(ADMIN_ID))
    assert stored(defined, "BadgeDefined")["name"] == "Fiel"
    retired = app.retire_badge("fiel", "vie\x00ja " + "r" * 1000, Origin.admin(ADMIN_ID))
    reason = stored(retired, "BadgeRetired")["reason"]
    assert reason.startswith("vieja r") and len(reason) == 280
