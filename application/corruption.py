"""A stream whose stored history cannot be replayed into its aggregate.

An event that no longer decodes, or a gap in a stream's versions, makes the library raise
(`MapperDeserialisationError`, `OriginatorVersionError`) wherever that aggregate is loaded.
Loading (`CoreApplication._load`) turns those into `CorruptHistory`, naming the stream and the
first version that cannot be replayed, so a command on that stream is answered
`corrupt_history` (and logged with where) instead of raising, and every other stream is used as
usual.
"""

from __future__ import annotations

from uuid import UUID


class CorruptHistory(Exception):
    """The stored events of `stream` cannot be replayed from `version` on (`reason` says why)."""

    def __init__(self, stream: UUID, version: int | None, reason: str) -> None:
        super().__init__(f"stream {stream} cannot be replayed at version {version}: {reason}")
        self.stream = stream
        self.version = version
        self.reason = reason
