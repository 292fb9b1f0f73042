"""`dianabot admin ...`: operator commands. Every act is recorded as events with actor admin:ID."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import confirm, fail, report, services
from dianabot.adapters.telegram.bot import make_bot
from dianabot.adapters.telegram.refunds import (
    ALREADY_REFUNDED,
    TELEGRAM_REFUSED,
    TELEGRAM_UNREACHABLE,
    UNKNOWN_CHARGE,
    Refund,
    refund_stars_payment,
)
from dianabot.adapters.telegram.runner import InvalidToken, check_token
from dianabot.adapters.telegram.texts import T, Texts
from dianabot.application.authority import admit
from dianabot.application.commands import RefundStarsPayment
from dianabot.application.results import CONSOLE_ADMIN_ID, CommandResult, Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.badge import BadgeSpec

admin_app = typer.Typer(
    help="Administrative commands (grant, deduct, badges, VIP, refunds, forget).",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
AdminId = Annotated[
    int, typer.Option("--admin", help="Acting admin's Telegram id (0 = server console).")
]


def admin_origin(admin: int) -> Origin:
    """The origin of one admin act at this console: the console itself (`--admin 0`, the
    default), or a configured admin's id; any other id is refused `not_admin` by the bus."""
    return Origin.console() if admin == CONSOLE_ADMIN_ID else Origin.admin(admin)


Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (recorded in the event).")]


