"""The catalogue's invariants fail when what they guard is broken: a row of the log edited behind
the application's back (the audit chain), a VIP flag that disagrees with the period."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantPoints, GrantVip, RegisterPlayer
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from sqlalchemy import update

from tests.conftest import ADMIN_ID, make_settings
from tests.kit import invariants as inv


def populate(services: Services) -> None:
    bus = services.app.bus
    for user in (1, 2):
        assert bus.handle(RegisterPlayer(user, f"u{user}"), Origin.telegram(user, user)).ok
        grant = GrantPoints(user, admin_id=ADMIN_ID, amount=30, reason="kit")
        assert bus.handle(grant, Origin.admin(ADMIN_ID)).ok


def test_audit_chain_verifies_until_a_row_is_edited(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    with bootstrap(make_settings(f"sqlite:///{path}"), clock=ManualClock()) as services:
        populate(services)
        inv.audit_chain_verifies(services)
        with sqlite3.connect(path) as connection:
            (state,) = connection.execute(
                "SELECT state FROM stored_events WHERE rowid = 3"
            ).fetchone()
            edited = bytes(state[:-1]) + bytes([state[-1] ^ 1])
            connection.execute("UPDATE stored_events SET state = ? WHERE rowid = 3", (edited,))
        with pytest.raises(AssertionError, match="does not verify.*position=3"):
            inv.audit_chain_verifies(services)


def test_audit_chain_catches_a_deleted_row(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    with bootstrap(make_settings(f"sqlite:///{path}"), clock=ManualClock()) as services:
        populate(services)
        with sqlite3.connect(path) as connection:
            connection.execute("DELETE FROM stored_events WHERE rowid = 2")
        with pytest.raises(AssertionError, match="does not verify"):
            inv.audit_chain_verifies(services)


def test_vip_flag_follows_the_period_once_the_workers_caught_up() -> None:
    clock = ManualClock()
    with bootstrap(make_settings("memory://"), clock=clock) as services:
        populate(services)
        grant = GrantVip(1, 2, "admin", "kit")
        assert services.app.bus.handle(grant, Origin.admin(ADMIN_ID)).ok
        inv.vip_flag_matches_period(services)
        clock.advance(timedelta(days=2))  # ended: the invariant runs the expiry job first
        inv.vip_flag_matches_period(services)
        projections = services.projections
        assert projections is not None
        table = projections.table("vip_members")
        with projections.store.transaction() as conn:  # a stale flag, as a lost VipExpired
            conn.execute(update(table).where(table.c.player_id == player_id(1)).values(is_vip=True))
        with pytest.raises(AssertionError, match="VIP flag True"):
            inv.vip_flag_matches_period(services)
