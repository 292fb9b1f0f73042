"""CPU time per command (getrusage) and throughput of one shape of the write side, for paired A/B
runs of two checkouts when throughput alone is too noisy to compare.

Run: `.venv/bin/python bench/ab_cpu.py SHAPE PER_USER` where SHAPE is `async` (32 users as
asyncio tasks, group commit) or `seq` (one thread, 32 users in turn, no group commit), on
PostgreSQL at `DIANABOT_BENCH_POSTGRES_URL` (default the test server) in a private schema dropped
at the end. It prints one JSON line: cpu_us (user + system CPU per command), per_s.

It measures whichever checkout comes first on `sys.path`: this one, or an older one before the
`dianabot.` namespace and the command bus (`PYTHONPATH=/path/to/old/checkout`), whose
`AsyncCommands` it then uses. Alternate the two, pair by pair; see docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# This folder holds bench/projections.py, which would shadow an older checkout's `projections`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

try:  # an older checkout, first on PYTHONPATH
    from application.async_commands import AsyncCommands  # type: ignore[import-not-found]

    from adapters.bootstrap import bootstrap  # type: ignore[import-not-found]
    from adapters.settings import Settings  # type: ignore[import-not-found]
    from application.results import Origin  # type: ignore[import-not-found]

    BUS = False
except ImportError:
    from dianabot.adapters.bootstrap import bootstrap
    from dianabot.adapters.settings import Settings
    from dianabot.application.commands import ReactToPost
    from dianabot.application.results import Origin

    BUS = True

URL = os.environ.get("DIANABOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
USERS = range(1, 33)


def main(shape: str, per_user: int) -> dict[str, Any]:
    schema = f"abcpu_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(URL, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    app_url = URL.replace("postgresql://", "postgresql+psycopg://", 1) + f"?schema={schema}"
    group = shape == "async"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=app_url, group_commit=group, aggregate_cache_size=10_000
    )
    try:
        with bootstrap(settings, database_url=app_url, group_commit=group, projections=False) as s:
            app = s.app
            for user in USERS:
                assert app.register_player(user, f"u{user}", Origin.system("b", str(user))).ok
            if BUS:
                bus = app.bus

                async def react(user: int, i: int) -> Any:
                    command = ReactToPost(user, f"p:{i}", "x")
                    return await bus.handle_async(command, Origin.telegram(user * 10**7 + i, user))
            else:
                commands = AsyncCommands(app)

                async def react(user: int, i: int) -> Any:
                    origin = Origin.telegram(user * 10**7 + i, user)
                    return await commands.react(user, f"p:{i}", "x", origin)

            async def user_loop(user: int) -> None:
                for i in range(per_user):
                    assert (await react(user, i)).ok

            async def concurrently() -> None:
                await asyncio.gather(*(user_loop(user) for user in USERS))

            def in_turn() -> None:
                for i in range(per_user):
                    for user in USERS:
                        origin = Origin.telegram(user * 10**7 + i, user)
                        assert app.react(user, f"p:{i}", "x", origin).ok

            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            asyncio.run(concurrently()) if group else in_turn()
            elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    finally:
        with psycopg.connect(URL, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
    commands = per_user * len(USERS)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"bus": BUS, "cpu_us": cpu / commands * 1e6, "per_s": commands / elapsed}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
