"""Who may issue which command: the one place the bus checks it, before anything is loaded.

Each command type declares its `callers` (`application.commands.Caller`): an admin, the player
the command is about, or the system (jobs and policies). The caller is told from the command's
`Origin`, never from the command's data:

- an **admin** is an origin whose actor is a configured admin's Telegram id (`admin:<id>` from
  `Origin.admin`, or `tg:user:<id>` from `Origin.telegram`), or an origin built for the local
  console (`Origin.console`). The console's id, 0, earns nothing by itself: `Origin.admin(0)` is
  a stranger.
- the **player** is `tg:user:<id>` where `<id>` is the user the command is about.
- the **system** is `system:<job>` or `policy:<name>`.

A command that names its acting admin (`admin_id`: a grant, a deduction, a VIP token) must name
the origin's admin, so an admin cannot record another admin's id, and a stranger cannot borrow
one. Every refusal is `not_admin` (`NotAuthorized`) and records nothing.
"""

from __future__ import annotations

from collections.abc import Collection

from dianabot.application.commands import Caller, Command
from dianabot.application.results import CONSOLE_ADMIN_ID, Origin
from dianabot.domain.errors import DomainError, NotAuthorized
from dianabot.domain.rules import checked_telegram_id

_USER_ACTORS = ("admin:", "tg:user:")
_SYSTEM_ACTORS = ("system:", "policy:")


def acting_user(origin: Origin) -> int | None:
    """The Telegram id an origin acts as (`admin:<id>`, `tg:user:<id>`), else None."""
    for prefix in _USER_ACTORS:
        if origin.actor.startswith(prefix):
            text = origin.actor.removeprefix(prefix)
            return int(text) if text.removeprefix("-").isdecimal() else None
    return None


def acting_admin(origin: Origin, admin_ids: Collection[int]) -> int | None:
    """The admin id the origin acts as, if it is an admin: the console, or a configured id."""
    if origin.local_console:
        return CONSOLE_ADMIN_ID
    user = acting_user(origin)
    return user if user is not None and user in admin_ids else None


def callers_of(command: Command, origin: Origin, admin_ids: Collection[int]) -> set[Caller]:
    """Every kind of caller the origin counts as, for this command."""
    kinds: set[Caller] = set()
    if acting_admin(origin, admin_ids) is not None:
        kinds.add(Caller.ADMIN)
    if origin.actor.startswith(_SYSTEM_ACTORS) and not origin.local_console:
        kinds.add(Caller.SYSTEM)
    if origin.actor.startswith("tg:user:") and not origin.local_console:
        about = command.telegram_ids()
        if about and acting_user(origin) == about[0]:
            kinds.add(Caller.PLAYER)
    return kinds


def authorize(command: Command, origin: Origin, admin_ids: Collection[int]) -> None:
    """Raise `NotAuthorized` unless the origin may issue the command (see the module)."""
    allowed = command.callers & callers_of(command, origin, admin_ids)
    name = type(command).__name__
    if not allowed:
        needs = " or ".join(sorted(command.callers)) or "nobody"
        raise NotAuthorized(
            f"{origin.actor} may not issue {name} (allowed: {needs}); admins are the ids in "
            "DIANABOT_ADMIN_IDS and the console",
            admin_id=acting_user(origin),
            actor=origin.actor,
            command=name,
        )
    named = getattr(command, "admin_id", None)
    if named is not None and allowed == {Caller.ADMIN}:
        admin = acting_admin(origin, admin_ids)
        if named != admin:
            raise NotAuthorized(
                f"{origin.actor} may not act as admin {named}",
                admin_id=named,
                actor=origin.actor,
                command=name,
            )


def admit(command: Command, origin: Origin, admin_ids: Collection[int]) -> DomainError | None:
    """The boundary check of every command, before it loads or records anything: who may
    issue it (`not_admin`), then the Telegram ids it names (`invalid_input`). None: go on."""
    try:
        authorize(command, origin, admin_ids)
        for telegram_id in command.telegram_ids():
            checked_telegram_id(telegram_id)
        named = getattr(command, "admin_id", None)
        if named is not None and named != CONSOLE_ADMIN_ID:
            checked_telegram_id(named, what="admin id")
    except DomainError as refusal:
        return refusal
    return None
