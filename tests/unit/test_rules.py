"""The level table and amount checks (spec section 2)."""

from __future__ import annotations

import pytest
from dianabot.domain.errors import InvalidAmount
from dianabot.domain.rules import LEVELS, MAX_AMOUNT, checked_amount, level_for, next_level


@pytest.mark.parametrize(
    ("lifetime", "number", "name"),
    [
        (0, 1, "Novato"),
        (99, 1, "Novato"),
        (100, 2, "Curioso"),
        (249, 2, "Curioso"),
        (250, 3, "Coqueto"),
        (499, 3, "Coqueto"),
        (500, 4, "Atrevido"),
        (999, 4, "Atrevido"),
        (1_000, 5, "Seductor"),
        (1_999, 5, "Seductor"),
        (2_000, 6, "Encantador"),
        (3_499, 6, "Encantador"),
        (3_500, 7, "Irresistible"),
        (5_999, 7, "Irresistible"),
        (6_000, 8, "Leyenda"),
        (9_999, 8, "Leyenda"),
        (10_000, 9, "Musa"),
        (14_499, 9, "Musa"),
        (14_500, 10, "Cosmos"),
        (10**9, 10, "Cosmos"),
    ],
)
def test_level_thresholds(lifetime: int, number: int, name: str) -> None:
    level = level_for(lifetime)
    assert (level.number, level.name) == (number, name)


def test_levels_are_ordered_and_chained() -> None:
    assert [level.number for level in LEVELS] == list(range(1, 11))
    assert all(a.threshold < b.threshold for a, b in zip(LEVELS, LEVELS[1:], strict=False))
    assert next_level(LEVELS[0]) == LEVELS[1]
    assert next_level(LEVELS[-1]) is None


def test_negative_lifetime_is_a_bug() -> None:
    with pytest.raises(ValueError):
        level_for(-1)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "10", True, None, MAX_AMOUNT + 1])
def test_checked_amount_refuses_bad_amounts(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        checked_amount(bad)


def test_checked_amount_accepts_the_cap() -> None:
    assert checked_amount(1) == 1
    assert checked_amount(MAX_AMOUNT) == MAX_AMOUNT
