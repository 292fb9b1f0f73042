"""Error recovery: after a failure, check the user concerned and record what the check found.

A command that failed for a reason other than a rule refusal is recorded by the bus as
`CommandFailed` on the system's journal (a corrupt history, conflicts the bus gave up on); a
policy that gave up on an event parked it (`EventParked`). Either may mean a user's read models
no longer match their history, so this policy runs a consistency check of that user (the read
side's one-user reconciliation, without repairs, through the `ConsistencyChecker` port) and
records its outcome as `ConsistencyChecked` on the journal, with the policy's new position: once
per triggering event. Repairs stay an operator's decision (`dianabot reconcile --user ID --fix`).

The user concerned is the failed command's (its Telegram id), or the owner of the parked
event's stream (a player's, a story progress's, a badge award's), read from that stream's own
events when it cannot be loaded (a corrupt history). Events this policy parked itself are not
checked again (a check that keeps failing would otherwise park, and check, forever). A user
already checked for an event less than `RECHECK_AFTER` earlier (event time) is not checked
again: a corrupt stream fails every command of its user, and one check says it all.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dianabot.application.app import CoreApplication
from dianabot.application.commands import Command, RecordConsistencyCheck
from dianabot.application.corruption import CorruptHistory
from dianabot.application.policies.base import Policy
from dianabot.application.ports import ConsistencyChecker

RECHECK_AFTER = timedelta(minutes=5)
REMEMBERED_USERS = 10_000


class ErrorRecovery(Policy):
    name = "error-recovery"
    handles = frozenset({"CommandFailed", "EventParked"})

    def __init__(self, app: CoreApplication, consistency: ConsistencyChecker) -> None:
        super().__init__(app)
        self.consistency = consistency
        self._checked: OrderedDict[int, datetime] = OrderedDict()

    def react(self, event: Any) -> Command | None:
        user = self.user_concerned(event)
        if user is None:
            return None
        at: datetime = event.timestamp
        last = self._checked.get(user)
        if last is not None and abs(at - last) < RECHECK_AFTER:
            return None
        outcome = self.consistency.check(user)
        self._checked[user] = at
        self._checked.move_to_end(user)
        if len(self._checked) > REMEMBERED_USERS:
            self._checked.popitem(last=False)
        return RecordConsistencyCheck(
            user,
            outcome.consistent,
            outcome.differences,
            outcome.position,
            tuple(outcome.problems),
        )

    def user_concerned(self, event: Any) -> int | None:
        """The Telegram id of the user a failure is about, if one is known."""
        if type(event).__name__ == "CommandFailed":
            user = event.telegram_id
            return user if isinstance(user, int) and user > 0 else None
        if event.policy == self.name:
            return None
        try:
            stream = UUID(str(event.stream_id))
        except ValueError:
            return None
        return self.stream_owner(stream)

    def stream_owner(self, stream: UUID) -> int | None:
        """The Telegram id a stream belongs to (its aggregate's `telegram_id`), None for the
        streams of no user; for a stream that cannot be loaded, its first event that says."""
        try:
            aggregate = self.app._load(stream)
        except CorruptHistory:
            return self._owner_from_events(stream)
        telegram_id = getattr(aggregate, "telegram_id", None)
        return telegram_id if isinstance(telegram_id, int) else None

    def _owner_from_events(self, stream: UUID) -> int | None:
        for stored in self.app.recorder.select_events(stream):
            try:
                decoded = self.app.mapper.to_domain_event(stored)
            except Exception:  # the corrupt one: the others may still say whose it is
                continue
            telegram_id = getattr(decoded, "telegram_id", None)
            if isinstance(telegram_id, int):
                return telegram_id
        return None
