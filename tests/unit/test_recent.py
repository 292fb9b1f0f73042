"""RecentKeys: the command keys an aggregate remembers: every key younger than RETENTION on the
commands' own clock, and at least the last KEPT whatever their age."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta

import pytest
from dianabot.domain.recent import GENERATION, KEPT, RETENTION, RecentKeys
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def remembered(keys: list[str], step: timedelta = timedelta(seconds=1)) -> RecentKeys:
    memory = RecentKeys()
    for index, key in enumerate(keys):
        memory = memory.remembered(key, T0 + index * step)
    return memory


@given(st.integers(min_value=0, max_value=3 * KEPT))
def test_the_last_kept_keys_are_remembered_whatever_their_age(count: int) -> None:
    """A day between commands: only the KEPT floor keeps keys, and it is bounded."""
    keys = [f"react|tg:{n}" for n in range(count)]
    memory = remembered(keys, step=RETENTION)
    assert memory.count == count
    assert all(key in memory for key in keys[-KEPT:])
    assert KEPT <= len(memory) <= KEPT + GENERATION or len(memory) == count
    assert list(memory) == keys[-len(memory) :]  # the most recent ones, oldest first
    assert not any(key in memory for key in keys[: count - len(memory)])
    assert "react|tg:never" not in memory


def test_every_key_younger_than_the_retention_is_remembered_whatever_came_between() -> None:
    """5,000 commands in a day (one every 17 s): the first is still remembered at the last."""
    keys = [f"spend:shop|tg:0:update:{n}" for n in range(5_000)]
    step = RETENTION / 5_000
    memory = remembered(keys, step=step)
    assert len(memory) == 5_000 and all(key in memory for key in keys)


def test_a_key_older_than_the_retention_and_the_floor_is_forgotten() -> None:
    """Documented behaviour: past RETENTION and more than KEPT other keys, a key is forgotten
    (within a generation: whole generations are dropped)."""
    memory = RecentKeys().remembered("spend:shop|tg:0:update:1", T0)
    for n in range(GENERATION - 1):  # the rest of its generation, as old
        memory = memory.remembered(f"react|tg:0:update:{n + 2}", T0)
    later = T0 + RETENTION + timedelta(seconds=1)
    for n in range(KEPT):
        memory = memory.remembered(f"react|tg:0:update:{n + 100}", later)
    assert "spend:shop|tg:0:update:1" in memory  # not yet: the floor holds its generation
    memory = memory.remembered("react|tg:0:update:last", later)
    assert "spend:shop|tg:0:update:1" not in memory
    assert len(memory) <= KEPT + GENERATION


def test_a_clock_going_backwards_forgets_nothing_early() -> None:
    memory = RecentKeys().remembered("a", T0 + timedelta(days=3))
    for n in range(KEPT + 2 * GENERATION):
        memory = memory.remembered(f"k{n}", T0 + timedelta(days=2, hours=1))
    assert "a" in memory  # its generation's newest time is the later one


times = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d|x", ""]),
        st.integers(min_value=-3_600, max_value=40 * 3_600),
    ),
    max_size=700,
)


def remembered_at(memory: RecentKeys, keys: list[tuple[str, int]]) -> RecentKeys:
    """`keys` with their time in seconds from T0."""
    for key, seconds in keys:
        memory = memory.remembered(key, T0 + timedelta(seconds=seconds))
    return memory


def advancing(keys: list[tuple[str, int]], start: int = 0) -> list[tuple[str, int]]:
    """A roughly advancing clock: ten minutes per key, plus the drawn jitter."""
    return [(key, seconds + 600 * (start + index)) for index, (key, seconds) in enumerate(keys)]


@given(times, times)
def test_a_memory_rebuilt_from_its_generations_is_the_same_memory(
    keys: list[tuple[str, int]], more: list[tuple[str, int]]
) -> None:
    """What a snapshot stores (the count and the generations with their times) rebuilds what
    replay builds, and both go on alike, pruning included."""
    keys = advancing(keys)
    memory = remembered_at(RecentKeys(), keys)
    rebuilt = RecentKeys.restored(memory.count, memory.generations())
    assert rebuilt == memory
    assert pickle.loads(pickle.dumps(memory)) == memory
    later = advancing(more, len(keys))
    assert remembered_at(rebuilt, later) == remembered_at(RecentKeys(), keys + later)


def test_a_memory_never_changes_and_copies_are_free() -> None:
    memory = remembered(["a", "b"])
    grown = memory.remembered("c", T0)
    assert "c" in grown and "c" not in memory and list(memory) == ["a", "b"]
    assert copy.deepcopy(memory) is memory and copy.copy(memory) is memory
    assert memory != ["a", "b"]  # a memory equals only a memory
    assert RecentKeys.restored(2, [(T0 + timedelta(seconds=1), ["a", "b"])]) == memory


def test_an_older_snapshots_keys_are_dated_by_the_next_key_and_kept_a_retention() -> None:
    """Keys and a count with no times (an older snapshot's memory): the next key's time dates
    them, so they are remembered for RETENTION from there, however many keys follow."""
    memory = RecentKeys([f"old{n}" for n in range(300)], 300)
    assert KEPT <= len(memory) <= KEPT + GENERATION
    kept = list(memory)
    for n in range(1_000):
        memory = memory.remembered(f"new{n}", T0 + timedelta(seconds=n))
    assert all(key in memory for key in kept)
    for n in range(KEPT + GENERATION):
        memory = memory.remembered(f"late{n}", T0 + RETENTION + timedelta(hours=1))
    assert not any(key in memory for key in kept)


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


def test_an_update_applied_before_causations_were_keyed_by_bot_is_still_refused() -> None:
    """`tg:update:<id>` was the causation before `tg:<bot id>:update:<id>`: a re-delivery after
    the upgrade, keyed by bot, is still the same update."""
    from dianabot.domain.cause import Cause
    from dianabot.domain.errors import DuplicateCommand
    from dianabot.domain.player import Player

    from tests.unit.test_player import cause, new_player

    player: Player = new_player()
    at = cause().at
    player.react("chan:1", "❤️", Cause("tg:update:41", "tg:user:7", at))
    with pytest.raises(DuplicateCommand):
        player.react("chan:1", "❤️", Cause("tg:0:update:41", "tg:user:7", at))
    player.react("chan:2", "❤️", Cause("tg:0:update:42", "tg:user:7", at))
    player.react("chan:3", "❤️", Cause("tg:1:update:42", "tg:user:7", at))  # another bot


def test_a_snapshot_from_before_paid_references_were_kept_still_grants() -> None:
    from dianabot.domain.cause import Cause
    from dianabot.domain.errors import DuplicateCommand
    from dianabot.domain.player import Player

    from tests.unit.test_player import cause, new_player

    player: Player = new_player()
    del player.vip_references  # as an older snapshot restores it
    at = cause().at
    player.grant_vip(30, "stars", "charge:1", Cause("tg:0:update:1", "tg:user:7", at))
    with pytest.raises(DuplicateCommand):
        player.grant_vip(30, "stars", "charge:1", Cause("tg:0:update:2", "tg:user:7", at))
    assert player.vip_references == {"charge:1"}
