"""The VIP use cases on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.vip import hash_token, token_secret

from tests.conftest import ADMIN_ID
from tests.unit.test_progress import small_story

USER, OTHER = 7, 8
_update = iter(range(1, 10**6))


def tg(user: int = USER) -> Origin:
    return Origin.telegram(next(_update), user)


def head(app: DianaApplication) -> int:
    return app.recorder.max_notification_id() or 0


def all_stored_bytes(app: DianaApplication) -> bytes:
    return b"".join(n.state for n in app.recorder.select_notifications(1, 10_000))


@pytest.fixture
def users(app: DianaApplication) -> DianaApplication:
    assert app.register_player(USER, "Ana", tg()).ok
    assert app.register_player(OTHER, "Bruno", tg(OTHER)).ok
    return app


def issue(app: DianaApplication, days: int = 30, valid_days: int = 30) -> str:
    result = app.issue_vip_token(ADMIN_ID, days, Origin.admin(ADMIN_ID), valid_days=valid_days)
    assert result.ok and result.event_names() == ["VipTokenIssued"]
    return result.details["token"]


def test_issued_tokens_are_stored_only_as_hashes(users: DianaApplication) -> None:
    app = users
    result = app.issue_vip_token(ADMIN_ID, 30, Origin.admin(ADMIN_ID))
    token = result.details["token"]
    assert token.startswith("vip-") and len(token) <= 64
    fields = result.events[0].fields
    assert fields["token_hash"] == hash_token(token) and fields["days"] == 30
    assert fields["issued_by"] == ADMIN_ID
    stored = all_stored_bytes(app)
    assert token_secret(token).encode() not in stored
    assert hash_token(token).encode() in stored
    other = app.issue_vip_token(ADMIN_ID, 30, Origin.admin(ADMIN_ID)).details["token"]
    assert other != token


def test_only_admins_issue_tokens(users: DianaApplication) -> None:
    before = head(users)
    refused = users.issue_vip_token(999, 30, Origin.admin(999))
    assert refused.outcome == "not_admin" and "token" not in refused.details
    assert users.issue_vip_token(ADMIN_ID, 0, Origin.admin(ADMIN_ID)).outcome == "invalid_input"
    assert head(users) == before


def test_redeem_grants_vip_once(users: DianaApplication, clock: ManualClock) -> None:
    app = users
    token = issue(app)
    result = app.redeem_vip_token(USER, token, tg())
    assert result.ok and result.event_names() == ["VipTokenRedeemed", "VipGranted"]
    positions = [e.position for e in result.events]
    assert positions[1] == positions[0] + 1  # one transaction
    granted = result.events[1].fields
    assert (granted["source"], granted["days"]) == ("token", 30)
    assert granted["until"] == clock.now() + timedelta(days=30)
    assert result.details["vip_until"] == granted["until"]
    assert app.vip_until(USER) == granted["until"]

    before = head(app)
    again = app.redeem_vip_token(OTHER, token, tg(OTHER))
    assert again.outcome == "token_used"
    assert app.redeem_vip_token(USER, token, tg()).outcome == "token_used"
    assert head(app) == before and app.vip_until(OTHER) is None


def test_forged_malformed_and_expired_tokens_write_nothing(
    users: DianaApplication, clock: ManualClock
) -> None:
    app = users
    token = issue(app, valid_days=2)
    before = head(app)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert app.redeem_vip_token(USER, forged, tg()).outcome == "invalid_token"
    assert app.redeem_vip_token(USER, "hola", tg()).outcome == "invalid_token"
    assert app.redeem_vip_token(USER, "", tg()).outcome == "invalid_token"
    assert app.redeem_vip_token(999, token, tg(999)).outcome == "unknown_user"
    clock.advance(days=2)
    expired = app.redeem_vip_token(USER, token, tg())
    assert expired.outcome == "token_expired" and "expired" in expired.message
    assert head(app) == before
    assert app.vip_until(USER) is None


def test_grants_extend_an_active_period(users: DianaApplication, clock: ManualClock) -> None:
    app = users
    start = clock.now()
    assert app.redeem_vip_token(USER, issue(app), tg()).ok
    clock.advance(days=10)
    stars = app.grant_vip(USER, 30, "stars", "charge:abc", Origin.system("stars", "charge:abc"))
    assert stars.ok and stars.event_names() == ["VipGranted"]
    assert stars.events[0].fields["source"] == "stars"
    assert app.vip_until(USER) == start + timedelta(days=60)
    assert app.grant_vip(USER, 30, "gift", "x", Origin.admin(ADMIN_ID)).outcome == "invalid_input"
    assert app.grant_vip(999, 30, "admin", "x", Origin.admin(ADMIN_ID)).outcome == "unknown_user"


def test_expiry_job_expires_each_ended_period_once(
    users: DianaApplication, clock: ManualClock
) -> None:
    app = users
    start = clock.now()
    assert app.grant_vip(USER, 1, "admin", "short", Origin.admin(ADMIN_ID)).ok
    assert app.grant_vip(OTHER, 5, "stars", "long", Origin.system("stars", "long")).ok
    assert app.expire_due_vips().expired == ()

    clock.advance(days=1)
    run = app.expire_due_vips()
    assert run.expired == (USER,) and run.failed == {}
    expired = [
        app.mapper.to_domain_event(n)
        for n in app.recorder.select_notifications(1, 1000)
        if n.topic.endswith("VipExpired")
    ]
    assert len(expired) == 1
    assert expired[0].until == start + timedelta(days=1)
    assert expired[0].timestamp == clock.now() and expired[0].actor == "system:vip-expiry"
    assert app.expire_due_vips().expired == ()

    # A restarted process (no memory of what it read) rescans and still expires nothing twice.
    app.__dict__.pop("_vip_watch")
    clock.advance(days=4)
    assert app.expire_due_vips().expired == (OTHER,)
    assert app.expire_due_vips().expired == ()

    # A new period after expiry expires again at its own end.
    assert app.grant_vip(USER, 2, "stars", "renewal", Origin.system("stars", "renewal")).ok
    clock.advance(days=1)
    assert app.expire_due_vips().expired == ()
    clock.advance(days=1)
    assert app.expire_due_vips().expired == (USER,)
    names = [n.topic.rsplit(".", 1)[-1] for n in app.recorder.select_notifications(1, 1000)]
    assert names.count("VipExpired") == 3


def test_an_extension_before_the_job_runs_prevents_expiry(
    users: DianaApplication, clock: ManualClock
) -> None:
    app = users
    assert app.grant_vip(USER, 1, "admin", "a", Origin.admin(ADMIN_ID)).ok
    clock.advance(hours=12)
    assert app.grant_vip(USER, 1, "stars", "b", Origin.system("stars", "b")).ok
    clock.advance(days=1)
    assert app.expire_due_vips().expired == ()
    clock.advance(days=1)
    assert app.expire_due_vips().expired == (USER,)


def test_redeeming_a_token_opens_the_vip_arc(users: DianaApplication) -> None:
    """Spec scenario 3 (without the badge policy): VIP opens the VIP fragment."""
    app = users
    assert app.grant_points(ADMIN_ID, USER, 50, "seed", Origin.admin(ADMIN_ID)).ok
    assert app.publish_story(small_story(), Origin.admin(ADMIN_ID)).ok
    assert app.start_story(USER, tg(), "prueba").ok
    assert app.make_choice(USER, "a_c", tg(), "prueba").ok
    assert app.make_choice(USER, "c_d", tg(), "prueba").outcome == "vip_required"
    assert app.redeem_vip_token(USER, issue(app), tg()).ok
    assert app.make_choice(USER, "c_d", tg(), "prueba").ok
    assert app.get_progress(USER, "prueba").fragment_id == "d"
