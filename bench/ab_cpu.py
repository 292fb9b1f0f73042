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

import importlib.util
import json
import os
import sys
import tempfile
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
# PostgreSQL needs the audit key named (a checkout without the chain ignores it).
os.environ.setdefault(
    "DIANABOT_AUDIT_KEY_FILE", str(Path(tempfile.gettempdir()) / "dianabot-bench-audit.key")
)
_spec = importlib.util.spec_from_file_location(
    "cpu_shapes", Path(__file__).with_name("cpu_shapes.py")
)
assert _spec is not None and _spec.loader is not None
shapes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shapes)


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
            for user in shapes.USERS:
                assert app.register_player(user, f"u{user}", Origin.system("b", str(user))).ok

            def origin(user: int, i: int) -> Any:
                return Origin.telegram(user * 10**7 + i, user)

            if BUS:
                bus = app.bus

                async def react(user: int, i: int) -> Any:
                    return await bus.handle_async(ReactToPost(user, f"p:{i}", "x"), origin(user, i))
            else:
                commands = AsyncCommands(app)

                async def react(user: int, i: int) -> Any:
                    return await commands.react(user, f"p:{i}", "x", origin(user, i))

            measured = shapes.measure(app, react, origin, shape, per_user)
    finally:
        with psycopg.connect(URL, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
    commands = measured["commands"]
    return {
        "bus": BUS,
        "cpu_us": measured["cpu_s"] / commands * 1e6,
        "per_s": commands / measured["seconds"],
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
