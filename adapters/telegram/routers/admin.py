"""Admin-only commands: `/health`, `/reconcile`, `/grant USER AMOUNT REASON`. Anyone else gets
a polite refusal; the bus checks a grant's admin again (`not_admin`) all the same."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import Message
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import number, refusal
from dianabot.adapters.telegram.texts import T
from dianabot.application.commands import GrantPoints

ADMIN_COMMANDS = ("health", "reconcile", "grant")


class IsAdmin(Filter):
    """The sender is one of DIANABOT_ADMIN_IDS."""

    async def __call__(self, message: Message, gw: Gateway) -> bool:
        return message.from_user is not None and gw.is_admin(message.from_user.id)


async def refused(message: Message, gw: Gateway) -> None:
    await message.answer(gw.texts(T.ADMIN_REFUSED))


async def health(message: Message, gw: Gateway) -> None:
    report = await gw.health()
    reasons = "\n".join(report.reasons + report.recommendations)
    await message.answer(gw.texts(T.ADMIN_HEALTH, status=report.status, reasons=reasons).strip())


async def reconcile(message: Message, gw: Gateway) -> None:
    report = await gw.reconcile()
    verdict = T.ADMIN_CONSISTENT if report.consistent else T.ADMIN_INCONSISTENT
    await message.answer(
        gw.texts(
            T.ADMIN_RECONCILE,
            verdict=gw.texts(verdict),
            differences=report.differences,
            position=report.position,
        )
    )


async def grant(message: Message, command: CommandObject, gw: Gateway) -> None:
    admin = message.from_user
    assert admin is not None  # IsAdmin
    parts = (command.args or "").split(maxsplit=2)
    user, amount = (number(p) for p in parts[:2]) if len(parts) == 3 else (None, None)
    if user is None or amount is None:
        await message.answer(gw.texts(T.ADMIN_GRANT_USAGE))
        return
    reason = parts[2]
    command_ = GrantPoints(user, admin_id=admin.id, amount=amount, reason=reason)
    result = await gw.issue(command_, admin.id)
    if not result.ok:
        await message.answer(refusal(gw, result))
        return
    target = await gw.profile(user, after=admin.id)
    balance = target["balance"] if target is not None else "?"
    await message.answer(gw.texts(T.ADMIN_GRANT_OK, amount=amount, user=user, balance=balance))


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="admin")
    router.message.register(refused, Command(*ADMIN_COMMANDS), ~IsAdmin())
    router.message.register(health, Command("health"))
    router.message.register(reconcile, Command("reconcile"))
    router.message.register(grant, Command("grant"))
    return router
