"""`execute_many`: 1,000 actions of 50 users run concurrently on PostgreSQL end in the same
balances, badges and levels, and the same outcome for every action, as the same actions run one
by one on a second schema (issue 12, item 6)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from itertools import count
from typing import Any

import psycopg
import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import AwardBadge, GrantPoints, RegisterPlayer, StartStory
from dianabot.application.coordinator import (
    AccessVipStory,
    CompleteFragment,
    DailyCheckIn,
    Executable,
    Issue,
    PaidDecision,
    ParticipateInGroup,
    React,
    UnlockClue,
)
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from psycopg import sql

from tests.conftest import ADMIN_ID, POSTGRES_URL, make_settings
from tests.unit.test_progress import small_story

pytestmark = pytest.mark.postgres

USERS = range(7001, 7051)
PER_USER = 20
SLUG = "prueba"
SLUGS = [spec.slug for spec in INITIAL_BADGES]


@pytest.fixture
def second_postgres_url(postgres_url: str) -> Iterator[str]:
    """Another private schema on the same server (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield postgres_url.rsplit("schema=", 1)[0] + f"schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


def actions(seed: int = 12) -> list[Executable]:
    """Each user registers, starts the story, is given a badge, then does 17 random things
    (some refused: duplicates, cooldowns, choices of another fragment, VIP gates, no money);
    the users' actions are interleaved at random, each user's in order."""
    rng = random.Random(seed)
    update = count(1)

    def tg(user: int) -> Origin:
        return Origin.telegram(next(update), user)

    per_user: dict[int, list[Executable]] = {}
    for user in USERS:
        mine: list[Executable] = [
            Issue(RegisterPlayer(user, f"user {user}"), tg(user)),
            Issue(StartStory(user, SLUG), tg(user)),
            # Keyed by the award, not the player: kept after the registration by execute_many
            # (one user's actions in order), not by the bus's per-key order.
            Issue(AwardBadge("racha-30", user, ("test:admin",)), Origin.admin(ADMIN_ID)),
        ]
        for _ in range(PER_USER - len(mine)):
            choice = rng.choice(["a_b", "a_c", "a_v", "b_a", "b_c", "c_a", "c_d"])
            story = {"telegram_id": user, "origin": tg(user), "choice_id": choice, "slug": SLUG}
            mine.append(
                rng.choice(
                    [
                        React(
                            telegram_id=user,
                            origin=tg(user),
                            post=f"p{rng.randrange(8)}",
                            emoji="❤️",
                        ),
                        ParticipateInGroup(telegram_id=user, origin=tg(user), message="g"),
                        DailyCheckIn(telegram_id=user, origin=tg(user)),
                        Issue(
                            GrantPoints(
                                user, admin_id=ADMIN_ID, amount=rng.choice([15, 90]), reason="r"
                            ),
                            Origin.admin(ADMIN_ID),
                        ),
                        CompleteFragment(**story),
                        PaidDecision(**story),
                        UnlockClue(**story),
                        AccessVipStory(**story),
                    ]
                )
            )
        per_user[user] = mine
    interleaved: list[Executable] = []
    while per_user:
        user = rng.choice(sorted(per_user))
        interleaved.append(per_user[user].pop(0))
        if not per_user[user]:
            del per_user[user]
    return interleaved


def prepared(url: str, clock: ManualClock, *, group_commit: bool) -> Services:
    wired = bootstrap(make_settings(url, group_commit=group_commit), clock=clock)
    wired.app.ensure_badges(INITIAL_BADGES, Origin.system("test", "catalogue"))
    assert wired.app.publish_story(small_story(), Origin.admin(ADMIN_ID)).ok
    return wired


def outcome_of(services: Services) -> dict[int, Any]:
    app = services.app
    found: dict[int, Any] = {}
    for user in USERS:
        player = app.get_player(user)
        assert player is not None
        progress = app.get_progress(user, SLUG)
        badges = sorted(
            slug for slug in SLUGS if (award := app.get_award(slug, user)) and award.held
        )
        found[user] = {
            "balance": player.balance,
            "lifetime": player.lifetime_earned,
            "level": player.level,
            "badges": badges,
            "fragment": progress.fragment_id if progress else None,
        }
    return found


def test_execute_many_ends_where_one_by_one_ends(
    postgres_url: str, second_postgres_url: str
) -> None:
    planned = actions()
    assert len(planned) == 1_000 and len({a.user for a in planned}) == 50
    clock = ManualClock()
    concurrent = prepared(postgres_url, clock, group_commit=True)
    sequential = prepared(second_postgres_url, clock, group_commit=False)
    try:
        assert concurrent.coordinator is not None and sequential.coordinator is not None
        together = concurrent.coordinator.execute_many_sync(planned)
        one_by_one = [sequential.coordinator.execute_sync(action) for action in planned]

        assert [r.action for r in together] == planned
        assert [r.outcome for r in together] == [r.outcome for r in one_by_one]
        outcomes = {r.outcome for r in together}
        assert {"ok", "already_reacted", "cooldown", "invalid_choice", "vip_required"} <= outcomes

        for wired in (concurrent, sequential):
            assert wired.policies is not None
            wired.policies.catch_up()
        expected = outcome_of(sequential)
        assert outcome_of(concurrent) == expected
        assert any(state["badges"] for state in expected.values())
        assert len({state["level"] for state in expected.values()}) > 1
    finally:
        concurrent.close()
        sequential.close()
