"""Hypothesis strategies for invariant tests: bus commands with their origins, story walks,
clock jumps at the rules' boundaries, and raw Telegram updates for the local Bot API.

Test-only (hypothesis is a dev dependency): import as `tests.kit.strategies`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dianabot.adapters.story_file import load_bundled_story
from dianabot.application.commands import (
    AwardPoints,
    CheckIn,
    Command,
    CountMessage,
    DeductPoints,
    GrantPoints,
    GrantVip,
    MakeChoice,
    ReactToPost,
    RegisterPlayer,
    SpendPoints,
    StartStory,
)
from dianabot.application.results import Origin
from dianabot.domain import rules
from dianabot.domain.story import Story
from hypothesis import strategies as st

ADMIN_ID = 42
STORY: Story = load_bundled_story().story
CHOICES = sorted(c.id for f in STORY.fragments for c in f.choices)

users = st.integers(min_value=1, max_value=4)
"""A small pool, so commands meet the same players again."""
edge_telegram_ids = st.sampled_from([0, -1, rules.MAX_TELEGRAM_ID, rules.MAX_TELEGRAM_ID + 1])
amounts = st.one_of(st.integers(1, 300), st.sampled_from([1, rules.MAX_AMOUNT]))
edge_amounts = st.sampled_from([0, -1, rules.MAX_AMOUNT + 1])


@dataclass(frozen=True)
class Issued:
    """A command and who issues it (the origin the bot, an admin or a job would give)."""

    command: Command
    origin: Origin


def _update_ids() -> st.SearchStrategy[int]:
    return st.integers(1, 10**9)


def player_origin(user: int, update: int) -> Origin:
    return Origin.telegram(update, user)


def _as_player(strategy: st.SearchStrategy[Command]) -> st.SearchStrategy[Issued]:
    return st.builds(
        lambda c, u: Issued(c, player_origin(c.telegram_ids()[0], u)), strategy, _update_ids()
    )


def _as(origin: Origin, strategy: st.SearchStrategy[Command]) -> st.SearchStrategy[Issued]:
    return strategy.map(lambda c: Issued(c, origin))


def commands(user: st.SearchStrategy[int] = users) -> st.SearchStrategy[Issued]:
    """Every player-facing, admin and system command of the points, story and VIP flows."""
    admin = Origin.admin(ADMIN_ID)
    system = Origin.system("kit", "award")
    return st.one_of(
        _as_player(st.builds(RegisterPlayer, user, st.text(max_size=20))),
        _as_player(st.builds(ReactToPost, user, st.sampled_from(["c:1", "c:2"]), st.just("🔥"))),
        _as_player(st.builds(CountMessage, user, st.text(max_size=8))),
        _as_player(st.builds(CheckIn, user)),
        _as_player(
            st.builds(SpendPoints, user, amounts, st.sampled_from(["shop", "vip"]), st.just("r"))
        ),
        _as_player(st.builds(StartStory, user)),
        _as_player(st.builds(MakeChoice, user, st.sampled_from(CHOICES))),
        _as(
            admin,
            st.builds(
                GrantPoints, user, admin_id=st.just(ADMIN_ID), amount=amounts, reason=st.just("kit")
            ),
        ),
        _as(
            admin,
            st.builds(
                DeductPoints,
                user,
                admin_id=st.just(ADMIN_ID),
                amount=amounts,
                reason=st.just("kit"),
            ),
        ),
        _as(
            system,
            st.builds(
                AwardPoints,
                user,
                st.just(rules.PointSource.STORY),
                amounts,
                st.text(min_size=1, max_size=8),
            ),
        ),
        _as(
            admin,
            st.builds(
                GrantVip,
                user,
                st.integers(1, 40),
                st.just("admin"),
                st.text(min_size=1, max_size=8),
            ),
        ),
    )


clock_jumps = st.one_of(
    st.sampled_from(
        [
            rules.MESSAGE_COOLDOWN - timedelta(seconds=1),
            rules.MESSAGE_COOLDOWN,
            rules.CHECKIN_INTERVAL - timedelta(seconds=1),
            rules.CHECKIN_INTERVAL,
            rules.STREAK_KEEP_WITHIN,
            rules.STREAK_KEEP_WITHIN + timedelta(seconds=1),
            rules.VIP_INVITATION_PERIOD,
        ]
    ),
    st.integers(1, 40).map(lambda d: timedelta(days=d)),
)
"""Time passing, weighted to the cooldown, check-in, streak and invitation boundaries."""


@st.composite
def story_walks(draw: Any, story: Story = STORY, max_steps: int = 15) -> list[str]:
    """Choice ids along the graph of the published story from its start (a walk a player
    may try; gates may still refuse some of them)."""
    here, walk = story.start, []
    for _ in range(draw(st.integers(0, max_steps))):
        choices = story.fragment(here).choices
        if not choices:
            break
        choice = draw(st.sampled_from(choices))
        walk.append(choice.id)
        here = choice.next
    return walk


def _user_json(user: int) -> dict[str, Any]:
    return {"id": user, "is_bot": False, "first_name": f"U{user}"}


def _message(user: int, text: str) -> dict[str, Any]:
    return {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": user, "type": "private"},
        "from": _user_json(user),
        "text": text,
    }


valid_updates = st.one_of(
    st.builds(
        lambda u, t: {"message": _message(u, t)},
        users,
        st.sampled_from(["/start", "/help", "/profile", "/badges", "/checkin", "/story", "/vip"]),
    ),
    st.builds(
        lambda u, c: {
            "callback_query": {
                "id": "1",
                "from": _user_json(u),
                "chat_instance": "1",
                "data": f"s:{STORY.fragment_of_choice(c)}:{c}",
            }
        },
        users,
        st.sampled_from(CHOICES),
    ),
)
"""Updates a real client sends (without `update_id`: `inject_update` numbers them)."""

forged_callbacks = st.builds(
    lambda u, d: {
        "callback_query": {"id": "2", "from": _user_json(u), "chat_instance": "1", "data": d}
    },
    users,
    st.one_of(st.text(max_size=64), st.sampled_from(["r:9", "r:-1", "s:x:y", "s::", "r:"])),
)
malformed_updates = st.one_of(
    st.builds(lambda t: {"message": {"text": t}}, st.text(max_size=10)),
    st.builds(lambda u: {"message": _message(u, "x") | {"from": None}}, users),
    st.just({"callback_query": {"id": "3"}}),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
updates = st.one_of(valid_updates, forged_callbacks, malformed_updates)


@st.composite
def redelivered(draw: Any, strategy: st.SearchStrategy[dict[str, Any]] = valid_updates) -> list:
    """An update with an id, then the same update again (as after a lost offset)."""
    update = {"update_id": draw(st.integers(1, 10**6)), **draw(strategy)}
    return [update, dict(update)]
