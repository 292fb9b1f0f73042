"""The vip-conversion policy: a free user who hits a VIP gate gets one invitation to VIP, right
after the hit, at most once per period, queued on the Player for the bot (every store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.story_file import parse_story
from dianabot.application.clock import ManualClock
from dianabot.application.commands import (
    GrantVip,
    InviteToVip,
    MakeChoice,
    PublishStory,
    StartStory,
)
from dianabot.application.policies.vip_conversion import VipConversion
from dianabot.application.results import Origin
from dianabot.domain import rules
from dianabot.domain.ids import player_id

from tests.conftest import ADMIN_ID, by_system, make_settings
from tests.policies import do, event_ref, head, logged, register, renamed, runner, runner_of
from tests.samples import SMALL_STORY

ANA, BEA = 631, 632
SLUG = "prueba"


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as wired:
        command = PublishStory(parse_story(SMALL_STORY, "prueba.yaml"))
        assert do(wired, command, Origin.admin(ADMIN_ID)).ok
        register(wired, ANA, BEA)
        for user in (ANA, BEA):
            assert do(wired, StartStory(user, SLUG)).ok
        yield wired


def hit_gate(services: Services, user: int) -> None:
    """The VIP-only shortcut of fragment `a`: refused, and VipGateHit recorded."""
    result = do(services, MakeChoice(user, "a_v", SLUG))
    assert result.outcome == "vip_required" and result.event_names() == ["VipGateHit"]


def invitations(services: Services, user: int) -> list[object]:
    return [
        e for e in logged(services, "VipInvitationQueued") if e.originator_id == player_id(user)
    ]


def test_a_gate_hit_queues_one_invitation_naming_the_gate(
    services: Services, clock: ManualClock
) -> None:
    hit_gate(services, ANA)
    clock.advance(minutes=5)
    policies = runner(services, "vip-conversion")
    policies.catch_up()
    [invitation] = invitations(services, ANA)
    [hit] = logged(services, "VipGateHit")
    assert (invitation.story_slug, invitation.fragment_id, invitation.choice_id) == (
        SLUG, "a", "a_v",
    )  # fmt: skip
    assert invitation.evidence == [event_ref(hit)]
    assert invitation.causation == event_ref(hit) and invitation.actor == "policy:vip-conversion"
    assert invitations(services, BEA) == []
    assert policies.status()[0].position == head(services)

    # Seen again (a lost position): refused, nothing recorded.
    before = head(services)
    again = renamed(VipConversion, "vip-conversion-again")
    runner_of(services, again(services.app)).catch_up()
    assert head(services) == before


def test_at_most_one_invitation_per_period(services: Services, clock: ManualClock) -> None:
    policies = runner(services, "vip-conversion")
    hit_gate(services, ANA)
    policies.catch_up()
    clock.advance(days=1)
    hit_gate(services, ANA)  # a day later: within the period
    policies.catch_up()
    assert len(invitations(services, ANA)) == 1
    refused = do(services, InviteToVip(ANA, SLUG, "a", "a_v", ("e:1",)), by_system())
    assert refused.outcome == "already_invited" and refused.events == ()
    assert refused.retry_after == rules.VIP_INVITATION_PERIOD - timedelta(days=1)

    clock.advance(rules.VIP_INVITATION_PERIOD - timedelta(days=1))
    hit_gate(services, ANA)  # the period has passed since the invitation
    policies.catch_up()
    assert len(invitations(services, ANA)) == 2


def test_no_invitation_for_a_user_who_became_vip_or_a_hit_seen_too_late(
    services: Services, clock: ManualClock
) -> None:
    hit_gate(services, ANA)
    assert do(services, GrantVip(ANA, 30, "admin", "regalo"), Origin.admin(ADMIN_ID)).ok
    hit_gate(services, BEA)
    clock.advance(rules.VIP_INVITATION_WINDOW + timedelta(seconds=1))  # the workers were down
    policies = runner(services, "vip-conversion")
    policies.catch_up()
    assert invitations(services, ANA) == invitations(services, BEA) == []
    assert policies.slots[0].commands == 0
    refused = do(services, InviteToVip(ANA, SLUG, "a", "a_v", ("e:1",)), by_system())
    assert refused.outcome == "already_vip" and refused.events == ()
