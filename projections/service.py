"""The read side of the application in one object: read models, live runner, rebuild, reconcile.

`adapters.bootstrap` builds one from the same database as the event store, with the event log
(`ports.EventLog`) the event store package implements; the bot starts its live runner, the CLI
rebuilds and reconciles through it, and screens read its tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dianabot.projections.fold import Progress
from dianabot.projections.incident_log import Incidents
from dianabot.projections.live import LiveRunner
from dianabot.projections.ports import EventLog, ReadSideApp
from dianabot.projections.positions import ProjectionStatus
from dianabot.projections.rebuild import RebuildResult, rebuild
from dianabot.projections.reconcile import ReconcileReport, reconcile
from dianabot.projections.registry import PROJECTORS, projector_classes
from dianabot.projections.runner import ProjectionRunner
from dianabot.projections.schema import TableSet
from dianabot.projections.store import ReadStore, StoreKind
from sqlalchemy import Table, update
from sqlalchemy.engine import URL


class Projections:
    """Every read model of one application, kept by one live runner."""

    def __init__(
        self,
        app: ReadSideApp,
        store: ReadStore,
        events: EventLog,
        *,
        names: Sequence[str] | None = None,
        poll_interval: float = 0.25,
        read_only: bool = False,
        **runner_options: Any,
    ) -> None:
        """`read_only`: the caller only reads, so nothing is created: read models that were
        never built raise `ReadModelsMissing` (naming them) instead of being created empty."""
        self.app = app
        self.store = store
        self.events = events
        self.names = tuple(names) if names is not None else tuple(PROJECTORS)
        self.runner = ProjectionRunner.for_projectors(
            events, store, projector_classes(list(self.names)), **runner_options
        )
        self.live = LiveRunner(self.runner, poll_interval=poll_interval)
        try:
            if read_only:
                self.runner.check_schema()
            else:
                self.runner.ensure_schema()
        except BaseException:
            self.store.close()
            raise
        self.tables = TableSet([t for n in self.names for t in PROJECTORS[n].tables])
        """The live read-model tables (queries, reconciliation)."""

    @classmethod
    def open(
        cls,
        app: ReadSideApp,
        events: EventLog,
        kind: StoreKind,
        url: URL | str,
        schema: str | None = None,
        **options: Any,
    ) -> Projections:
        return cls(app, ReadStore.open(kind, url, schema), events, **options)

    def table(self, base: str) -> Table:
        """A live read-model table, for queries (`select(projections.table("player_points"))`)."""
        return self.tables[base]

    def incidents(self) -> Incidents:
        """The incidents read model's questions (`application.ports.IncidentLog`): parked
        events, failures, consistency checks, the last reconciliation."""
        if "incidents" not in self.names:
            raise LookupError("the incidents read model is not among these projections")
        return Incidents(self)

    # ----- running --------------------------------------------------------------------------

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        return self.runner.catch_up(until=until, progress=progress)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def status(self) -> list[ProjectionStatus]:
        return self.runner.status()

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        return self.live.wait_for(position, timeout)

    # ----- maintenance ----------------------------------------------------------------------

    def rebuild(
        self, names: Sequence[str] | None = None, progress: Progress | None = None
    ) -> RebuildResult:
        return rebuild(self.events, self.store, names, progress=progress)

    def reconcile(
        self,
        *,
        user: int | None = None,
        fix: bool = False,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> ReconcileReport:
        return reconcile(self, user=user, fix=fix, now=now, progress=progress)

    def forget(self, telegram_id: int) -> int:
        """Erase a forgotten user's personal fields from the read models now, rather than when
        the projector reaches `PlayerForgotten` (which erases them as well): a replay of a
        forgotten user's history reads them as erased at every position, so the live rows
        agree with any reconciliation. How many rows changed."""
        if "player_points" not in self.names:
            return 0
        table = self.tables["player_points"]
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(table)
                .where(table.c.telegram_id == telegram_id)
                .values(display_name=None, language_code=None)
            )
        return int(changed.rowcount or 0)

    def close(self) -> None:
        self.live.stop()
        self.store.close()
