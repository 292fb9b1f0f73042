"""Who may issue each command: one table over every command type on the bus.

Each row names a command type, a way to build one (for a given acting admin id), and who may
issue it. Every origin below is tried on every command: those allowed get past the check (any
outcome but `not_admin`); the others are refused `not_admin` with nothing recorded. A command
type added to the bus without a row here fails `test_every_command_type_has_a_row`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.story_file import parse_story
from dianabot.application.commands import (
    AnswerPoll,
    AwardBadge,
    AwardEarnedBadges,
    AwardPoints,
    BuyVipWithBesitos,
    Caller,
    ChangeBadge,
    CheckIn,
    Command,
    ConfirmAdult,
    CountMessage,
    DeductPoints,
    DefineBadge,
    ExpireVip,
    FailParkedRetry,
    ForgetPlayer,
    GrantPoints,
    GrantVip,
    InviteToVip,
    IssueVipToken,
    MakeChoice,
    ParkEvent,
    PublishStory,
    ReactToPost,
    RecordCommandFailure,
    RecordConsistencyCheck,
    RecordReconciliation,
    RecordStarsPayment,
    RecordVipChannel,
    RecordVipNotice,
    RedeemVipToken,
    RefundStarsPayment,
    RegisterPlayer,
    RelocateProgress,
    RetireBadge,
    RetryParkedEvent,
    RevokeBadge,
    RevokeLapsedBadges,
    RewardDecision,
    SpendPoints,
    StartStory,
)
from dianabot.application.handlers import HANDLERS
from dianabot.application.results import CONSOLE_ADMIN_ID, Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.badge import BadgeSpec
from dianabot.domain.rules import PointSource

from tests.conftest import ADMIN_ID, make_settings
from tests.samples import SMALL_STORY

USER = 7
OTHER = 8
STRANGER = 777
SPEC = BadgeSpec("fiel", "Fiel", "Siempre vuelve", "🫶", {"kind": "manual"})

ADMIN = {Caller.ADMIN}
ADMIN_OR_SYSTEM = {Caller.ADMIN, Caller.SYSTEM}
PLAYER_OR_SYSTEM = {Caller.PLAYER, Caller.SYSTEM}

Build = Callable[[int], Command]
"""A command, given the admin id the caller acts as (for the commands that record one)."""

TABLE: dict[type[Command], tuple[Build, set[Caller]]] = {
    RegisterPlayer: (lambda a: RegisterPlayer(USER, "Ana"), {*PLAYER_OR_SYSTEM, Caller.ADMIN}),
    ReactToPost: (lambda a: ReactToPost(USER, "chan:1", "❤️"), PLAYER_OR_SYSTEM),
    CountMessage: (lambda a: CountMessage(USER, "group:1"), PLAYER_OR_SYSTEM),
    AnswerPoll: (lambda a: AnswerPoll(USER, "poll:1"), PLAYER_OR_SYSTEM),
    CheckIn: (lambda a: CheckIn(USER), PLAYER_OR_SYSTEM),
    AwardPoints: (lambda a: AwardPoints(USER, PointSource.STORY, 5, "r"), {Caller.SYSTEM}),
    SpendPoints: (lambda a: SpendPoints(USER, 1, "gift", "g"), PLAYER_OR_SYSTEM),
    GrantPoints: (
        lambda a: GrantPoints(USER, admin_id=a, amount=10, reason="r"),
        ADMIN_OR_SYSTEM,
    ),
    DeductPoints: (lambda a: DeductPoints(USER, admin_id=a, amount=1, reason="r"), ADMIN),
    ForgetPlayer: (lambda a: ForgetPlayer(USER), ADMIN),
    DefineBadge: (lambda a: DefineBadge(SPEC), ADMIN_OR_SYSTEM),
    ChangeBadge: (lambda a: ChangeBadge(SPEC), ADMIN),
    RetireBadge: (lambda a: RetireBadge("fiel", "r"), ADMIN),
    AwardBadge: (lambda a: AwardBadge("fiel", USER, ("e:1",)), ADMIN_OR_SYSTEM),
    RevokeBadge: (lambda a: RevokeBadge("fiel", USER, "r"), ADMIN_OR_SYSTEM),
    PublishStory: (lambda a: PublishStory(parse_story(SMALL_STORY, "s.yaml")), ADMIN_OR_SYSTEM),
    StartStory: (lambda a: StartStory(USER, "prueba"), PLAYER_OR_SYSTEM),
    MakeChoice: (lambda a: MakeChoice(USER, "a_b", "prueba"), PLAYER_OR_SYSTEM),
    RelocateProgress: (lambda a: RelocateProgress(USER, "prueba"), ADMIN_OR_SYSTEM),
    IssueVipToken: (lambda a: IssueVipToken(a, 30), ADMIN),
    RedeemVipToken: (lambda a: RedeemVipToken(USER, "vip-nope"), {Caller.PLAYER}),
    GrantVip: (lambda a: GrantVip(USER, 3, "admin", "r"), ADMIN_OR_SYSTEM),
    ExpireVip: (lambda a: ExpireVip(USER), ADMIN_OR_SYSTEM),
    AwardEarnedBadges: (
        lambda a: AwardEarnedBadges(USER, ("primeros-besitos",), ("e:1",)),
        {Caller.SYSTEM},
    ),
    ParkEvent: (lambda a: ParkEvent("p", 7, "s", 1, "E", "boom", 3), {Caller.SYSTEM}),
    RetryParkedEvent: (lambda a: RetryParkedEvent("p", 7, None), ADMIN_OR_SYSTEM),
    FailParkedRetry: (lambda a: FailParkedRetry("p", 7, "boom"), ADMIN_OR_SYSTEM),
    RecordCommandFailure: (
        lambda a: RecordCommandFailure("GrantPoints", "7", USER, "conflict", "gave up", "admin:1"),
        {Caller.SYSTEM},
    ),
    RecordConsistencyCheck: (
        lambda a: RecordConsistencyCheck(USER, True, 0, 1),
        {Caller.SYSTEM},
    ),
    RecordReconciliation: (
        lambda a: RecordReconciliation(1, True, 0, (("row_differs", 0),)),
        {Caller.SYSTEM},
    ),
    RevokeLapsedBadges: (
        lambda a: RevokeLapsedBadges(USER, ("el-divan",), ("e:1",)),
        {Caller.SYSTEM},
    ),
    RewardDecision: (
        lambda a: RewardDecision(USER, "prueba", 1, ("primera-decision",), ("e:1",)),
        {Caller.SYSTEM},
    ),
    InviteToVip: (
        lambda a: InviteToVip(USER, "prueba", "a", "a_b", ("e:1",)),
        {Caller.SYSTEM},
    ),
    BuyVipWithBesitos: (lambda a: BuyVipWithBesitos(USER), PLAYER_OR_SYSTEM),
    RecordStarsPayment: (
        lambda a: RecordStarsPayment(
            USER, charge_id="stx1", amount=250, currency="XTR", payload="p", days=30
        ),
        PLAYER_OR_SYSTEM,
    ),
    RefundStarsPayment: (
        lambda a: RefundStarsPayment(USER, charge_id="stx1", admin_id=a),
        ADMIN,
    ),
    ConfirmAdult: (lambda a: ConfirmAdult(USER), {Caller.PLAYER}),
    RecordVipChannel: (lambda a: RecordVipChannel(USER, change="left"), PLAYER_OR_SYSTEM),
    RecordVipNotice: (
        lambda a: RecordVipNotice(USER, kind="vip_invitation", reference="e:1"),
        {Caller.SYSTEM},
    ),
}

_updates = iter(range(1, 10**6))


def origins() -> list[tuple[str, Callable[[], Origin], int, Caller | None]]:
    """(name, origin, the admin id it acts as, the kind of caller it is, if any)."""
    return [
        ("configured admin", lambda: Origin.admin(ADMIN_ID), ADMIN_ID, Caller.ADMIN),
        (
            "admin via Telegram",
            lambda: Origin.telegram(next(_updates), ADMIN_ID),
            ADMIN_ID,
            Caller.ADMIN,
        ),
        ("local console", Origin.console, CONSOLE_ADMIN_ID, Caller.ADMIN),
        ("the player", lambda: Origin.telegram(next(_updates), USER), ADMIN_ID, Caller.PLAYER),
        ("job", lambda: Origin.system("test", str(next(_updates))), ADMIN_ID, Caller.SYSTEM),
        ("policy", lambda: Origin.policy("test", uuid.uuid4(), 1), ADMIN_ID, Caller.SYSTEM),
        ("another player", lambda: Origin.telegram(next(_updates), OTHER), ADMIN_ID, None),
        ("unknown admin", lambda: Origin.admin(STRANGER), STRANGER, None),
        ("0 not from the console", lambda: Origin.admin(CONSOLE_ADMIN_ID), CONSOLE_ADMIN_ID, None),
        ("no one", lambda: Origin("x", "somebody"), ADMIN_ID, None),
    ]


@pytest.fixture
def app() -> Iterator[DianaApplication]:
    with bootstrap(make_settings("memory://")) as wired:
        app = wired.app
        for user in (USER, OTHER):
            assert app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok
        yield app


def head(app: Any) -> int:
    return app.recorder.max_notification_id() or 0


def test_every_command_type_has_a_row() -> None:
    assert set(TABLE) == set(HANDLERS), "add the new command to TABLE, saying who may call it"


@pytest.mark.parametrize("command_type", list(TABLE), ids=lambda t: t.__name__)
def test_who_may_issue_each_command(app: DianaApplication, command_type: type[Command]) -> None:
    build, callers = TABLE[command_type]
    assert set(command_type.callers) == callers
    for name, origin, acting, kind in origins():
        command = build(acting)
        before = head(app)
        result = app.bus.handle(command, origin())
        if kind in callers:
            assert result.outcome != "not_admin", (name, result)
        else:
            assert result.outcome == "not_admin", (name, result)
            assert result.events == () and head(app) == before, name


@pytest.mark.parametrize(
    ("command", "origin"),
    [
        (GrantPoints(USER, admin_id=STRANGER, amount=10, reason="r"), Origin.console),
        (
            GrantPoints(USER, admin_id=STRANGER, amount=10, reason="r"),
            lambda: Origin.admin(ADMIN_ID),
        ),
        (
            DeductPoints(USER, admin_id=CONSOLE_ADMIN_ID, amount=1, reason="r"),
            lambda: Origin.admin(ADMIN_ID),
        ),
        (DeductPoints(USER, admin_id=ADMIN_ID, amount=1, reason="r"), Origin.console),
        (IssueVipToken(STRANGER, 30), lambda: Origin.admin(ADMIN_ID)),
        (IssueVipToken(ADMIN_ID, 30), Origin.console),
    ],
    ids=lambda c: type(c).__name__ if isinstance(c, Command) else "",
)
def test_an_admin_cannot_record_another_admins_id(
    app: DianaApplication, command: Command, origin: Callable[[], Origin]
) -> None:
    before = head(app)
    assert app.bus.handle(command, origin()).outcome == "not_admin"
    assert head(app) == before


def test_the_console_acts_as_admin_zero(app: DianaApplication) -> None:
    result = app.grant_points(CONSOLE_ADMIN_ID, USER, 10, "console", Origin.console())
    assert result.ok and result.events[0].fields["admin_id"] == CONSOLE_ADMIN_ID
    assert result.events[0].fields["actor"] == "admin:0"
