"""The composed application: every bounded context's use cases over one event store."""

from __future__ import annotations

from dianabot.application.badges import BadgeCommands
from dianabot.application.handlers import HANDLERS
from dianabot.application.narrative import NarrativeCommands
from dianabot.application.points import PointsCommands
from dianabot.application.vip import VipCommands


class DianaApplication(PointsCommands, BadgeCommands, NarrativeCommands, VipCommands):
    """Register new contexts' command mixins here, and their handlers in `handlers/`."""

    name = "dianabot"  # the event tables are dianabot_events and dianabot_snapshots
    handlers = HANDLERS
