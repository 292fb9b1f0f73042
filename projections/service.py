"""The read side of the application in one object: read models, live runner, rebuild, reconcile.

`adapters.bootstrap` builds one from the same database as the event store; the bot starts its live
runner, the CLI rebuilds and reconciles through it, and screens read its tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dianabot.projections.rebuild import RebuildResult, rebuild
from dianabot.projections.reconcile import ReconcileReport, reconcile
from dianabot.projections.registry import PROJECTORS, projector_classes
from dianabot.projections.runner import Progress, ProjectionRunner, ProjectionStatus
from dianabot.projections.schema import TableSet
from dianabot.projections.store import ReadStore, StoreKind
from eventsourcing.application import Application
from sqlalchemy import Table
from sqlalchemy.engine import URL


class Projections:
    """Every read model of one application, kept by one live runner."""

    def __init__(
        self,
        app: Application[Any],
        store: ReadStore,
        *,
        names: Sequence[str] | None = None,
        **runner_options: Any,
    ) -> None:
        self.app = app
        self.store = store
        self.names = tuple(names) if names is not None else tuple(PROJECTORS)
        self.runner = ProjectionRunner.for_projectors(
            app, store, projector_classes(list(self.names)), **runner_options
        )
        self.runner.ensure_schema()
        self._tables = TableSet([t for n in self.names for t in PROJECTORS[n].tables])

    @classmethod
    def open(
        cls,
        app: Application[Any],
        kind: StoreKind,
        url: URL | str,
        schema: str | None = None,
        **options: Any,
    ) -> Projections:
        return cls(app, ReadStore.open(kind, url, schema), **options)

    def table(self, base: str) -> Table:
        """A live read-model table, for queries (`select(projections.table("player_points"))`)."""
        return self._tables[base]

    # ----- running --------------------------------------------------------------------------

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        return self.runner.catch_up(until=until, progress=progress)

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    def status(self) -> list[ProjectionStatus]:
        return self.runner.status()

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        return self.runner.wait_for(position, timeout)

    # ----- maintenance ----------------------------------------------------------------------

    def rebuild(
        self, names: Sequence[str] | None = None, progress: Progress | None = None
    ) -> RebuildResult:
        return rebuild(self.app, self.store, names, progress=progress)

    def reconcile(
        self,
        *,
        user: int | None = None,
        fix: bool = False,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> ReconcileReport:
        return reconcile(self, user=user, fix=fix, now=now, progress=progress)

    def close(self) -> None:
        self.runner.stop()
        self.store.close()
