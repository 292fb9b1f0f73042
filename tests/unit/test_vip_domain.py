"""VIP on the domain: token hashing, one-time redemption, periods that extend, due expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DuplicateCommand, InsufficientPoints, InvalidInput
from dianabot.domain.ids import vip_token_id
from dianabot.domain.player import Player
from dianabot.domain.vip import (
    AlreadyRefunded,
    InvalidToken,
    StarsPayment,
    TokenExpired,
    TokenUsed,
    VipNotDue,
    VipToken,
    hash_token,
    token_secret,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = "vip-AbCdEfGhIjKlMnOpQrStUvWx_-12345"
_updates = count(1)


def cause(at: datetime = T0, causation: str | None = None) -> Cause:
    return Cause(causation or f"tg:update:{next(_updates)}", "tg:user:7", at)


def names(aggregate: object) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]  # type: ignore[attr-defined]


def issued(expires_in: timedelta = timedelta(days=30), days: int = 30) -> VipToken:
    token = VipToken.issue(hash_token(TOKEN), days, 42, T0 + expires_in, cause())
    token.collect_events()
    return token


def new_player() -> Player:
    player = Player.register(7, "Ana", cause())
    player.collect_events()
    return player


def test_tokens_are_stored_as_the_sha256_of_their_secret() -> None:
    secret = TOKEN.removeprefix("vip-")
    assert token_secret(TOKEN) == secret == token_secret(f"  {secret} ")
    assert hash_token(TOKEN) == hashlib.sha256(secret.encode()).hexdigest()
    token = VipToken.issue(hash_token(TOKEN), 30, 42, T0 + timedelta(days=1), cause())
    assert token.id == vip_token_id(hash_token(TOKEN))
    (event,) = token.collect_events()
    assert type(event).__name__ == "VipTokenIssued"
    assert (event.token_hash, event.days, event.issued_by) == (hash_token(TOKEN), 30, 42)
    assert event.expires_at == T0 + timedelta(days=1)
    assert secret not in repr(vars(event))


@pytest.mark.parametrize(
    "forged", ["", "vip-", "vip-short", "vip-has spaces inside the token", "x" * 80, None, 123]
)
def test_malformed_tokens_are_invalid(forged: object) -> None:
    with pytest.raises(InvalidToken) as refused:
        hash_token(forged)
    assert refused.value.code == "invalid_token"


def test_issue_checks_its_input() -> None:
    with pytest.raises(InvalidInput):
        VipToken.issue("not-a-hash", 30, 42, T0 + timedelta(days=1), cause())
    with pytest.raises(InvalidInput):
        VipToken.issue(hash_token(TOKEN), 0, 42, T0 + timedelta(days=1), cause())
    with pytest.raises(InvalidInput):
        VipToken.issue(hash_token(TOKEN), 30, 42, T0, cause())


def test_a_token_is_redeemed_once() -> None:
    token = issued()
    token.redeem(7, cause())
    assert names(token) == ["VipTokenRedeemed"] and token.redeemed_by == 7
    with pytest.raises(TokenUsed):
        token.redeem(8, cause())
    with pytest.raises(TokenUsed):
        token.redeem(7, cause())
    assert names(token) == []


def test_a_redelivered_update_is_a_duplicate() -> None:
    token = issued()
    update = cause()
    token.redeem(7, update)
    with pytest.raises(DuplicateCommand):
        token.redeem(7, update)


def test_an_expired_token_is_refused() -> None:
    token = issued(expires_in=timedelta(days=1))
    with pytest.raises(TokenExpired) as refused:
        token.redeem(7, cause(T0 + timedelta(days=1)))
    assert refused.value.code == "token_expired"
    token.redeem(7, cause(T0 + timedelta(days=1) - timedelta(seconds=1)))


def test_grant_starts_a_period_and_extends_an_active_one() -> None:
    player = new_player()
    player.grant_vip(30, "token", "vip-token:1", cause())
    assert player.vip_until == T0 + timedelta(days=30) and player.vip_active(T0)
    player.grant_vip(30, "stars", "charge:1", cause(T0 + timedelta(days=10)))
    assert player.vip_until == T0 + timedelta(days=60)  # extended, not replaced
    events = player.collect_events()
    assert [type(e).__name__ for e in events] == ["VipGranted", "VipGranted"]
    assert (events[1].source, events[1].days, events[1].reference) == ("stars", 30, "charge:1")
    assert events[1].until == T0 + timedelta(days=60)
    # After the period ended, a new grant starts from now.
    later = T0 + timedelta(days=100)
    player.grant_vip(7, "admin", "gift", cause(later))
    assert player.vip_until == later + timedelta(days=7)


def test_grant_checks_its_input_and_is_idempotent_per_cause() -> None:
    player = new_player()
    for days, source in [(0, "token"), (-3, "token"), (99999, "token"), (True, "token"), (30, "x")]:
        with pytest.raises(InvalidInput):
            player.grant_vip(days, source, "ref", cause())
    update = cause()
    player.grant_vip(30, "stars", "charge:9", update)
    with pytest.raises(DuplicateCommand):
        player.grant_vip(30, "stars", "charge:9", update)
    assert names(player) == ["VipGranted"]


def test_expiry_only_when_due_and_once_per_period() -> None:
    player = new_player()
    with pytest.raises(VipNotDue):
        player.expire_vip(cause())  # never VIP
    player.grant_vip(30, "token", "t", cause())
    end = T0 + timedelta(days=30)
    assert player.vip_expiry_due(end - timedelta(seconds=1)) is None
    with pytest.raises(VipNotDue) as refused:
        player.expire_vip(cause(end - timedelta(seconds=1)))
    assert refused.value.code == "vip_not_due"
    assert player.vip_expiry_due(end) == end
    player.expire_vip(cause(end))
    events = player.collect_events()
    assert type(events[-1]).__name__ == "VipExpired" and events[-1].until == end
    assert player.vip_expiry_due(end + timedelta(days=1)) is None
    with pytest.raises(VipNotDue):
        player.expire_vip(cause(end + timedelta(days=1)))
    # A new period expires again at its own end.
    player.grant_vip(1, "admin", "again", cause(end + timedelta(days=2)))
    second_end = end + timedelta(days=3)
    player.expire_vip(cause(second_end))
    assert names(player)[-1] == "VipExpired"


def test_expiry_is_idempotent_per_cause() -> None:
    player = new_player()
    player.grant_vip(1, "token", "t", cause())
    job = cause(T0 + timedelta(days=2), causation="job:vip-expiry:7")
    player.expire_vip(job)
    with pytest.raises(DuplicateCommand):
        player.expire_vip(job)


# ----- VIP that pays: besitos, Stars, refunds, the gate, the channel --------------------------


def registered(balance: int = 0) -> Player:
    player = Player.register(7, "Ana", cause())
    if balance:
        player.grant(balance, 1, "test", cause())
    player.collect_events()
    return player


def test_vip_with_besitos_is_refused_when_short_and_records_nothing() -> None:
    player = registered(balance=999)
    with pytest.raises(InsufficientPoints):
        player.buy_vip_with_besitos(cause())
    assert names(player) == [] and player.balance == 999 and player.vip_until is None
    player.grant(1, 1, "test", cause())
    player.collect_events()
    player.buy_vip_with_besitos(cause())
    assert names(player) == ["PointsSpent", "VipGranted"]
    assert player.balance == 0 and player.vip_until == T0 + timedelta(days=30)


def test_a_refund_takes_its_days_back_never_before_now_and_expires_when_over() -> None:
    player = registered()
    payment = StarsPayment.receive(
        "stx1", 7, 250, "XTR", "vip-stars:7:250", 30, True, True, None, cause()
    )
    player.grant_vip(30, "stars", "stx1", cause())
    player.grant_vip(30, "admin", "gift", cause())
    player.collect_events()
    later = T0 + timedelta(days=5)
    payment.refund(1, "asked", cause(later))
    player.shorten_vip(30, "stars-refund", "stx1", cause(later))
    assert player.vip_until == T0 + timedelta(days=30) and names(player) == ["VipShortened"]
    with pytest.raises(AlreadyRefunded):
        payment.refund(1, "again", cause(later))
    player.shorten_vip(30, "stars-refund", "gift", cause(later))
    assert player.vip_until == later and names(player) == ["VipShortened", "VipExpired"]
    player.shorten_vip(30, "stars-refund", "x", cause(later))  # nothing left to take back
    assert names(player) == []


def test_a_charge_id_must_look_like_one() -> None:
    for charge in ("", "a b", "x" * 129, None):
        with pytest.raises(InvalidInput):
            StarsPayment.receive(charge, 7, 250, "XTR", "p", 30, False, False, None, cause())  # type: ignore[arg-type]


def test_the_consent_is_once() -> None:
    player = registered()
    assert not player.adult_confirmed
    player.confirm_adult("v1", cause())
    assert player.adult_confirmed and names(player) == ["AdultContentConfirmed"]
    with pytest.raises(DuplicateCommand):
        player.confirm_adult("v1", cause())


def test_the_channel_state_follows_invites_joins_and_removals() -> None:
    player = registered()
    assert player.vip_channel == "none"
    assert not player.record_vip_channel("left", "", "", True, cause())  # not there: nothing
    assert player.record_vip_channel("invited", "https://t.me/+a", "", True, cause())
    assert (player.vip_channel, player.vip_channel_link) == ("invited", "https://t.me/+a")
    assert not player.record_vip_channel("revoked", "https://t.me/+other", "", True, cause())
    assert player.record_vip_channel("revoked", "https://t.me/+a", "used by 9", True, cause())
    assert (player.vip_channel, player.vip_channel_link) == ("none", None)
    assert player.record_vip_channel("joined", "https://t.me/+b", "", True, cause())
    assert not player.record_vip_channel("joined", "https://t.me/+b", "", True, cause())
    assert player.record_vip_channel("invited", "https://t.me/+b", "", True, cause())
    assert player.vip_channel == "member"  # joined before its link was recorded: still in
    assert player.record_vip_channel("removed", "", "VIP ended", True, cause())
    assert player.vip_channel == "none"
    with pytest.raises(InvalidInput):
        player.record_vip_channel("teleported", "", "", True, cause())
