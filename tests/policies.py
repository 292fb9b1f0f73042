"""Helpers for the tests of the policies: a runner over some policies, users, the log."""

from __future__ import annotations

from typing import Any

from dianabot.adapters.bootstrap import Services
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.commands import Command, RegisterPlayer
from dianabot.application.policies import build
from dianabot.application.policies.base import Policy
from dianabot.application.results import CommandResult, Origin
from dianabot.projections.subscriptions import PolicyRunner

_updates = iter(range(100_000, 10**9))


def runner(services: Services, *names: str, **options: Any) -> PolicyRunner:
    """A runner of the named policies (all when none is named), from their recorded positions:
    a new one is what a restarted worker has."""
    app = services.app
    policies = build(app, list(names) if names else None)
    return PolicyRunner(app, event_log(app), policies, **options)


def runner_of(services: Services, *policies: Policy, **options: Any) -> PolicyRunner:
    app = services.app
    return PolicyRunner(app, event_log(app), list(policies), **options)


def renamed(policy_class: type[Policy], name: str) -> type[Policy]:
    """The same policy under another name: a position of its own, starting at 0, so it sees
    every event again (what a lost position, or a second delivery, would do)."""
    return type(f"{policy_class.__name__}Again", (policy_class,), {"name": name})


def as_user(user: int) -> Origin:
    return Origin.telegram(next(_updates), user)


def do(services: Services, command: Command, origin: Origin | None = None) -> CommandResult:
    user = command.telegram_ids()[0] if command.telegram_ids() else 0
    return services.app.bus.handle(command, origin or as_user(user))


def register(services: Services, *users: int) -> None:
    for user in users:
        assert do(services, RegisterPlayer(user, f"user {user}")).ok


def logged(services: Services, *names: str) -> list[Any]:
    """The events of these classes in the log, decoded, in log order."""
    log = event_log(services.app)
    found = []
    for page in log.pages(0, log.head(), 10_000):
        for row in page:
            if log.name_of(row.topic) in names:
                found.append(log.decode(row))
    return found


def head(services: Services) -> int:
    return event_log(services.app).head()


def event_ref(event: Any) -> str:
    return f"event:{event.originator_id}:{event.originator_version}"
