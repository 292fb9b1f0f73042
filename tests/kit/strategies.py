"""Hypothesis strategies for invariant tests: bus commands with their origins, story walks,
clock jumps at the rules' boundaries, and raw Telegram updates for the local Bot API.

Test-only (hypothesis is a dev dependency): import as `tests.kit.strategies`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dianabot.adapters.story_file import load_bundled_story
from dianabot.application.commands import (
    AnswerPoll,
    AwardBadge,
    AwardEarnedBadges,
    AwardPoints,
    BuyVipWithBesitos,
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
from dianabot.application.results import Origin
from dianabot.domain import rules
from dianabot.domain.badge import BadgeSpec
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.player import VIP_CHANNEL_CHANGES
from dianabot.domain.story import Story
from hypothesis import strategies as st

ADMIN_ID = 42
LOADED_STORY = load_bundled_story()
STORY: Story = LOADED_STORY.story
CHOICES = sorted(c.id for f in STORY.fragments for c in f.choices)

users = st.integers(min_value=1, max_value=4)
"""A small pool, so commands meet the same players again."""
edge_telegram_ids = st.sampled_from([0, -1, rules.MAX_TELEGRAM_ID, rules.MAX_TELEGRAM_ID + 1])
amounts = st.one_of(st.integers(1, 300), st.sampled_from([1, rules.MAX_AMOUNT]))
edge_amounts = st.sampled_from([0, -1, rules.MAX_AMOUNT + 1])
KIT_POLICY = "kit-policy"
"""A policy name no runner has: parked and retried events of the strategies go there."""
BADGE_SLUGS = [b.slug for b in INITIAL_BADGES] + ["kit-badge", "no-such-badge"]
badge_specs = st.builds(
    BadgeSpec,
    st.sampled_from(["kit-badge", "besitos-100", "Bad Slug!"]),
    st.text(min_size=1, max_size=10),
    st.text(max_size=20),
    st.sampled_from(["*", "🏅"]),
    st.sampled_from(
        [
            {"kind": "manual"},
            {"kind": "lifetime_besitos", "threshold": 50},
            {"kind": "checkin_streak", "days": 2},
            {"kind": "no-such-kind"},
        ]
    ),
)
"""Badge definitions: new, changing a catalogue badge, and invalid ones."""
forged_tokens = st.builds(lambda s: f"vip-{s}", st.text("abcXYZ019-_", min_size=32, max_size=32))
"""Well-formed VIP tokens nobody issued."""


@dataclass(frozen=True)
class Issued:
    """A command and who issues it (the origin the bot, an admin or a job would give)."""

    command: Command
    origin: Origin


def update_ids() -> st.SearchStrategy[int]:
    return st.integers(1, 10**9)


def player_origin(user: int, update: int) -> Origin:
    return Origin.telegram(update, user)


def _as_player(strategy: st.SearchStrategy[Command]) -> st.SearchStrategy[Issued]:
    return st.builds(
        lambda c, u: Issued(c, player_origin(c.telegram_ids()[0], u)), strategy, update_ids()
    )


def _as(origin: Origin, strategy: st.SearchStrategy[Command]) -> st.SearchStrategy[Issued]:
    return strategy.map(lambda c: Issued(c, origin))


def commands(user: st.SearchStrategy[int] = users) -> st.SearchStrategy[Issued]:
    """Every command of `application/commands.py` (`command_strategies`), each issued by whom
    the bot, an admin or a job would issue it, plus commands under a forged caller (a player
    issuing an admin's command), which the bus must refuse."""
    per_type = command_strategies(user)
    return st.one_of(*per_type.values(), forged_callers(user))


def command_strategies(
    user: st.SearchStrategy[int] = users,
) -> dict[type[Command], st.SearchStrategy[Issued]]:
    """One strategy per concrete command type (a test checks none is missing)."""
    admin = Origin.admin(ADMIN_ID)
    system = st.builds(Origin.system, st.just("kit"), st.text(min_size=1, max_size=8))
    policy = st.builds(Origin.policy, st.just("kit"), st.uuids(), st.integers(1, 20))

    def by_admin(strategy: st.SearchStrategy[Command]) -> st.SearchStrategy[Issued]:
        return _as(admin, strategy)

    def by_system(strategy: st.SearchStrategy[Command]) -> st.SearchStrategy[Issued]:
        return st.builds(Issued, strategy, st.one_of(system, policy))

    slugs = st.sampled_from(BADGE_SLUGS)
    evidence = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=2).map(tuple)
    reason = st.text(min_size=1, max_size=8)
    charge = st.sampled_from(["ch-1", "ch-2", "ch-3"])
    return {
        RegisterPlayer: _as_player(st.builds(RegisterPlayer, user, st.text(max_size=20))),
        ForgetPlayer: by_admin(st.builds(ForgetPlayer, user)),
        ReactToPost: _as_player(
            st.builds(ReactToPost, user, st.sampled_from(["c:1", "c:2"]), st.just("🔥"))
        ),
        CountMessage: _as_player(st.builds(CountMessage, user, st.text(max_size=8))),
        AnswerPoll: _as_player(st.builds(AnswerPoll, user, st.sampled_from(["p:1", "p:2"]))),
        CheckIn: _as_player(st.builds(CheckIn, user)),
        AwardPoints: by_system(
            st.builds(AwardPoints, user, st.sampled_from(list(rules.PointSource)), amounts, reason)
        ),
        SpendPoints: _as_player(
            st.builds(SpendPoints, user, amounts, st.sampled_from(["shop", "vip"]), st.just("r"))
        ),
        GrantPoints: by_admin(
            st.builds(GrantPoints, user, admin_id=st.just(ADMIN_ID), amount=amounts, reason=reason)
        ),
        DeductPoints: by_admin(
            st.builds(DeductPoints, user, admin_id=st.just(ADMIN_ID), amount=amounts, reason=reason)
        ),
        DefineBadge: by_admin(st.builds(DefineBadge, badge_specs)),
        ChangeBadge: by_admin(st.builds(ChangeBadge, badge_specs)),
        RetireBadge: by_admin(st.builds(RetireBadge, slugs, reason)),
        AwardBadge: by_admin(st.builds(AwardBadge, slugs, user, evidence)),
        AwardEarnedBadges: by_system(
            st.builds(AwardEarnedBadges, user, st.lists(slugs, max_size=3).map(tuple), evidence)
        ),
        RevokeLapsedBadges: by_system(
            st.builds(RevokeLapsedBadges, user, st.lists(slugs, max_size=3).map(tuple), evidence)
        ),
        RevokeBadge: by_admin(st.builds(RevokeBadge, slugs, user, reason)),
        PublishStory: by_admin(st.just(PublishStory(LOADED_STORY))),
        StartStory: _as_player(st.builds(StartStory, user)),
        MakeChoice: _as_player(st.builds(MakeChoice, user, st.sampled_from(CHOICES))),
        RelocateProgress: by_admin(st.builds(RelocateProgress, user)),
        RewardDecision: by_system(
            st.builds(
                RewardDecision,
                user,
                st.just("diana"),
                st.integers(0, 6),
                st.just(("primera-decision",)),
                evidence,
            )
        ),
        IssueVipToken: by_admin(
            st.builds(IssueVipToken, st.just(ADMIN_ID), st.integers(1, 40), st.integers(1, 40))
        ),
        RedeemVipToken: _as_player(
            st.builds(RedeemVipToken, user, st.one_of(st.text(max_size=40), forged_tokens))
        ),
        GrantVip: by_admin(st.builds(GrantVip, user, st.integers(1, 40), st.just("admin"), reason)),
        ExpireVip: by_system(st.builds(ExpireVip, user)),
        InviteToVip: by_system(
            st.builds(
                InviteToVip,
                user,
                st.just("diana"),
                st.sampled_from(sorted(f.id for f in STORY.fragments)),
                st.one_of(st.none(), st.sampled_from(CHOICES)),
                evidence,
            )
        ),
        BuyVipWithBesitos: _as_player(st.builds(BuyVipWithBesitos, user)),
        RecordStarsPayment: by_system(
            st.builds(
                RecordStarsPayment,
                user,
                charge_id=charge,
                amount=st.integers(1, 500),
                currency=st.just("XTR"),
                payload=st.just("vip"),
                days=st.integers(1, 40),
            )
        ),
        RefundStarsPayment: by_admin(
            st.builds(RefundStarsPayment, user, charge_id=charge, admin_id=st.just(ADMIN_ID))
        ),
        ConfirmAdult: _as_player(st.builds(ConfirmAdult, user)),
        RecordVipChannel: by_system(
            st.builds(
                RecordVipChannel,
                user,
                change=st.sampled_from(VIP_CHANNEL_CHANGES),
                invite_link=st.sampled_from(["", "https://t.me/+kit1", "https://t.me/+kit2"]),
            )
        ),
        RecordVipNotice: by_system(
            st.builds(
                RecordVipNotice,
                user,
                kind=st.sampled_from(["invitation", "expiry"]),
                reference=reason,
            )
        ),
        # Coordination and journal commands, under a policy name no worker runs (a parked
        # position moves that policy on: a real name would make the machine's policies skip).
        ParkEvent: by_system(
            st.builds(
                ParkEvent,
                st.just(KIT_POLICY),
                st.integers(1, 50),
                st.uuids().map(str),
                st.integers(1, 5),
                st.just("PointsAwarded"),
                reason,
                st.integers(1, 5),
            )
        ),
        RetryParkedEvent: by_system(
            st.builds(
                RetryParkedEvent,
                st.just(KIT_POLICY),
                st.integers(1, 50),
                st.one_of(
                    st.none(),
                    st.builds(AwardPoints, user, st.just(rules.PointSource.STORY), amounts, reason),
                ),
            )
        ),
        FailParkedRetry: by_system(
            st.builds(FailParkedRetry, st.just(KIT_POLICY), st.integers(1, 50), reason)
        ),
        RecordCommandFailure: by_system(
            st.builds(
                RecordCommandFailure,
                st.just("SpendPoints"),
                st.integers(1, 4).map(str),
                st.one_of(st.none(), user),
                st.sampled_from(["conflict", "corrupt_history"]),
                reason,
                st.just("tg:user:1"),
            )
        ),
        RecordConsistencyCheck: by_system(
            st.builds(
                RecordConsistencyCheck,
                user,
                st.booleans(),
                st.integers(0, 3),
                st.integers(0, 100),
            )
        ),
        RecordReconciliation: by_system(
            st.builds(
                RecordReconciliation,
                st.integers(0, 100),
                st.booleans(),
                st.integers(0, 3),
                st.just((("balance", 0),)),
            )
        ),
    }


