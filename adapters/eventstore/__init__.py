"""The event store: everything that knows how the eventsourcing library and the databases work.

The application (`dianabot.application`) uses the library's public API and the small ports it
declares in `application/ports.py`; this package implements them, and owns every use of the
library's internals (private names, recorder classes and their subclasses, transcoder
internals) and of the database drivers (psycopg, sqlite3) on the write path. So an upgrade of
the library touches this package alone; `tests/unit/test_import_contract.py` keeps it that way.

- `database`: `DIANABOT_DATABASE_URL` -> the library's `PERSISTENCE_MODULE` and settings (one of
  the factories below) and SQLAlchemy's URL; `prepare()` checks the database can be used.
- `factory`: what every factory here adds to the library's (the ports, the stored format, the
  recorder that also writes tracking records, the lean repository); `memory`, `sqlite`,
  `postgres`: the factories and their recorders (leaner selects; on PostgreSQL, one-round-trip
  inserts and a transaction kept in flight).
- `writer`: the event writer port (one transaction of several aggregates' events and an optional
  tracking record; recordings with positions); `notifications`: scanning the log by event class.
- `transcoding`: the stored JSON, written and read faster than the library's transcoder, byte
  for byte the same; `repository`: replay without the library's per-event protocol check;
  `selects`: the one SELECT both recorders load aggregates with; `topics`: old stored topics.
- `personal`: personal data encrypted with a key per user (a transcoding of the domain's
  `PersonalText`, keys in a table of the store), the mapper that masks legacy plain text of
  forgotten users, and what forgetting a user deletes (keys, snapshots).

Tests: `tests/integration/test_eventstore_contract.py` runs every store against the same
expectations.
"""
