"""Badge definitions and awards: lifecycle rules and input checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dianabot.domain.badge import Badge, BadgeAward, BadgeSpec
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.cause import Cause
from dianabot.domain.errors import BadgeAlreadyHeld, BadgeNotHeld, BadgeRetired, InvalidBadge
from dianabot.domain.ids import badge_award_id, badge_id

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CAUSE = Cause("admin:1", "admin:42", T0)
SPEC = BadgeSpec(
    "besitos-100", "Cien", "100 besitos", "💯", {"kind": "lifetime_besitos", "threshold": 100}
)


def test_definition_and_ids_are_derived_from_the_slug() -> None:
    badge = Badge.define(SPEC, CAUSE)
    assert badge.id == badge_id("besitos-100")
    assert badge.spec() == SPEC
    assert [type(e).__name__ for e in badge.collect_events()] == ["BadgeDefined"]


@pytest.mark.parametrize(
    "spec",
    [
        BadgeSpec("Bad Slug", "n", "d", "i"),
        BadgeSpec("x", "n", "d", "i"),
        BadgeSpec("ok-slug", "", "d", "i"),
        BadgeSpec("ok-slug", "n", "d", "i", {"kind": "no-such-kind"}),
        BadgeSpec("ok-slug", "n", "d", "i", {"kind": "lifetime_besitos"}),
        BadgeSpec("ok-slug", "n", "d", "i", {"kind": "lifetime_besitos", "threshold": -1}),
        BadgeSpec("ok-slug", "n", "d", "i", {"kind": "first_points", "extra": 1}),
    ],
)
def test_invalid_definitions_are_refused(spec: BadgeSpec) -> None:
    with pytest.raises(InvalidBadge):
        Badge.define(spec, CAUSE)


def test_changes_are_events_and_retired_badges_award_nothing() -> None:
    badge = Badge.define(SPEC, CAUSE)
    changed = BadgeSpec(SPEC.slug, "Cien besitos", SPEC.description, "💯", SPEC.criteria)
    badge.change(changed, CAUSE)
    assert badge.name == "Cien besitos"
    badge.retire("replaced", CAUSE)
    with pytest.raises(BadgeRetired):
        BadgeAward.first(badge, 7, ["event:x:1"], CAUSE)
    with pytest.raises(BadgeRetired):
        badge.change(changed, CAUSE)
    names = [type(e).__name__ for e in badge.collect_events()]
    assert names == ["BadgeDefined", "BadgeChanged", "BadgeRetired"]


def test_award_revoke_reaward_lifecycle() -> None:
    badge = Badge.define(SPEC, CAUSE)
    award = BadgeAward.first(badge, 7, ["event:p:12"], CAUSE)
    assert award.id == badge_award_id("besitos-100", 7)
    assert award.held and award.evidence == ["event:p:12"]
    with pytest.raises(BadgeAlreadyHeld):
        award.reaward(badge, ["event:p:13"], CAUSE)
    award.revoke("fraud", CAUSE)
    with pytest.raises(BadgeNotHeld):
        award.revoke("again", CAUSE)
    award.reaward(badge, ["event:p:20"], CAUSE)
    assert award.held
    names = [type(e).__name__ for e in award.collect_events()]
    assert names == ["BadgeAwarded", "BadgeRevoked", "BadgeReawarded"]


@pytest.mark.parametrize("evidence", [[], [""], "event:x", [3]])
def test_an_award_needs_evidence(evidence: object) -> None:
    badge = Badge.define(SPEC, CAUSE)
    with pytest.raises(InvalidBadge):
        BadgeAward.first(badge, 7, evidence, CAUSE)  # type: ignore[arg-type]


def test_the_initial_catalogue_is_valid_and_complete() -> None:
    slugs = [spec.slug for spec in INITIAL_BADGES]
    assert len(slugs) == len(set(slugs))
    for spec in INITIAL_BADGES:
        assert spec.checked() == spec
    kinds = {spec.criteria["kind"] for spec in INITIAL_BADGES}
    assert kinds == {
        "first_points",
        "lifetime_besitos",
        "checkin_streak",
        "first_decision",
        "chapter_completed",
        "reactions",
        "vip_active",
    }
    thresholds = sorted(
        s.criteria["threshold"] for s in INITIAL_BADGES if s.criteria["kind"] == "lifetime_besitos"
    )
    assert thresholds == [100, 500, 1000]
    streaks = sorted(
        s.criteria["days"] for s in INITIAL_BADGES if s.criteria["kind"] == "checkin_streak"
    )
    assert streaks == [3, 7, 30]
