"""Property: for any sequence of commands, projecting live (in batches of any size, interleaved
with the commands) and rebuilding from scratch give identical read models."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.story_file import parse_story
from dianabot.application.clock import ManualClock
from dianabot.application.commands import AwardEarnedBadges
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.rules import PointSource
from dianabot.projections.registry import ALL_NAMES
from dianabot.projections.service import Projections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from tests.conftest import ADMIN_ID, POSTGRES_URL, _postgres_or_skip, make_settings
from tests.integration.test_projections import SLUG, STORY, all_rows

USERS = st.integers(min_value=1, max_value=4)
SLUGS = [spec.slug for spec in INITIAL_BADGES]
CHOICES = ["a_b", "a_c", "a_v", "b_a", "b_c", "c_d", "c_a"]

commands = st.one_of(
    st.tuples(st.just("register"), USERS),
    st.tuples(st.just("react"), USERS, st.integers(0, 5), st.sampled_from(["❤️", "🔥"])),
    st.tuples(st.just("message"), USERS),
    st.tuples(st.just("poll"), USERS, st.integers(0, 3)),
    st.tuples(st.just("checkin"), USERS),
    st.tuples(st.just("award"), USERS, st.integers(1, 400)),
    st.tuples(st.just("spend"), USERS, st.integers(1, 200)),
    st.tuples(st.just("grant"), USERS, st.integers(1, 300)),
    st.tuples(st.just("deduct"), USERS, st.integers(1, 300)),
    st.tuples(st.just("badges"), USERS),
    st.tuples(st.just("revoke"), USERS, st.sampled_from(SLUGS)),
    st.tuples(st.just("retire"), st.sampled_from(SLUGS)),
    st.tuples(st.just("story"), USERS),
    st.tuples(st.just("choose"), USERS, st.sampled_from(CHOICES)),
    st.tuples(st.just("vip"), USERS, st.integers(1, 40)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("wait"), st.integers(0, 60 * 24 * 40)),
    # Catching up in small batches and rebuilding one read model meanwhile are what can go
    # wrong between them, so they come up more often than any single command.
    *[st.tuples(st.just("project"), st.integers(1, 20))] * 3,
    *[st.tuples(st.just("rebuild"), st.sampled_from(ALL_NAMES))] * 2,
)


def run(app: Any, clock: ManualClock, command: tuple[Any, ...], update: int) -> None:
    """Apply one command; refusals are part of the history's shape, not failures."""
    name, *args = command
    origin = Origin.telegram(update, args[0] if args and isinstance(args[0], int) else 1)
    admin = Origin.admin(ADMIN_ID)
    system = Origin.system("property", str(update))  # awards and VIP grants come from policies
    if name == "register":
        app.register_player(args[0], f"user {args[0]}", origin)
    elif name == "react":
        app.react(args[0], f"chan:{args[1]}", args[2], origin)
    elif name == "message":
        app.count_message(args[0], f"msg:{update}", origin)
    elif name == "poll":
        app.answer_poll(args[0], f"poll:{args[1]}", origin)
    elif name == "checkin":
        app.check_in(args[0], origin)
    elif name == "award":
        app.award_points(args[0], PointSource.STORY_DECISION, args[1], f"ref:{update}", system)
    elif name == "spend":
        app.spend_points(args[0], args[1], "test", f"ref:{update}", origin)
    elif name == "grant":
        app.grant_points(ADMIN_ID, args[0], args[1], "property", admin)
    elif name == "deduct":
        app.deduct_points(ADMIN_ID, args[0], args[1], "property", admin)
    elif name == "badges":
        app.bus.handle(AwardEarnedBadges(args[0], tuple(SLUGS), (f"update:{update}",)), system)
    elif name == "revoke":
        app.revoke_badge(args[1], args[0], "property", admin)
    elif name == "retire":
        app.retire_badge(args[0], "property", admin)
    elif name == "story":
        app.start_story(args[0], origin, SLUG)
    elif name == "choose":
        app.make_choice(args[0], args[1], origin, SLUG)
    elif name == "vip":
        app.grant_vip(args[0], args[1], "admin", f"ref:{update}", admin)
    elif name == "expire":
        app.expire_due_vips()
    elif name == "wait":
        clock.advance(minutes=args[0])


@contextmanager
def wired(store: str) -> Iterator[Services]:
    clock = ManualClock()
    if store == "memory":
        with bootstrap(make_settings("memory://"), clock=clock) as services:
            yield services
    elif store == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'events.sqlite3'}"
            with bootstrap(make_settings(url), clock=clock) as services:
                yield services
    else:
        schema = f"p_{uuid.uuid4().hex[:12]}"
        base = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
        try:
            with bootstrap(make_settings(url), clock=clock) as services:
                yield services
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def check_live_equals_replay(store: str, history: list[tuple[Any, ...]]) -> None:
    with wired(store) as services:
        app, projections = services.app, services.projections
        assert projections is not None
        clock = services.clock
        assert isinstance(clock, ManualClock)
        app.ensure_badges(INITIAL_BADGES, Origin.system("property", "catalogue"))
        app.publish_story(parse_story(STORY, "prueba.yaml"), Origin.admin(ADMIN_ID))
        for user in range(1, 4):  # most commands need a player; user 4 registers (or not) later
            app.register_player(user, f"user {user}", Origin.telegram(10**6 + user, user))
        for update, command in enumerate(history, start=1):
            if command[0] == "project":  # the live runner catches up now, in batches of n
                projections.runner.max_batch = command[1]
                projections.runner.page_size = max(1, command[1] // 2)
                projections.catch_up()
            elif command[0] == "rebuild":  # an operator rebuilds one read model meanwhile
                Projections(app, projections.store, projections.events).rebuild([command[1]])
            else:
                run(app, clock, command, update)
        projections.catch_up()
        live = all_rows(projections)
        projections.rebuild()
        assert all_rows(projections) == live


def examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@examples(60)
@given(st.lists(commands, min_size=10, max_size=60))
def test_live_projection_equals_a_replay_in_memory(history: list[tuple[Any, ...]]) -> None:
    check_live_equals_replay("memory", history)


@examples(15)
@given(st.lists(commands, min_size=10, max_size=40))
def test_live_projection_equals_a_replay_on_sqlite(history: list[tuple[Any, ...]]) -> None:
    check_live_equals_replay("sqlite", history)


@pytest.mark.postgres
@examples(10)
@given(st.lists(commands, min_size=10, max_size=40))
def test_live_projection_equals_a_replay_on_postgres(history: list[tuple[Any, ...]]) -> None:
    _postgres_or_skip()
    check_live_equals_replay("postgres", history)