def forged_callers(user: st.SearchStrategy[int] = users) -> st.SearchStrategy[Issued]:
    """Admin and system commands issued by a player for themself: refused `not_admin`."""
    return _as_player(
        st.one_of(
            st.builds(GrantPoints, user, admin_id=user, amount=amounts, reason=st.just("me")),
            st.builds(AwardPoints, user, st.just(rules.PointSource.STORY), amounts, st.just("me")),
            st.builds(GrantVip, user, st.integers(1, 40), st.just("admin"), st.just("me")),
            st.builds(ForgetPlayer, user),
        )
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
def redelivered(
    draw: Any, strategy: st.SearchStrategy[dict[str, Any]] = valid_updates
) -> list[dict[str, Any]]:
    """An update with an id, then the same update again (as after a lost offset)."""
    update = {"update_id": draw(st.integers(1, 10**6)), **draw(strategy)}
    return [update, dict(update)]


# ----- updates as the bot receives them (the dispatcher machine and the fuzz test) ----------

CHANNEL = -100_1001
"""The configured channel (its posts get reaction buttons)."""
GROUP = -100_1002
VIP_CHANNEL = -100_1003
STRANGER_CHAT = -100_9999
"""A chat the bot is not configured for (another channel, another group)."""
DATE = 1_700_000_000

bot_users = st.one_of(users, st.just(ADMIN_ID))
"""The players, and now and then the admin."""
message_ids = st.integers(1, 30)
BOT_TEXTS = [
    "/start",
    "/start vip-NOTATOKEN",
    "/help",
    "/profile",
    "/badges",
    "/top",
    "/checkin",
    "/story",
    "/vip",
    "/paysupport",
    "/poll ¿Qué prefieres? | Té | Café",
    "/grant 1 10 kit",
    "/grant 2 300 kit",
    "/health",
    "/reconcile",
    "/refund nocharge",
    "hola Diana",
]


def _chat_json(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"U{chat_id}"}
    if chat_id in (CHANNEL, VIP_CHANNEL):
        return {"id": chat_id, "type": "channel", "title": "Diana"}
    return {"id": chat_id, "type": "supergroup", "title": "Círculo"}


def message_in(chat_id: int, user: int | None, text: str, message_id: int = 1) -> dict[str, Any]:
    """A message as the Bot API gives it (a command gets its `bot_command` entity)."""
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": DATE,
        "chat": _chat_json(chat_id),
        "text": text,
    }
    if user is not None:
        message["from"] = _user_json(user)
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return message


