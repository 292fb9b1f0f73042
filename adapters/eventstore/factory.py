"""What every persistence factory of this package adds to the library's (`DianaFactory`).

The library constructs the factory named by `PERSISTENCE_MODULE` when an application starts;
ours (`memory.DianaPOPOFactory`, `sqlite.DianaSQLiteFactory`, `postgres.DianaPostgresFactory`)
also build the application's ports (`application.ports.StoreFactory`) and decide:
- the stored format: `transcoding.FlatJSONTranscoder` (the library's JSON bytes, faster) with
  the transcodings of the domain's value types;
- the recorder: the library's *process* recorder, an application recorder that also writes a
  tracking record in the same transaction as the events it is given with;
- the repository: `repository.LeanRepository`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dianabot.adapters.eventstore import topics  # noqa: F401  (old stored topics resolve)
from dianabot.adapters.eventstore.notifications import NotificationScanner
from dianabot.adapters.eventstore.repository import lean
from dianabot.adapters.eventstore.transcoding import FlatJSONTranscoder, register_transcodings
from dianabot.adapters.eventstore.writer import EventWriter
from dianabot.application.ports import AfterCommit
from eventsourcing.application import Repository
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    JSONTranscoder,
    Mapper,
    Transcoder,
)


class DianaFactory(InfrastructureFactory[Any]):
    """Mixed in before a library factory: `class F(DianaFactory, SQLiteFactory)`."""

    writer_class: type[EventWriter] = EventWriter

    def transcoder(self) -> Transcoder:
        transcoder = super().transcoder()
        if type(transcoder) is JSONTranscoder:  # the default: same output, faster when flat
            transcoder = FlatJSONTranscoder()
        if isinstance(transcoder, JSONTranscoder):
            register_transcodings(transcoder)
        return transcoder

    def application_recorder(self) -> ApplicationRecorder:
        """The events table and its notification log, able to write tracking records too."""
        return self.process_recorder()

    def repository(self, built: Repository[UUID]) -> Repository[UUID]:
        return lean(built)

    def event_writer(
        self, recorder: ApplicationRecorder, mapper: Mapper[UUID], after_commit: AfterCommit
    ) -> EventWriter:
        return self.writer_class(recorder, mapper, after_commit)

    def notification_scanner(self, recorder: ApplicationRecorder) -> NotificationScanner:
        return NotificationScanner(recorder)
