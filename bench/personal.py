"""What encrypting personal data costs (docs/performance.md, "Personal data").

Run: `.venv/bin/python bench/personal.py [--n 5000] [--postgres URL]`

Same run, same process, side by side:
- one value encrypted / decrypted (AES-256-GCM, key cached), against the value as plain text;
- one `PlayerRegistered` decoded by the application's mapper: version 3 (encrypted, key cached)
  against version 2 (plain text, through the upcaster), on SQLite;
- a new user's key: read (none) and created in the store's key table, per store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dianabot.adapters.bootstrap import bootstrap  # noqa: E402
from dianabot.adapters.eventstore.personal import Keyring, MemoryKeys  # noqa: E402
from dianabot.adapters.settings import Settings  # noqa: E402
from dianabot.application.results import Origin  # noqa: E402
from dianabot.domain.ids import player_id  # noqa: E402
from dianabot.domain.personal import PersonalText  # noqa: E402
from eventsourcing.persistence import StoredEvent  # noqa: E402

# PostgreSQL has no default audit key file (docs/operations.md): a benchmark names one.
os.environ.setdefault(
    "DIANABOT_AUDIT_KEY_FILE", str(Path(tempfile.gettempdir()) / "dianabot-bench-audit.key")
)


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    """Best of 3 runs of n calls, microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def settings(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url, group_commit=False)  # type: ignore[call-arg]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--postgres", default="")
    args = parser.parse_args()
    n = args.n

    ring = Keyring(MemoryKeys())
    value = PersonalText("tg:user:1", "Ana María")
    sealed = ring.encrypt(value)
    print(f"encrypt one value        {per_call(lambda i: ring.encrypt(value), n):8.1f} us")
    print(f"decrypt one value        {per_call(lambda i: ring.decrypt(sealed), n):8.1f} us")
    print(f"plain: json of the text  {per_call(lambda i: json.dumps('Ana María'), n):8.1f} us")

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        with bootstrap(settings(url), projections=False, policies=False) as wired:
            app = wired.app
            app.register_player(7, "Ana María", Origin.telegram(1, 7), "es")
            (v3,) = app.recorder.select_events(player_id(7))
            state = json.loads(v3.state)
            state.update(class_version=2, display_name="Ana María", language_code="es")
            v2 = StoredEvent(v3.originator_id, 1, v3.topic, json.dumps(state).encode())
            decode = app.mapper.to_domain_event
            encrypted, plain = per_call(lambda i: decode(v3), n), per_call(lambda i: decode(v2), n)
            print(f"decode PlayerRegistered v3 (encrypted) {encrypted:6.1f} us")
            print(f"decode PlayerRegistered v2 (plain)     {plain:6.1f} us")
            keys = app.personal_data.keyring  # type: ignore[attr-defined]
            count = max(n // 10, 100)
            start = time.perf_counter()
            for i in range(count):
                keys.current(f"tg:user:{2 * 10**6 + i}")
            created = (time.perf_counter() - start) / count * 1e6
            print(f"sqlite   new user's key (read + create) {created:8.1f} us")
        if args.postgres:
            with bootstrap(settings(args.postgres), projections=False, policies=False) as wired:
                keys = wired.app.personal_data.keyring  # type: ignore[attr-defined]
                base = int(time.time())
                start = time.perf_counter()
                for i in range(count):
                    keys.current(f"tg:user:bench:{base}:{i}")
                created = (time.perf_counter() - start) / count * 1e6
                print(f"postgres new user's key (read + create) {created:8.1f} us")
                start = time.perf_counter()
                for i in range(count):
                    keys.current(f"tg:user:bench:{base}:{i}")
                print(
                    "postgres existing key (read)           "
                    f"{(time.perf_counter() - start) / count * 1e6:8.1f} us"
                )
                datastore = keys.table.datastore
                start = time.perf_counter()
                for _ in range(count):
                    with datastore.transaction(commit=False) as cursor:
                        cursor.execute("SELECT 1")
                print(
                    "postgres SELECT 1, same pool (calibration) "
                    f"{(time.perf_counter() - start) / count * 1e6:4.1f} us"
                )


if __name__ == "__main__":
    main()
