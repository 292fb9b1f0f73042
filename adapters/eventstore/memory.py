"""The in-memory store (`memory://`: tests, throwaway demos): the library's POPO recorders, with
the tamper-evident chain (`chain`) kept beside the events under the recorder's lock."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from dianabot.adapters.eventstore.chain import (
    Chainer,
    KeyFile,
    Link,
    Row,
    id_bytes,
    micros,
)
from dianabot.adapters.eventstore.factory import DianaFactory
from eventsourcing.persistence import ProcessRecorder, StoredEvent
from eventsourcing.popo import POPOFactory, POPOProcessRecorder


class ChainedPOPORecorder(POPOProcessRecorder):
    """The library's in-memory process recorder, writing a link per event with the events."""

    def __init__(self) -> None:
        super().__init__()
        self.chainer = Chainer(KeyFile(None))
        self.chain: list[Link] = []

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        positions = super()._update_table(stored_events, **kwargs)
        if stored_events and positions:  # under the recorder's lock (`_insert_events`)
            head = self.chain[-1] if self.chain else None
            self.chain.extend(self.chainer.links(head, positions, stored_events))
        return positions

    def chain_store(self) -> MemoryChainStore:
        return MemoryChainStore(self)


class MemoryChainStore:
    """The chain of the in-memory store (`chain.ChainStore`)."""

    kind = "memory"

    def __init__(self, recorder: ChainedPOPORecorder) -> None:
        self.recorder = recorder

    def event_head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def chain_head(self) -> Link | None:
        chain = self.recorder.chain
        return chain[-1] if chain else None

    def chain_first(self) -> Link | None:
        chain = self.recorder.chain
        return chain[0] if chain else None

    def _index(self, position: int) -> int:
        return bisect.bisect_left([link.position for link in self.recorder.chain], position)

    def link_at(self, position: int) -> Link | None:
        chain = self.recorder.chain
        i = self._index(position)
        return chain[i] if i < len(chain) and chain[i].position == position else None

    def link_before(self, position: int) -> Link | None:
        i = self._index(position)
        return self.recorder.chain[i - 1] if i > 0 else None

    def count_events_before(self, position: int) -> int:
        return min(position - 1, self.event_head())

    def events(self, start: int, stop: int) -> list[Row]:
        found = self.recorder.select_notifications(start, max(stop - start, 1), stop=stop - 1)
        return [
            Row(n.id, id_bytes(n.originator_id), n.originator_version, n.topic, n.state)
            for n in found
        ]

    def links(self, start: int, stop: int) -> list[Link]:
        return [link for link in self.recorder.chain if start <= link.position < stop]

    def last_position_committed_by(self, when: datetime) -> int:
        us = micros(when)
        found = [link.position for link in self.recorder.chain if link.committed_at <= us]
        return max(found, default=0)

    def snapshot_rows(self) -> Iterator[StoredEvent]:
        return iter(())


class DianaPOPOFactory(DianaFactory, POPOFactory):
    """The library's POPO factory with this package's ports (see `factory`) and the chain."""

    def process_recorder(self) -> ProcessRecorder:
        recorder = ChainedPOPORecorder()
        recorder.chainer = self.chainer()
        return recorder
