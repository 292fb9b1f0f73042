"""One handler per command, organised by bounded context; `HANDLERS` maps each command type to
its handler. A handler turns its command into a `Plan` (see `application.plans`): the use case's
get -> decide -> save, and how to read the result. The bus runs it."""

from __future__ import annotations

from collections.abc import Mapping

from dianabot.application.commands import Command
from dianabot.application.handlers import badges, incidents, narrative, points, vip
from dianabot.application.plans import Handler

HANDLERS: Mapping[type[Command], Handler] = {
    **points.HANDLERS,
    **badges.HANDLERS,
    **narrative.HANDLERS,
    **vip.HANDLERS,
    **incidents.HANDLERS,
}
