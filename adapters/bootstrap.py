"""The composition root: the only place that turns settings into a wired object graph.

Tests call `bootstrap` with their own settings, clock or database URL, the way cosmicpython's
bootstrap takes injected dependencies.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from dianabot.adapters.coordination import build_coordinator
from dianabot.adapters.eventstore.chain import KEY_ENV, require_key_file, use_clock
from dianabot.adapters.eventstore.database import Database, database_from_url, prepare
from dianabot.adapters.eventstore.leadership import creating_tables
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.settings import Settings
from dianabot.application.clock import Clock, SystemClock
from dianabot.application.coordinator import Coordinator
from dianabot.application.policies import build as build_policies
from dianabot.application.service import DianaApplication
from dianabot.projections.consistency import ReplayConsistency
from dianabot.projections.service import Projections
from dianabot.projections.subscriptions import Policies


@dataclass
class Services:
    settings: Settings
    database: Database
    clock: Clock
    app: DianaApplication
    projections: Projections | None = None
    """Read models in the same database, with their runner (not started: the bot starts it)."""
    policies: Policies | None = None
    """The policies with their runner (not started: the workers start it)."""
    coordinator: Coordinator | None = None
    """The facade over the bus and the subscriptions (`initialize()` starts them), health."""

    def close(self) -> None:
        if self.policies is not None:
            self.policies.stop()
        if self.projections is not None:
            self.projections.close()
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
    projections: bool = True,
    policies: bool = True,
    read_only: bool = False,
) -> Services:
    """`read_only`: the caller only reads; a missing or empty store is an error
    (`StoreMissing`), read models never built are one too (`ReadModelsMissing`), and no table
    or schema is created, neither the events' nor the read models'."""
    settings = settings or Settings()
    database = database_from_url(database_url or settings.database_url)
    prepare(database, read_only=read_only)  # an unreachable store is said first
    if not read_only:  # a writer: no guessed key (`chain.key_file`); a reader fails if it needs it
        require_key_file(database.kind, settings.audit_key_file)
    env = dict(database.eventsourcing_env)
    if read_only:
        env["CREATE_TABLE"] = "n"
    # The library reads "0" as an unbounded cache; an empty value means no cache at all.
    env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size or "")
    if settings.audit_key_file:
        env[KEY_ENV] = settings.audit_key_file
    clock = clock or SystemClock()
    # Tables are created (or found) one process at a time (leadership.creating_tables).
    with nullcontext() if read_only else creating_tables(database):
        app = DianaApplication(
            env,
            clock=clock,
            admin_ids=settings.admin_ids,
            group_commit=settings.group_commit if group_commit is None else group_commit,
            max_batch=settings.group_commit_max_batch,
        )
        use_clock(app, clock.now)  # the chain's commit times
        read_side = None
        if projections:
            try:
                read_side = Projections.open(
                    app,
                    event_log(app),
                    database.kind,
                    database.sqlalchemy_url,
                    database.schema,
                    read_only=read_only,
                )
            except BaseException:
                app.close()
                raise
    log = event_log(app)
    # Error recovery checks users through the read side's per-user reconciliation.
    checker = ReplayConsistency(read_side) if read_side is not None else None
    reactions = Policies(app, log, build_policies(app, consistency=checker)) if policies else None
    return Services(
        settings=settings,
        database=database,
        clock=clock,
        app=app,
        projections=read_side,
        policies=reactions,
        coordinator=build_coordinator(
            app.bus,
            log,
            clock,
            read_side,
            reactions,
            incidents=read_side.incidents() if read_side is not None else None,
        ),
    )