def press(user: int, data: str, chat_id: int | None = None, message_id: int = 1) -> dict[str, Any]:
    """A button pressed on a message of `chat_id` (the user's private chat by default)."""
    where = message_in(user if chat_id is None else chat_id, None, "…", message_id)
    return {
        "callback_query": {
            "id": f"q{user}:{message_id}:{data}"[:64],
            "from": _user_json(user),
            "chat_instance": "ci",
            "message": where,
            "data": data,
        }
    }


def story_press(user: int, choice: str, message_id: int) -> dict[str, Any]:
    return press(user, f"s:{STORY.fragment_of_choice(choice)}:{choice}", None, message_id)


def _payment(user: int, price: int, charge: str, ours: bool) -> dict[str, Any]:
    payload = f"vip-stars:{user}:{price}" if ours else "someone-else"
    message = message_in(user, user, "", 1)
    del message["text"]
    message["successful_payment"] = {
        "currency": "XTR",
        "total_amount": price,
        "invoice_payload": payload,
        "telegram_payment_charge_id": charge,
        "provider_payment_charge_id": "",
    }
    return {"message": message}


def bot_updates() -> st.SearchStrategy[dict[str, Any]]:
    """Valid updates of every flow of the bot (without `update_id`): commands in private,
    story choices and reaction presses by button, channel posts (ours and another channel's),
    group chatter, poll answers, the VIP buttons, pre-checkout queries and payments."""
    return st.one_of(
        st.builds(
            lambda u, t, m: {"message": message_in(u, u, t, m)},
            bot_users,
            st.sampled_from(BOT_TEXTS),
            message_ids,
        ),
        st.builds(story_press, users, st.sampled_from(CHOICES), message_ids),
        st.builds(
            lambda u, e, c, m: press(u, f"r:{e}", c, m),
            users,
            st.integers(0, 3),
            st.sampled_from([CHANNEL, CHANNEL, STRANGER_CHAT]),
            message_ids,
        ),
        st.builds(
            lambda c, m: {"channel_post": message_in(c, None, "Un post", m)},
            st.sampled_from([CHANNEL, STRANGER_CHAT]),
            message_ids,
        ),
        st.builds(
            lambda c, u, m: {"message": message_in(c, u, "¡hola a todas!", m)},
            st.sampled_from([GROUP, GROUP, STRANGER_CHAT]),
            users,
            message_ids,
        ),
        st.builds(
            lambda u, p: {"poll_answer": {"poll_id": p, "user": _user_json(u), "option_ids": [0]}},
            users,
            st.sampled_from(["p1", "p2"]),
        ),
        st.builds(lambda u, d: press(u, d), users, st.sampled_from(["vb", "ac"])),
        st.builds(
            lambda u, price: {
                "pre_checkout_query": {
                    "id": f"pc{u}",
                    "from": _user_json(u),
                    "currency": "XTR",
                    "total_amount": price,
                    "invoice_payload": f"vip-stars:{u}:{price}",
                }
            },
            users,
            st.sampled_from([1, 250]),
        ),
        st.builds(
            _payment,
            users,
            st.just(250),
            st.sampled_from(["ch1", "ch2", "ch3"]),
            st.booleans(),
        ),
    )


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
"""Any JSON value (ints beyond 64 bits included)."""

