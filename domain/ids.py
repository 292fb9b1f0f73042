"""Deterministic aggregate identities.

Every aggregate id is a uuid5 of one namespace constant and a readable name, so a Telegram user
always maps to the same Player (and the same badge award) without a lookup table.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

NAMESPACE = UUID("3b5d5c3e-7f1a-4d3c-9a57-0d1a2b1c9e42")


@lru_cache(maxsize=65_536)  # every command derives it; uuid5 hashes with SHA-1 each time
def player_id(telegram_id: int) -> UUID:
    return uuid5(NAMESPACE, f"player:{telegram_id}")


def badge_id(slug: str) -> UUID:
    return uuid5(NAMESPACE, f"badge:{slug}")


def badge_award_id(slug: str, telegram_id: int) -> UUID:
    return uuid5(NAMESPACE, f"badge-award:{slug}:{telegram_id}")


def story_id(slug: str) -> UUID:
    return uuid5(NAMESPACE, f"story:{slug}")


def progress_id(telegram_id: int, story_slug: str) -> UUID:
    return uuid5(NAMESPACE, f"story-progress:{story_slug}:{telegram_id}")


def vip_token_id(token_hash: str) -> UUID:
    return uuid5(NAMESPACE, f"vip-token:{token_hash}")


def stars_payment_id(charge_id: str) -> UUID:
    return uuid5(NAMESPACE, f"stars-payment:{charge_id}")


def parked_event_id(policy: str, position: int) -> UUID:
    return uuid5(NAMESPACE, f"parked-event:{policy}:{position}")


def journal_id(name: str = "system") -> UUID:
    """The system's own stream of what went wrong and what was checked (`domain.incidents`)."""
    return uuid5(NAMESPACE, f"journal:{name}")
