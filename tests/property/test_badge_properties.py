"""Hypothesis: whatever admins and policies do, no user ever holds a badge twice."""

from __future__ import annotations

from collections import Counter

from dianabot.adapters.bootstrap import bootstrap
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_ID, make_settings

SLUGS = [spec.slug for spec in INITIAL_BADGES[:3]]
USERS = [1, 2, 3]
operations = st.lists(
    st.tuples(
        st.sampled_from(["award", "award", "revoke", "retire"]),
        st.sampled_from(SLUGS),
        st.sampled_from(USERS),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_no_badge_is_held_twice_and_retired_badges_award_nothing(ops) -> None:  # type: ignore[no-untyped-def]
    with bootstrap(make_settings("memory://")) as wired:
        app = wired.app
        admin = Origin.admin(ADMIN_ID)
        app.ensure_badges(INITIAL_BADGES[:3], admin)
        for user in USERS:
            app.register_player(user, f"u{user}", Origin.telegram(user, user))
        retired: set[str] = set()
        for n, (op, slug, user) in enumerate(ops):
            origin = Origin.system("badge-policy", str(n))  # users never award themselves
            if op == "award":
                result = app.award_badge(slug, user, [f"event:x:{n}"], origin)
                if slug in retired:
                    assert result.outcome in {"badge_retired", "already_held"}
            elif op == "revoke":
                app.revoke_badge(slug, user, "test", origin)
            elif slug not in retired:
                assert app.retire_badge(slug, "test", admin).ok
                retired.add(slug)

        holdings: Counter[tuple[str, int]] = Counter()
        for notification in app.recorder.select_notifications(1, 10_000):
            event = app.mapper.to_domain_event(notification)
            name = type(event).__name__
            if name in {"BadgeAwarded", "BadgeReawarded", "BadgeRevoked"}:
                award = app.get_award_by_id(event.originator_id)
                key = (award.badge_slug, award.telegram_id)
                holdings[key] += -1 if name == "BadgeRevoked" else 1
                assert holdings[key] in (0, 1)
        for (slug, user), held in holdings.items():
            assert app.get_award(slug, user).held == bool(held)
