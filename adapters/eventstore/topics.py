"""Topics stored before the layers became `dianabot.*` subpackages keep resolving.

Events are never rewritten, so a topic stored as `domain.player:Player.PointsAwarded` must
still name the class now imported as `dianabot.domain.player:Player.PointsAwarded`. Importing
this module (every factory of the package does) registers the old names.
"""

from __future__ import annotations

import contextlib
import importlib

from eventsourcing.utils import TopicError, register_topic

LEGACY_PACKAGES = ("domain", "application", "projections", "adapters", "content")
"""Top-level names the layers were imported as before they became `dianabot.*` subpackages."""


def register_legacy_topics() -> None:
    """Resolve topics stored under the old top-level names (`domain.player:Player...`) to the
    same classes: events are never rewritten, so their stored topics must keep resolving."""
    for name in LEGACY_PACKAGES:
        with contextlib.suppress(TopicError):  # registered already
            register_topic(name, importlib.import_module(f"dianabot.{name}"))


def legacy_topic(topic: str) -> str:
    """The topic an event class had before the `dianabot.` namespace."""
    return topic.removeprefix("dianabot.")


register_legacy_topics()