UPDATE_KINDS = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "poll_answer",
    "pre_checkout_query",
    "chat_member",
    "my_chat_member",
    "message_reaction",
    "inline_query",
    "business_message",
    "a_kind_from_the_future",
]
odd_ids = st.sampled_from([0, -1, -(2**63), 2**53 + 1, 2**63 - 1, 2**64])
huge_texts = st.sampled_from([100, 4097, 70_000]).map(lambda n: "ñ" * n)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((*prefix, key))
            found.extend(_paths(inner, (*prefix, key)))
    return found


_DELETE = object()


@st.composite
def _mutated(draw: Any) -> dict[str, Any]:
    """A valid update with one field (anywhere in it) replaced by any JSON, an odd id or a
    huge string, or removed."""
    update = json.loads(json.dumps(draw(bot_updates())))
    path = draw(st.sampled_from(_paths(update)))
    parent = update
    for key in path[:-1]:
        parent = parent[key]
    replacement = draw(st.one_of(st.just(_DELETE), json_values, odd_ids, huge_texts))
    if replacement is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return update


def _edited(update: dict[str, Any]) -> dict[str, Any]:
    kind, body = next(iter(update.items()))
    if kind in ("message", "channel_post"):
        return {f"edited_{kind}": body | {"edit_date": DATE + 1}}
    return update


