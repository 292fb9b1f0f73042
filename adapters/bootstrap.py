"""The composition root: the only place that turns settings into a wired object graph.

Tests call `bootstrap` with their own settings, clock or database URL, the way cosmicpython's
bootstrap takes injected dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.persistence import Database, database_from_url, prepare
from adapters.settings import Settings
from application.clock import Clock, SystemClock
from application.service import DianaApplication


@dataclass
class Services:
    settings: Settings
    database: Database
    clock: Clock
    app: DianaApplication

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database_url: str | None = None,
    group_commit: bool | None = None,
) -> Services:
    settings = settings or Settings()
    database = database_from_url(database_url or settings.database_url)
    prepare(database)
    env = dict(database.eventsourcing_env)
    env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
    clock = clock or SystemClock()
    app = DianaApplication(
        env,
        clock=clock,
        admin_ids=settings.admin_ids,
        group_commit=settings.group_commit if group_commit is None else group_commit,
        max_batch=settings.group_commit_max_batch,
    )
    return Services(settings=settings, database=database, clock=clock, app=app)