@admin_app.command()
def grant(
    user: Annotated[int, typer.Argument(help="Telegram user id.")],
    amount: Annotated[int, typer.Argument(help="Besitos to give (positive).")],
    reason: Reason,
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Give besitos to a user (they count towards lifetime and level)."""
    with services() as wired:
        result = wired.app.grant_points(admin, user, amount, reason, admin_origin(admin))
    report(result, as_json, f"granted {amount} besitos to {user}")


@admin_app.command()
def deduct(
    user: Annotated[int, typer.Argument(help="Telegram user id.")],
    amount: Annotated[int, typer.Argument(help="Besitos to take (positive).")],
    reason: Reason,
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Take besitos from a user; refused if the balance would go below zero."""
    with services() as wired:
        result = wired.app.deduct_points(admin, user, amount, reason, admin_origin(admin))
    report(result, as_json, f"deducted {amount} besitos from {user}")


@admin_app.command("define-badge")
def define_badge(
    slug: Annotated[str, typer.Argument(help="Identifier, e.g. 'fiel-100'.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    description: Annotated[str, typer.Option(help="What it rewards.")],
    icon: Annotated[str, typer.Option(help="An emoji.")] = "🏅",
    criteria: Annotated[
        str, typer.Option(help='JSON, e.g. {"kind": "lifetime_besitos", "threshold": 2000}')
    ] = '{"kind": "manual"}',
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Define a new badge."""
    try:
        parsed = json.loads(criteria)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"criteria is not valid JSON: {error}") from None
    spec = BadgeSpec(slug, name, description, icon, parsed)
    with services() as wired:
        result = wired.app.define_badge(spec, admin_origin(admin))
    report(result, as_json, f"badge {slug} defined")


@admin_app.command("retire-badge")
def retire_badge(
    slug: str, reason: Reason, admin: AdminId = CONSOLE_ADMIN_ID, as_json: AsJson = False
) -> None:
    """Retire a badge: it is awarded no more (existing holdings stay in history)."""
    with services() as wired:
        result = wired.app.retire_badge(slug, reason, admin_origin(admin))
    report(result, as_json, f"badge {slug} retired")


@admin_app.command("award-badge")
def award_badge(
    slug: str,
    user: int,
    reason: Reason,
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Award a badge by hand; the evidence is this admin act."""
    origin = admin_origin(admin)
    with services() as wired:
        result = wired.app.award_badge(slug, user, [f"{origin.causation}: {reason}"], origin)
    report(result, as_json, f"badge {slug} awarded to {user}")


@admin_app.command("revoke-badge")
def revoke_badge(
    slug: str, user: int, reason: Reason, admin: AdminId = CONSOLE_ADMIN_ID, as_json: AsJson = False
) -> None:
    """Revoke a user's badge (a new event; the award stays in history)."""
    with services() as wired:
        result = wired.app.revoke_badge(slug, user, reason, admin_origin(admin))
    report(result, as_json, f"badge {slug} revoked from {user}")


@admin_app.command("issue-vip-token")
def issue_vip_token(
    days: Annotated[int, typer.Option("--days", help="Days of VIP the token gives.")] = 30,
    valid_days: Annotated[
        int, typer.Option("--valid-days", help="Days the token can be redeemed in.")
    ] = 30,
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Issue a one-time VIP token. It is shown this once: only its hash is stored."""
    with services() as wired:
        result = wired.app.issue_vip_token(admin, days, admin_origin(admin), valid_days=valid_days)
    token = result.details.get("token", "")
    report(
        result,
        as_json,
        f"VIP token for {days} days (redeem by {result.details.get('expires_at')}): {token}\n"
        f"the user sends: /start {token}",
    )


@admin_app.command("grant-vip")
def grant_vip(
    user: Annotated[int, typer.Argument(help="Telegram user id.")],
    days: Annotated[int, typer.Option("--days", help="Days of VIP (extends an active period).")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (recorded as the grant's reference).")
    ] = "granted by admin",
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Grant (or extend) a user's VIP period by hand."""
    with services() as wired:
        result = wired.app.grant_vip(user, days, "admin", reason, admin_origin(admin))
    report(result, as_json, f"VIP for {user} until {result.details.get('vip_until')}")


REFUND_EXITS = {
    UNKNOWN_CHARGE: exits.REFUSED,
    ALREADY_REFUNDED: exits.REFUSED,
    TELEGRAM_REFUSED: exits.REFUSED,
    TELEGRAM_UNREACHABLE: exits.UNAVAILABLE,
}


@admin_app.command()
def refund(
    user: Annotated[int, typer.Argument(help="Telegram user id of the payer.")],
    charge_id: Annotated[
        str, typer.Argument(help="The payment's telegram_payment_charge_id.", show_default=False)
    ],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (recorded).")] = "refund",
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Refund a Telegram Stars payment: Telegram's refundStarPayment through the bot
    (DIANABOT_BOT_TOKEN, DIANABOT_TELEGRAM_API_SERVER), then the refund recorded (its VIP days
    taken back), as the bot's /refund does; the user is told."""
    with services(as_json=as_json) as wired:
        resolved = wired.settings
        secret = resolved.bot_token.get_secret_value() if resolved.bot_token else None
        try:
            token = check_token(secret)
        except InvalidToken as error:
            fail(exits.USAGE, "no usable bot token", f"{error} (a refund goes through the bot)")
        if wired.app.get_player(user) is None:
            fail(exits.REFUSED, "unknown_user", f"no user {user} is registered", as_json)
        origin = admin_origin(admin)
        command = RefundStarsPayment(user, charge_id=charge_id, admin_id=admin, reason=reason)
        refused = admit(command, origin, wired.app.admin_ids)  # before Telegram refunds anything
        if refused is not None:
            fail(exits.REFUSED, refused.code, str(refused), as_json)
        api_server = resolved.telegram_api_server
        done = asyncio.run(
            _refund(wired.app, token, api_server, user, charge_id, reason, admin, origin)
        )
        if done.result is not None:  # Telegram refunded: recorded, or why not
            until = wired.app.vip_until(user)
            result = done.result.with_details(amount=done.payment.amount if done.payment else None,
                                              vip_until=until)  # fmt: skip
            left = f"VIP until {until:%Y-%m-%d %H:%M} UTC" if until else "no VIP left"
            report(result, as_json, f"refunded payment {charge_id} of user {user}; {left}")
            return
    fail(REFUND_EXITS.get(done.outcome, exits.REFUSED), done.outcome, done.message, as_json)


async def _refund(
    app: DianaApplication,
    token: str,
    api_server: str,
    user: int,
    charge: str,
    reason: str,
    admin: int,
    origin: Origin,
) -> Refund:
    async def record(command: RefundStarsPayment) -> CommandResult:
        return await asyncio.to_thread(app.bus.handle, command, origin)

    bot = make_bot(token, api_server)
    try:
        return await refund_stars_payment(
            bot,
            app,
            charge,
            admin_id=admin,
            reason=reason,
            record=record,
            user=user,
            notice=Texts.load()(T.VIP_REFUNDED),
        )
    finally:
        await bot.session.close()


@admin_app.command()
def forget(
    user: Annotated[int, typer.Argument(help="Telegram user id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    admin: AdminId = CONSOLE_ADMIN_ID,
    as_json: AsJson = False,
) -> None:
    """Forget a user: destroy the key of their personal data (name, language), delete their
    snapshots and erase them from the read models; records PlayerForgotten. History is not
    edited: it reads those fields as erased from now on (docs/privacy.md). Irreversible."""
    confirm(
        f"forget user {user}: their name and language become unreadable forever",
        yes=yes,
        as_json=as_json,
    )
    with services(as_json=as_json) as wired:
        result = wired.app.forget_player(user, admin_origin(admin))
        if result.ok and wired.projections is not None:
            result = result.with_details(read_model_rows=wired.projections.forget(user))
    report(
        result,
        as_json,
        f"forgot user {user}: {result.details.get('keys_deleted', 0)} key(s) destroyed, "
        f"{result.details.get('snapshots_deleted', 0)} snapshot(s) deleted",
    )