def raw_updates() -> st.SearchStrategy[Any]:
    """What a Bot API could hand the bot, at the JSON level (`update_id` included or broken):
    valid updates, edited ones, one field mangled, any JSON under a known or unknown kind,
    forged or huge callback data, odd ids, a sender missing, and not an object at all."""
    body = st.one_of(
        bot_updates(),
        bot_updates(),
        bot_updates().map(_edited),
        _mutated(),
        st.builds(lambda k, v: {k: v}, st.sampled_from(UPDATE_KINDS), json_values),
        st.builds(
            lambda u, d, c: press(u, d, c),
            users,
            st.one_of(st.text(max_size=80), huge_texts, st.sampled_from(["r:9", "s::", "vb:x"])),
            st.sampled_from([None, CHANNEL, STRANGER_CHAT]),
        ),
        st.builds(
            lambda u, t: {"message": message_in(u, u, t)},
            odd_ids,
            st.sampled_from(BOT_TEXTS),
        ),
        st.builds(
            lambda t: {"message": message_in(1, 1, t)}, huge_texts.map(lambda s: f"/grant {s}")
        ),
        st.builds(
            lambda u, c, t: {"message": message_in(u, u, f"{c} {t}")},
            bot_users,
            st.sampled_from(["/start", "/start vip-", "/poll", "/refund", "/grant", "/story"]),
            st.one_of(huge_texts, st.text(max_size=30)),
        ),
        st.builds(
            lambda t: {"message": message_in(ADMIN_ID, ADMIN_ID, t)},
            st.sampled_from(
                ["/grant " + "9" * 5000 + " 1 x", "/grant 1 " + "9" * 5000 + " x", "/grant ٣ ١ x"]
            ),
        ),
    )
    numbered = st.builds(lambda b, i: {"update_id": i, **b}, body, st.integers(1, 10**9))
    broken_id = st.builds(
        lambda b, i: {**b, "update_id": i}, body, st.one_of(st.text(max_size=3), st.none(), odd_ids)
    )
    not_an_object = st.one_of(st.lists(json_values, max_size=2), st.integers(), st.text(max_size=5))
    return st.one_of(numbered, numbered, numbered, broken_id, not_an_object)
