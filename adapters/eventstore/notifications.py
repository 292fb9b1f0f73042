"""Scanning the notification log by event class (`application.ports.NotificationScanner`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from dianabot.adapters.eventstore.topics import legacy_topic
from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.utils import get_topic

NOTIFICATION_PAGE = 500


class NotificationScanner:
    """Reads a recorder's notifications of some event classes, page by page, filtered by topic
    in the database."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder

    def scan(self, event_classes: Sequence[type], start: int = 1) -> Iterator[Notification]:
        """Events stored before the `dianabot.` namespace are found under their older topics
        too."""
        topics = [get_topic(cls) for cls in event_classes]
        topics = [*topics, *(legacy_topic(t) for t in topics if legacy_topic(t) != t)]
        position = start
        while True:
            page = self.recorder.select_notifications(position, NOTIFICATION_PAGE, topics=topics)
            yield from page
            if len(page) < NOTIFICATION_PAGE:
                return
            position = page[-1].id + 1
