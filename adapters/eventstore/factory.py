"""What every persistence factory of this package adds to the library's (`DianaFactory`).

The library constructs the factory named by `PERSISTENCE_MODULE` when an application starts;
ours (`memory.DianaPOPOFactory`, `sqlite.DianaSQLiteFactory`, `postgres.DianaPostgresFactory`)
also build the application's ports (`application.ports.StoreFactory`) and decide:
- the stored format: `transcoding.FlatJSONTranscoder` (the library's JSON bytes, faster) with
  the transcodings of the domain's value types;
- the recorder: the library's *process* recorder, an application recorder that also writes a
  tracking record in the same transaction as the events it is given with;
- the repository: `repository.LeanRepository`;
- personal data (`personal`): `PersonalText` values encrypted with per-user keys kept in a
  table of the store (created with the events' tables), the mapper that masks legacy plain
  text of forgotten users, and the erasure `dianabot admin forget` runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from dianabot.adapters.eventstore import topics  # noqa: F401  (old stored topics resolve)
from dianabot.adapters.eventstore.chain import KEY_ENV, Chainer, key_file
from dianabot.adapters.eventstore.notifications import NotificationScanner
from dianabot.adapters.eventstore.personal import (
    Erasure,
    Keyring,
    PersonalMapper,
    PersonalTextEncrypted,
    table_for,
)
from dianabot.adapters.eventstore.repository import lean
from dianabot.adapters.eventstore.transcoding import FlatJSONTranscoder, register_transcodings
from dianabot.adapters.eventstore.writer import EventWriter
from dianabot.application.ports import AfterCommit, SubscriberPositions
from eventsourcing.application import Repository
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    JSONTranscoder,
    Mapper,
    Tracking,
    TrackingRecorder,
    Transcoder,
)


class DianaFactory(InfrastructureFactory[Any]):
    """Mixed in before a library factory: `class F(DianaFactory, SQLiteFactory)`."""

    writer_class: type[EventWriter] = EventWriter
    _keyring: Keyring | None = None
    store_kind = "memory"
    """`chain.key_file`'s kind: where the audit key lives when it is not named."""

    def chainer(self) -> Chainer:
        """The audit chain's writer for this store's recorder (`chain.key_file`)."""
        sqlite_file = self.env.get("SQLITE_DBNAME") if self.store_kind == "sqlite" else None
        return Chainer(key_file(self.store_kind, self.env.get(KEY_ENV), sqlite_file))

    def keyring(self) -> Keyring:
        """The store's personal data keys (one per factory: the transcoder's and the erasure's)."""
        if self._keyring is None:
            self._keyring = Keyring(table_for(getattr(self, "datastore", None)))
        return self._keyring

    def transcoder(self) -> Transcoder:
        transcoder = super().transcoder()
        if type(transcoder) is JSONTranscoder:  # the default: same output, faster when flat
            transcoder = FlatJSONTranscoder()
        if isinstance(transcoder, JSONTranscoder):
            register_transcodings(transcoder)
            transcoder.register(PersonalTextEncrypted(self.keyring()))
        return transcoder

    def mapper(
        self, transcoder: Transcoder | None = None, mapper_class: type[Mapper[Any]] | None = None
    ) -> Mapper[Any]:
        """The library's mapper, masking legacy personal values of forgotten users."""
        mapper = super().mapper(transcoder, mapper_class or PersonalMapper)
        if isinstance(mapper, PersonalMapper):
            mapper.keyring = self.keyring()
        return mapper

    def application_recorder(self) -> ApplicationRecorder:
        """The events table and its notification log, able to write tracking records too (and
        the personal data key tables beside them)."""
        recorder = self.process_recorder()
        create = getattr(self, "env_create_table", None)  # the SQL factories have it
        if create is not None and create():
            self.keyring().table.create()
        return recorder

    def personal_data(self, snapshots: AggregateRecorder | None) -> Erasure:
        """What forgetting a user does at the store (`application.ports.PersonalDataStore`)."""
        return Erasure(self.keyring(), snapshots)

    def repository(self, built: Repository[UUID]) -> Repository[UUID]:
        return lean(built)

    def event_writer(
        self, recorder: ApplicationRecorder, mapper: Mapper[UUID], after_commit: AfterCommit
    ) -> EventWriter:
        return self.writer_class(recorder, mapper, after_commit)

    def notification_scanner(self, recorder: ApplicationRecorder) -> NotificationScanner:
        return NotificationScanner(recorder)

    def subscriber_positions(self, recorder: ApplicationRecorder) -> SubscriberPositions:
        return TrackingPositions(recorder)


class TrackingPositions:
    """`application.ports.SubscriberPositions` through the library's recorder, one statement a
    subscriber: enough where a statement costs no round trip (PostgreSQL's is `postgres`')."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        if not isinstance(recorder, TrackingRecorder):
            raise TypeError(f"{type(recorder).__name__} keeps no tracking records")
        self.recorder = recorder

    def read(self, names: Sequence[str]) -> dict[str, int]:
        assert isinstance(self.recorder, TrackingRecorder)
        return {name: self.recorder.max_tracking_id(name) or 0 for name in names}

    def advance(self, positions: Mapping[str, int]) -> set[str]:
        moved: set[str] = set()
        for name, position in positions.items():
            try:  # alone, as a command's own transaction with no events would be
                self.recorder.insert_events([], tracking=Tracking(name, position))
            except IntegrityError:
                continue
            moved.add(name)
        return moved
