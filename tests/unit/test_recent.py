"""RecentKeys: the command keys an aggregate remembers, at least the last KEPT of them."""

from __future__ import annotations

import copy

from dianabot.domain.recent import GENERATION, KEPT, RecentKeys
from hypothesis import given
from hypothesis import strategies as st


def remembered(keys: list[str]) -> RecentKeys:
    memory = RecentKeys()
    for key in keys:
        memory = memory.remembered(key)
    return memory


@given(st.integers(min_value=0, max_value=3 * KEPT))
def test_the_last_kept_keys_are_remembered_and_the_window_is_bounded(count: int) -> None:
    keys = [f"react|tg:{n}" for n in range(count)]
    memory = remembered(keys)
    assert memory.count == count
    assert all(key in memory for key in keys[-KEPT:])
    assert KEPT <= len(memory) <= KEPT + GENERATION or len(memory) == count
    assert list(memory) == keys[-len(memory) :]  # the most recent ones, oldest first
    assert not any(key in memory for key in keys[: count - len(memory)])
    assert "react|tg:never" not in memory


@given(st.lists(st.sampled_from(["a", "b", "c", "d|x", ""]), max_size=700))
def test_a_memory_rebuilt_from_its_keys_and_count_is_the_same_memory(keys: list[str]) -> None:
    """What a snapshot stores (the count and the kept keys) rebuilds what replay builds."""
    memory = remembered(keys)
    rebuilt = RecentKeys(list(memory), memory.count)
    assert rebuilt == memory
    assert remembered_after(rebuilt, ["z", "y"]) == remembered(keys + ["z", "y"])


def remembered_after(memory: RecentKeys, keys: list[str]) -> RecentKeys:
    for key in keys:
        memory = memory.remembered(key)
    return memory


def test_a_memory_never_changes_and_copies_are_free() -> None:
    memory = remembered(["a", "b"])
    grown = memory.remembered("c")
    assert "c" in grown and "c" not in memory and list(memory) == ["a", "b"]
    assert copy.deepcopy(memory) is memory and copy.copy(memory) is memory
    assert memory != ["a", "b"]  # a memory equals only a memory
    assert RecentKeys(["a", "b"]) == memory


def test_an_older_snapshots_list_becomes_a_memory_on_the_next_command() -> None:
    from dianabot.domain.cause import Cause
    from dianabot.domain.player import Player

    from tests.unit.test_player import cause, new_player

    player: Player = new_player()
    player.react("chan:1", "❤️", Cause("tg:1", "tg:7", cause().at))
    player.recent_commands = list(player.recent_commands)  # as an older snapshot held it
    player.collect_events()
    player.react("chan:2", "❤️", Cause("tg:2", "tg:7", cause().at))
    assert isinstance(player.recent_commands, RecentKeys)
    assert "react|tg:1" in player.recent_commands and "react|tg:2" in player.recent_commands
