"""VIP that pays, on every store (memory, SQLite, PostgreSQL): Telegram Stars payments by charge
id (twice, concurrently, refunded), VIP with besitos (never partial), the age and consent gate,
the VIP channel's records, and the vip-channel follower's exactly-once effects through its port
(a restarted runner does nothing again)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import (
    BuyVipWithBesitos,
    ConfirmAdult,
    GrantPoints,
    RecordStarsPayment,
    RecordVipChannel,
    RefundStarsPayment,
)
from dianabot.application.policies.vip_channel import ENDED, WELCOME, VipChannel
from dianabot.application.results import CommandResult, Origin
from dianabot.domain.vip import VIP_BESITOS_COST
from dianabot.projections.subscriptions import PolicyRunner

from tests.conftest import ADMIN_ID
from tests.policies import as_user, logged, register

ANA, LUIS = 31, 32


def payment(user: int, charge: str, **options: Any) -> RecordStarsPayment:
    return RecordStarsPayment(
        user,
        charge_id=charge,
        amount=250,
        currency="XTR",
        payload=f"vip-stars:{user}:250",
        days=30,
        **options,
    )


def pay(services: Services, user: int, charge: str, **options: Any) -> CommandResult:
    return services.app.bus.handle(payment(user, charge, **options), as_user(user))


def refund(services: Services, user: int, charge: str, origin: Origin | None = None) -> Any:
    command = RefundStarsPayment(user, charge_id=charge, admin_id=ADMIN_ID)
    return services.app.bus.handle(command, origin or Origin.admin(ADMIN_ID))


@pytest.fixture
def users(services: Services) -> Services:
    register(services, ANA, LUIS)
    return services


def test_a_charge_extends_vip_once_whatever_delivers_it(users: Services, clock: Any) -> None:
    assert pay(users, ANA, "stxA").ok
    assert pay(users, ANA, "stxA").outcome == "duplicate"  # another update, the same charge
    assert pay(users, LUIS, "stxA").outcome == "duplicate"  # a charge is one user's, once
    results: list[str] = []

    def racing() -> None:
        results.append(pay(users, ANA, "stxB").outcome)

    threads = [threading.Thread(target=racing) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate"] * 3 + ["ok"]
    player = users.app.get_player(ANA)
    assert player is not None and player.vip_until == clock.now() + timedelta(days=60)
    assert [p.charge_id for p in logged(users, "StarsPaymentReceived")] == ["stxA", "stxB"]
    assert users.app.get_player(LUIS).vip_until is None  # type: ignore[union-attr]


def test_a_malformed_charge_records_nothing(users: Services) -> None:
    assert pay(users, ANA, "stx A; drop").outcome == "invalid_input"
    assert logged(users, "StarsPaymentReceived", "VipGranted") == []


def test_a_refund_takes_back_that_payments_days_once_and_only_an_admin_refunds(
    users: Services, clock: ManualClock
) -> None:
    assert pay(users, ANA, "stxR1").ok
    assert pay(users, ANA, "stxR2", is_recurring=True).ok  # 60 days stacked
    assert refund(users, ANA, "stxR1", Origin.telegram(99_000, ANA)).outcome == "not_admin"
    assert refund(users, LUIS, "stxR1").outcome == "unknown_charge"  # not Luis's payment
    assert refund(users, ANA, "stxNONE").outcome == "unknown_charge"
    clock.advance(days=10)
    first = refund(users, ANA, "stxR2")
    assert first.ok
    player = users.app.get_player(ANA)
    assert player is not None and player.vip_active(clock.now())
    assert player.vip_until == clock.now() + timedelta(days=20)  # 50 left, 30 taken back
    assert refund(users, ANA, "stxR2").outcome == "already_refunded"
    assert refund(users, ANA, "stxR1").ok  # the other 30: ends now
    player = users.app.get_player(ANA)
    assert player is not None and not player.vip_active(clock.now())
    assert [e.until for e in logged(users, "VipExpired")] == [clock.now()]
    assert [e.reference for e in logged(users, "VipShortened")] == ["stxR2", "stxR1"]
    projections = users.projections
    assert projections is not None
    projections.catch_up()
    assert projections.reconcile().consistent


def test_vip_with_besitos_is_all_or_nothing(users: Services) -> None:
    buy = BuyVipWithBesitos(ANA)
    refused = users.app.bus.handle(buy, as_user(ANA))
    assert refused.outcome == "insufficient_points" and refused.events == ()
    grant = GrantPoints(ANA, admin_id=ADMIN_ID, amount=VIP_BESITOS_COST + 5, reason="t")
    assert users.app.bus.handle(grant, Origin.admin(ADMIN_ID)).ok
    bought = users.app.bus.handle(buy, as_user(ANA))
    assert bought.ok
    assert [e.name for e in bought.events] == ["PointsSpent", "VipGranted"]
    assert len({e.position for e in bought.events}) == 2
    assert users.app.get_player(ANA).balance == 5  # type: ignore[union-attr]
    assert users.app.bus.handle(buy, as_user(ANA)).outcome == "insufficient_points"
    assert users.app.bus.handle(BuyVipWithBesitos(ANA), as_user(LUIS)).outcome == "not_admin"


def test_the_consent_is_recorded_once_and_only_by_the_user(users: Services) -> None:
    origin = as_user(ANA)
    assert users.app.bus.handle(ConfirmAdult(ANA), origin).ok
    assert users.app.bus.handle(ConfirmAdult(ANA), as_user(ANA)).outcome == "duplicate"
    assert users.app.bus.handle(ConfirmAdult(LUIS), as_user(ANA)).outcome == "not_admin"
    assert users.app.get_player(ANA).adult_confirmed  # type: ignore[union-attr]
    assert not users.app.get_player(LUIS).adult_confirmed  # type: ignore[union-attr]
    assert len(logged(users, "AdultContentConfirmed")) == 1


class FakeChannel:
    """The port, recording what the follower asked of Telegram."""

    has_channel = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | str]] = []

    def create_invite(self, telegram_id: int) -> str:
        self.calls.append(("invite", telegram_id))
        return f"https://t.me/+link{len(self.calls)}"

    def tell(self, telegram_id: int, notice: str, **fields: Any) -> bool:
        self.calls.append((notice, telegram_id))
        return True

    def remove(self, telegram_id: int) -> None:
        self.calls.append(("remove", telegram_id))

    def revoke(self, invite_link: str) -> None:
        self.calls.append(("revoke", invite_link))


def follower(services: Services, port: FakeChannel) -> PolicyRunner:
    app = services.app
    return PolicyRunner(app, event_log(app), [VipChannel(app, port)])


def test_the_follower_invites_removes_and_never_twice(users: Services, clock: ManualClock) -> None:
    port = FakeChannel()
    assert pay(users, ANA, "stxF1").ok
    follower(users, port).catch_up()
    assert port.calls == [("invite", ANA), (WELCOME, ANA)]
    joined = RecordVipChannel(ANA, change="joined", invite_link="https://t.me/+link1")
    assert users.app.bus.handle(joined, as_user(ANA)).ok
    assert users.app.bus.handle(joined, as_user(ANA)).events == ()  # known already
    assert pay(users, ANA, "stxF2", is_recurring=True).ok  # a member: no second link
    clock.advance(days=61)
    assert users.app.expire_due_vips().expired == (ANA,)
    restarted = FakeChannel()
    follower(users, restarted).catch_up()  # a restarted bot: from the recorded position
    assert restarted.calls == [(ENDED, ANA), ("remove", ANA)]
    again = FakeChannel()
    follower(users, again).catch_up()
    assert again.calls == []
    assert users.app.get_player(ANA).vip_channel == "none"  # type: ignore[union-attr]
    changes = [e.change for e in logged(users, "VipChannelChanged")]
    assert changes == ["invited", "joined", "removed"]
