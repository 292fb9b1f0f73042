"""Compensating commands for what is wrong in the history itself: add the missing events.

Reconciliation finds problems that the replay of the history shows too: they are in the events,
not in a read model, so no table swap repairs them. Which command compensates which defect is
an application decision, made here: the defects arrive as plain data (the application knows no
read-model row or report type), and each repair is one typed command on the bus, which appends
events. No event is ever edited or deleted.

The causation of every command is `job:reconcile:<reference>`, the reference naming the finding
and the log position it was found at: a finding repaired twice at one position is compensated
once (the aggregate refuses the second command as a duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from uuid import UUID

from dianabot.application.app import CONSOLE_ADMIN_ID
from dianabot.application.commands import Command, GrantPoints, RelocateProgress, RevokeBadge
from dianabot.application.results import CommandResult, Origin
from dianabot.application.vip import VipExpiryRun

REPAIR_JOB = "reconcile"
REASON_LIMIT = 200
"""How much of a finding's description a revocation keeps as its reason."""


class CommandHandler(Protocol):
    """Runs one command (the application's bus, or a fake in tests)."""

    def handle(self, command: Command, origin: Origin) -> CommandResult: ...


@runtime_checkable
class RepairCommands(Protocol):
    """What the repairs need: the bus their commands go through, and the VIP expiry job."""

    @property
    def bus(self) -> CommandHandler: ...

    def expire_due_vips(self) -> VipExpiryRun: ...


# ----- what is wrong ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NegativeBalance:
    """A player's history spends more than it earned (a race the old bot let through)."""

    telegram_id: int
    balance: int
    reference: str


@dataclass(frozen=True)
class StrandedProgress:
    """A player stands on a story fragment the published version no longer has."""

    telegram_id: int
    story_slug: str
    reference: str


@dataclass(frozen=True)
class InvalidAward:
    """A badge held whose definition is unknown, or was retired before the award."""

    telegram_id: int
    badge_slug: str
    reason: str
    reference: str


@dataclass(frozen=True)
class OverdueVip:
    """A VIP period ended with no VipExpired (the expiry job finds every such player itself)."""

    player_id: UUID
    reference: str


Defect = NegativeBalance | StrandedProgress | InvalidAward | OverdueVip


# ----- what was done ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Repair:
    """One command issued: its use case, its outcome ("ok" or a refusal code), what it did."""

    command: str
    outcome: str
    detail: str = ""

    @classmethod
    def of(cls, command: str, result: CommandResult) -> Repair:
        return cls(command, result.outcome, result.message or ", ".join(result.event_names()))


@dataclass(frozen=True)
class Compensation:
    """The repairs of one report: one command per player defect, the expiry job at most once."""

    repairs: dict[Defect, Repair] = field(default_factory=dict)
    expiry: Repair | None = None


def compensate(app: RepairCommands, defects: Sequence[Defect]) -> Compensation:
    """Issue the command each defect calls for, in order; overdue VIP periods share one run of
    the expiry job, after the others (it expires every due period, not one player's)."""
    repairs: dict[Defect, Repair] = {}
    overdue = False
    for defect in defects:
        if isinstance(defect, OverdueVip):
            overdue = True
        else:
            repairs[defect] = repair(app, defect)
    return Compensation(repairs, expire_overdue_vips(app) if overdue else None)


def repair(
    app: RepairCommands, defect: NegativeBalance | StrandedProgress | InvalidAward
) -> Repair:
    """The one command that compensates one player's defect."""
    origin = Origin.system(REPAIR_JOB, defect.reference)
    if isinstance(defect, NegativeBalance):
        command: Command = GrantPoints(
            defect.telegram_id,
            admin_id=CONSOLE_ADMIN_ID,
            amount=-defect.balance,
            reason="reconcile: restore a negative balance to zero",
        )
        name = "grant_points"
    elif isinstance(defect, StrandedProgress):
        command = RelocateProgress(defect.telegram_id, defect.story_slug)
        name = "relocate_progress"
    else:
        reason = "reconcile: " + defect.reason[:REASON_LIMIT]
        command = RevokeBadge(defect.badge_slug, defect.telegram_id, reason)
        name = "revoke_badge"
    return Repair.of(name, app.bus.handle(command, origin))


def expire_overdue_vips(app: RepairCommands) -> Repair:
    """Run the VIP expiry job now: it records VipExpired for every period that has ended."""
    run = app.expire_due_vips()
    outcome = "ok" if not run.failed else "failed"
    return Repair("expire_due_vips", outcome, f"expired {list(run.expired)}")
