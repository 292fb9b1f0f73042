"""The base of every aggregate: events carry causation and actor, and commands are idempotent."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dianabot.domain.cause import Cause
from dianabot.domain.errors import DuplicateCommand
from dianabot.domain.growset import GrowSet
from dianabot.domain.recent import RecentKeys
from eventsourcing.domain import Aggregate

_SHARED = frozenset({str, int, bool, type(None), datetime, UUID, GrowSet, RecentKeys})
"""Immutable types an aggregate copy shares with the original."""


class DianaAggregate(Aggregate):
    """An eventsourcing aggregate whose every event says what caused it and who acted."""

    class Event(Aggregate.Event):
        causation: str
        actor: str

    def __deepcopy__(self, memo: dict[int, Any]) -> DianaAggregate:
        """Copy for the aggregate cache, several times cheaper than a generic deep copy.

        Convention that makes this exact: an aggregate's lists and sets hold immutable values
        (str, int, frozen dataclasses). Dicts may nest, so they are deep-copied. Anything else
        is shared, so it must be immutable (`GrowSet`, `RecentKeys`, datetimes, strings).
        """
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        state = clone.__dict__
        for name, value in self.__dict__.items():
            if type(value) in _SHARED:  # most attributes: one lookup, no isinstance calls
                state[name] = value
            elif isinstance(value, list | set):
                state[name] = value.copy()
            elif isinstance(value, dict):
                state[name] = copy.deepcopy(value, memo)
            else:
                state[name] = value
        return clone

    # Subclasses set `self.recent_commands = RecentKeys()` in their creation event. (No
    # class-level annotation at run time: the library would turn it into a constructor
    # argument; a snapshot older than `RecentKeys` restores a list.)
    if TYPE_CHECKING:
        recent_commands: RecentKeys | list[str]

    def _refuse_duplicate(self, command: str, cause: Cause) -> None:
        """Telegram (or a policy) may deliver the same cause twice: apply it once only (for as
        long as `recent.RETENTION`; docs/rules.md, Idempotency)."""
        memory = self.recent_commands
        causation = cause.causation
        unkeyed = _unkeyed_telegram(causation) if causation.startswith("tg:") else causation
        if _command_key(command, causation) in memory or (
            unkeyed is not causation and _command_key(command, unkeyed) in memory
        ):
            raise DuplicateCommand(
                f"{command} for {cause.causation} was already applied", causation=cause.causation
            )

    def _remember(self, command: str, causation: str, at: datetime) -> None:
        """Called from event mutators with the event's own timestamp, so the memory (kept for
        `recent.RETENTION` on those timestamps) is rebuilt identically on replay."""
        keys = self.recent_commands
        if type(keys) is not RecentKeys:  # a list, from a snapshot older than `RecentKeys`
            keys = RecentKeys(keys)
        self.recent_commands = keys.remembered(_command_key(command, causation), at)


def _command_key(command: str, causation: str) -> str:
    return f"{command}|{causation}"


def _unkeyed_telegram(causation: str) -> str:
    """`tg:update:<id>` for `tg:<bot id>:update:<id>`: how Telegram causations read before they
    were keyed by bot, so an update applied just before that change is still refused after it
    (such keys age out of the memory like any other). Other causations come back as they are
    (the same object)."""
    parts = causation.split(":")
    if len(parts) == 4 and parts[2] == "update":
        return f"tg:update:{parts[3]}"
    return causation
