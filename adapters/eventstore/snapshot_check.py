"""`audit verify --snapshots`: every stored snapshot equals the replay of its aggregate's events
up to its version.

Why a pass of its own: the chain covers events, not snapshots (they are derived, pruned and
rewritten). But an aggregate loads from its latest snapshot, so an edited snapshot changes a
balance without touching an event, and an edited event before a snapshot stays invisible until
that snapshot is gone. Here each snapshot's state is compared with the state replayed from the
events alone (both through the application's transcoder and back, timestamps of the snapshots
left out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dianabot.adapters.eventstore.chain import chain_store_of
from dianabot.adapters.eventstore.repository import replay


@dataclass
class SnapshotReport:
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    """`<aggregate id>@<version>: why`, at most `LIMIT`."""
    failed: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0


LIMIT = 20


def verify_snapshots(app: Any, progress: Callable[[int], None] | None = None) -> SnapshotReport:
    report = SnapshotReport()
    if getattr(app, "snapshots", None) is None:
        return report
    mapper = app.mapper
    encode = mapper.transcoder.encode
    decode = mapper.transcoder.decode
    for stored in chain_store_of(app).snapshot_rows():
        report.checked += 1
        name = f"{stored.originator_id}@{stored.originator_version}"
        problem = None
        try:
            snapshot = mapper.to_domain_event(stored)
            from_snapshot = snapshot.mutate(None)
            events = [
                mapper.to_domain_event(row)
                for row in app.recorder.select_events(
                    stored.originator_id, lte=stored.originator_version
                )
            ]
            if len(events) != stored.originator_version:
                problem = f"{len(events)} events up to version {stored.originator_version}"
            else:
                replayed = replay(None, events)
                kind = type(snapshot)
                # Compared decoded: personal fields are encrypted with a fresh nonce each time
                # they are encoded, so equal states need not give equal bytes.
                left = decode(encode(kind.take(from_snapshot).state))
                if left != decode(encode(kind.take(replayed).state)):
                    problem = "the snapshot differs from the replay of its events"
        except Exception as error:  # a snapshot or event that cannot be decoded
            problem = f"cannot compare: {type(error).__name__}: {error}"
        if problem is not None:
            report.failed += 1
            if len(report.mismatches) < LIMIT:
                report.mismatches.append(f"{name}: {problem}")
        if progress is not None:
            progress(report.checked)
    return report
