"""Read-side benchmark: full rebuild and reconcile of every read model over a big history.

Run (PostgreSQL at 127.0.0.1:5432, database `test`, trust auth; ~10 minutes at full size):

    .venv/bin/python bench/projections.py --events 1000000 --players 10000

Seeds N events over P players in a private schema (bulk: stored events encoded by the
application's mapper, inserted by the recorder in batches of 10,000; no command per event), then,
in the same run, measures:

- baseline "library runner": the eventsourcing library's own `ProjectionRunner` with a
  PostgreSQL tracking recorder that upserts one balance per event (one transaction per event),
  on the first 20,000 events;
- baseline "minimal fold": decode the log in pages of 5,000, sum balances in memory, one upsert
  batch plus a tracking row per page (one table, no other work);
- baseline "COPY": a raw `COPY` of one row per event into a plain table;
- dianabot: full rebuild of all seven read models (`projections.rebuild.rebuild`), full
  reconcile (`projections.reconcile.reconcile`), and the per-user check of the heaviest user
  (10,000 events at full size) against a plain read-and-decode of that user's streams.

Rebuild and reconcile each run in a fresh subprocess, so their peak memory (max RSS) is their
own. Prints a table with the ratios and targets; see docs/performance.md for a recorded run.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Runnable as a plain script from any directory; and this file's own directory must not shadow
# the `projections` package with this module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from dianabot.adapters.eventstore.crafted import CraftedWriter  # noqa: E402
from dianabot.adapters.eventstore.database import database_from_url, prepare  # noqa: E402
from dianabot.adapters.eventstore.log import event_log  # noqa: E402
from dianabot.adapters.story_file import load_bundled_story  # noqa: E402
from dianabot.application.clock import ManualClock  # noqa: E402
from dianabot.application.service import DianaApplication  # noqa: E402
from dianabot.domain import rules  # noqa: E402
from dianabot.domain.badge import Badge, BadgeAward  # noqa: E402
from dianabot.domain.catalogue import INITIAL_BADGES  # noqa: E402
from dianabot.domain.ids import badge_award_id, badge_id, player_id, progress_id, story_id  # noqa: E402
from dianabot.domain.personal import personal  # noqa: E402
from dianabot.domain.player import Player  # noqa: E402
from dianabot.domain.progress import StoryProgress  # noqa: E402
from dianabot.domain.story_versions import StoryVersions  # noqa: E402
from dianabot.projections.reconcile import user_streams  # noqa: E402
from dianabot.projections.service import Projections  # noqa: E402
from psycopg import sql  # noqa: E402

BASE_URL = os.environ.get(
    "DIANABOT_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SPAN = timedelta(weeks=12)
LIBRARY_SAMPLE = 20_000
FOLD_PAGE = 5_000


# ----- seeding --------------------------------------------------------------------------------


@dataclass
class PlayerState:
    telegram_id: int
    pid: uuid.UUID
    lifetime: int = 0
    balance: int = 0
    level: int = 1
    streak: int = 0
    reactions: int = 0
    posts: int = 0
    messages: int = 0
    polls: int = 0
    progress: uuid.UUID | None = None
    fragment: str | None = None
    visited: set[str] | None = None
    clues: set[str] | None = None
    chapters: set[int] | None = None
    vip_until: datetime | None = None
    badges: set[str] | None = None


class Seeder:
    """Generates a plausible history (every event type the projections read) and writes it."""

    def __init__(self, app: DianaApplication, players: int, events: int, seed: int = 7) -> None:
        self.app = app
        self.writer = CraftedWriter(app, batch_size=10_000)
        self.random = random.Random(seed)
        self.players_n = players
        self.target = events
        self.players: dict[int, PlayerState] = {}
        self.now = T0
        self.story = load_bundled_story().story
        self.heavy_events = min(10_000, events // 4)
        self.update = 0
        self.awards = True
        """Emit the badge awards the policies would (False: leave them to the policies)."""

    def run(self) -> int:
        self._catalogue()
        step = SPAN / max(1, self.target // 2)
        heavy = 0
        while (written := self.writer.written + len(self.writer.pending)) < self.target:
            self.now += step
            # User 1 acts whenever it is behind its share (10,000 events of a million), so its
            # history is as long as the per-user target says, interleaved with everyone else's.
            if heavy * self.target < self.heavy_events * written:
                self._act(self._player(1))
                heavy += self.writer.written + len(self.writer.pending) - written
            else:
                self._act(self._player(self.random.randint(2, self.players_n)))
        self.now = max(self.now, T0 + SPAN)  # the benchmark's clock: every ended period expired
        for state in self.players.values():
            if state.vip_until is not None and state.vip_until <= self.now:
                self._emit(Player.VipExpired, state.pid, "system:vip-expiry", until=state.vip_until)
        self.writer.flush()
        return self.writer.written

    def _emit(self, cls: type[Any], originator: uuid.UUID, actor: str, **fields: Any) -> None:
        self.writer.append(
            cls,
            originator,
            self.now,
            causation=f"tg:update:{self.update}",
            actor=actor,
            new_stream=True,
            **fields,
        )

    def _catalogue(self) -> None:
        for spec in INITIAL_BADGES:
            self._emit(
                Badge.BadgeDefined,
                badge_id(spec.slug),
                "system:seed",
                slug=spec.slug,
                name=spec.name,
                description=spec.description,
                icon=spec.icon,
                criteria=dict(spec.criteria),
            )
        sid = story_id(self.story.slug)
        self._emit(StoryVersions.StoryCreated, sid, "system:seed", slug=self.story.slug)
        self._emit(
            StoryVersions.StoryPublished,
            sid,
            "system:seed",
            slug=self.story.slug,
            version=1,
            content_hash=self.story.content_hash,
            fragment_ids=sorted(self.story.fragment_ids),
            start=self.story.start,
            content=self.story.canonical_dict(),
        )

    def _player(self, telegram_id: int) -> PlayerState:
        state = self.players.get(telegram_id)
        if state is None:
            state = self.players[telegram_id] = PlayerState(telegram_id, player_id(telegram_id))
            self.update += 1
            self._emit(
                Player.PlayerRegistered,
                state.pid,
                f"tg:user:{telegram_id}",
                telegram_id=telegram_id,
                display_name=personal(telegram_id, f"user {telegram_id}"),
                language_code=personal(telegram_id, "es"),
            )
        return state

    def _act(self, p: PlayerState) -> None:
        self.update += 1
        actor = f"tg:user:{p.telegram_id}"
        roll = self.random.random()
        if roll < 0.35:
            p.posts += 1
            self._emit(Player.ReactionRecorded, p.pid, actor, post=f"chan:{p.posts}", emoji="❤️")
            p.reactions += 1
            self._earn(p, "reaction", rules.REACTION_POINTS, f"chan:{p.posts}", actor)
        elif roll < 0.60:
            p.messages += 1
            self._emit(Player.MessageCounted, p.pid, actor, message=f"msg:{p.messages}")
            self._earn(p, "message", rules.MESSAGE_POINTS, f"msg:{p.messages}", actor)
        elif roll < 0.70:
            p.polls += 1
            self._emit(Player.PollAnswered, p.pid, actor, poll=f"poll:{p.polls}")
            self._earn(p, "poll", rules.POLL_POINTS, f"poll:{p.polls}", actor)
        elif roll < 0.80:
            p.streak += 1
            self._emit(Player.CheckedIn, p.pid, actor, streak=p.streak)
            self._earn(p, "checkin", rules.CHECKIN_POINTS, f"checkin:{p.streak}", actor)
            if p.streak % rules.STREAK_BONUS_EVERY == 0:
                bonus = rules.STREAK_BONUS_POINTS
                self._earn(p, "streak_bonus", bonus, f"checkin:{p.streak}", actor)
        elif roll < 0.98:
            self._story(p, actor)
        else:
            self._vip(p, actor)

    def _earn(self, p: PlayerState, source: str, amount: int, reference: str, actor: str) -> None:
        self._emit(
            Player.PointsAwarded, p.pid, actor, source=source, amount=amount, reference=reference
        )
        first = p.lifetime == 0
        p.lifetime += amount
        p.balance += amount
        level = rules.level_for(p.lifetime)
        if level.number != p.level:
            p.level = level.number
            self._emit(Player.LevelReached, p.pid, actor, level=level.number, name=level.name)
        if first:
            self._badge(p, "primeros-besitos")
        for threshold in (100, 500, 1000):
            if p.lifetime >= threshold:
                self._badge(p, f"besitos-{threshold}")

    def _badge(self, p: PlayerState, slug: str) -> None:
        if not self.awards:
            return
        if p.badges is None:
            p.badges = set()
        if slug in p.badges:
            return
        p.badges.add(slug)
        self._emit(
            BadgeAward.BadgeAwarded,
            badge_award_id(slug, p.telegram_id),
            "policy:badges",
            badge_slug=slug,
            telegram_id=p.telegram_id,
            evidence=[f"event:{p.pid}:{self.writer.versions.get(p.pid, 0)}"],
        )

    def _story(self, p: PlayerState, actor: str) -> None:
        story = self.story
        if p.progress is None:
            p.progress = progress_id(p.telegram_id, story.slug)
            p.fragment, p.visited, p.clues, p.chapters = story.start, set(), set(), set()
            self._emit(
                StoryProgress.StoryStarted,
                p.progress,
                actor,
                telegram_id=p.telegram_id,
                story_slug=story.slug,
                story_version=1,
                fragment_id=story.start,
            )
            self._enter(p, story.start, None, actor)
            return
        assert p.fragment is not None and p.clues is not None
        vip = p.vip_until is not None and self.now < p.vip_until
        choices = story.choices_for(p.fragment, vip=True, clues=p.clues)
        if not choices:  # an ending: start over from the top, as a replaying reader would
            choices = story.start_fragment.choices
            p.fragment = story.start
        choice = self.random.choice(choices)
        needs_vip = (
            story.is_vip_fragment(p.fragment)
            or choice.vip_only
            or story.is_vip_fragment(choice.next)
        )
        if needs_vip and not vip:
            self._emit(
                StoryProgress.VipGateHit,
                p.progress,
                actor,
                fragment_id=p.fragment,
                choice_id=choice.id,
            )
            return
        if choice.cost and p.balance >= choice.cost:
            p.balance -= choice.cost
            self._emit(
                Player.PointsSpent,
                p.pid,
                actor,
                purpose="story_choice",
                amount=choice.cost,
                reference=f"choice:{choice.id}",
            )
        self._emit(
            StoryProgress.ChoiceMade,
            p.progress,
            actor,
            fragment_id=p.fragment,
            choice_id=choice.id,
            next_fragment=choice.next,
            cost=choice.cost,
        )
        self._enter(p, choice.next, choice.id, actor)

    def _enter(self, p: PlayerState, fragment_id: str, via: str | None, actor: str) -> None:
        assert p.visited is not None and p.clues is not None and p.chapters is not None
        story = self.story
        fragment = story.fragment(fragment_id)
        previous = None if via is None else p.fragment
        self._emit(
            StoryProgress.FragmentEntered,
            p.progress,
            actor,
            fragment_id=fragment_id,
            chapter=fragment.chapter,
            via_choice=via,
            story_version=1,
        )
        first = fragment_id not in p.visited
        p.visited.add(fragment_id)
        p.fragment = fragment_id
        if first and fragment.reward is not None:
            clue = fragment.reward.clue
            if clue is not None and clue not in p.clues:
                p.clues.add(clue)
                self._emit(StoryProgress.ClueUnlocked, p.progress, actor, clue=clue)
        for chapter in story.completed_chapters(previous, fragment_id):
            if chapter not in p.chapters:
                p.chapters.add(chapter)
                self._emit(StoryProgress.ChapterCompleted, p.progress, actor, chapter=chapter)
        if first and fragment.reward is not None and fragment.reward.besitos:
            self._earn(p, "story", fragment.reward.besitos, f"fragment:{fragment_id}", actor)

    def _vip(self, p: PlayerState, actor: str) -> None:
        if p.vip_until is not None and self.now >= p.vip_until:
            self._emit(Player.VipExpired, p.pid, "system:vip-expiry", until=p.vip_until)
            p.vip_until = None
            return
        start = p.vip_until if p.vip_until and p.vip_until > self.now else self.now
        p.vip_until = start + timedelta(days=30)
        source = self.random.choice(["token", "stars"])
        self._emit(
            Player.VipGranted,
            p.pid,
            actor,
            source=source,
            days=30,
            until=p.vip_until,
            reference=f"{source}:{self.update}",
        )
        self._badge(p, "el-divan")


# ----- plumbing -------------------------------------------------------------------------------


def schema_url(schema: str) -> str:
    base = BASE_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def open_app(schema: str) -> tuple[DianaApplication, Any]:
    database = database_from_url(schema_url(schema))
    prepare(database)
    env = dict(database.eventsourcing_env)
    env["AGGREGATE_CACHE_MAXSIZE"] = "0"
    return DianaApplication(env, clock=ManualClock(T0 + SPAN)), database


def open_projections(app: DianaApplication, database: Any) -> Projections:
    return Projections.open(
        app, event_log(app), database.kind, database.sqlalchemy_url, database.schema
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - started


def pg_connect(schema: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(BASE_URL, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


def events_table(app: DianaApplication) -> str:
    return str(app.recorder.events_table_name)  # type: ignore[attr-defined]


# ----- phases (each may run in its own process) -----------------------------------------------


def phase_seed(schema: str, players: int, events: int) -> dict[str, Any]:
    app, _ = open_app(schema)
    with timed() as t:
        written = Seeder(app, players, events).run()
    app.close()
    with pg_connect(schema) as conn:
        conn.execute(f"VACUUM ANALYZE {events_table(app)}")
    return {"events": written, "seconds": t["seconds"]}


def phase_copy(schema: str) -> dict[str, Any]:
    """Raw COPY of one row per event (notification id, originator, version): the write ceiling."""
    app, _ = open_app(schema)
    head = app.recorder.max_notification_id() or 0
    app.close()
    rows = 0
    with pg_connect(schema) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute(
            "CREATE TABLE bench_copy (notification_id bigint, originator_id uuid, version int)"
        )
        ids = [uuid.uuid4() for _ in range(1000)]
        copy_sql = "COPY bench_copy FROM STDIN (FORMAT BINARY)"
        with timed() as t, conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(["int8", "uuid", "int4"])
            for n in range(1, head + 1):
                copy.write_row((n, ids[n % 1000], n % 1000))
                rows += 1
        conn.execute("DROP TABLE bench_copy")
    return {"rows": rows, "seconds": t["seconds"]}


def phase_fold(schema: str) -> dict[str, Any]:
    """The minimal batched fold: decode pages of 5,000, sum balances, upsert + track per page."""
    app, _ = open_app(schema)
    head = app.recorder.max_notification_id() or 0
    balances: dict[uuid.UUID, int] = {}
    deltas = {"PointsAwarded": 1, "PointsSpent": -1, "PointsAdjusted": 1}
    with pg_connect(schema) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_balances")
        conn.execute("CREATE TABLE bench_balances (player_id uuid PRIMARY KEY, balance bigint)")
        conn.execute("DROP TABLE IF EXISTS bench_tracking")
        conn.execute("CREATE TABLE bench_tracking (name text PRIMARY KEY, position bigint)")
        upsert = (
            "INSERT INTO bench_balances VALUES (%s, %s) "
            "ON CONFLICT (player_id) DO UPDATE SET balance = excluded.balance"
        )
        track = (
            "INSERT INTO bench_tracking VALUES ('fold', %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )
        with timed() as t:
            start = 1
            while start <= head:
                page = app.recorder.select_notifications(start, FOLD_PAGE)
                if not page:
                    break
                touched: set[uuid.UUID] = set()
                for notification in page:
                    event = app.mapper.to_domain_event(notification)
                    sign = deltas.get(type(event).__name__)
                    if sign is not None:
                        balances[event.originator_id] = (
                            balances.get(event.originator_id, 0) + sign * event.amount
                        )
                        touched.add(event.originator_id)
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(upsert, [(pid, balances[pid]) for pid in touched])
                    cur.execute(track, (page[-1].id,))
                start = page[-1].id + 1
        conn.execute("DROP TABLE bench_balances")
        conn.execute("DROP TABLE bench_tracking")
    app.close()
    return {"events": head, "seconds": t["seconds"]}


def phase_library(schema: str, sample: int) -> dict[str, Any]:
    """The eventsourcing library's ProjectionRunner: one transaction per event."""
    from eventsourcing.domain import DomainEventProtocol
    from eventsourcing.persistence import Tracking
    from eventsourcing.postgres import PostgresTrackingRecorder
    from eventsourcing.projection import Projection, ProjectionRunner

    class BalanceView(PostgresTrackingRecorder):
        def create_table(self) -> None:
            super().create_table()
            with self.datastore.get_connection() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS bench_library_balances "
                    "(player_id uuid PRIMARY KEY, balance bigint)"
                )

        def apply(self, player: uuid.UUID, delta: int, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as curs:
                if delta:
                    curs.execute(
                        "INSERT INTO bench_library_balances VALUES (%s, %s) ON CONFLICT "
                        "(player_id) DO UPDATE SET balance = bench_library_balances.balance "
                        "+ excluded.balance",
                        (player, delta),
                    )
                self._insert_tracking(curs, tracking)

    class BalanceProjection(Projection[BalanceView]):
        name = "benchlibrary"

        def process_event(self, domain_event: DomainEventProtocol[Any], tracking: Tracking) -> None:
            name = type(domain_event).__name__
            amount = getattr(domain_event, "amount", 0) if name.startswith("Points") else 0
            if name == "PointsSpent":
                amount = -amount
            self.view.apply(domain_event.originator_id, amount, tracking)

    database = database_from_url(schema_url(schema))
    env = dict(database.eventsourcing_env)
    env["AGGREGATE_CACHE_MAXSIZE"] = "0"
    with timed() as t:
        runner = ProjectionRunner(
            application_class=DianaApplication,
            projection_class=BalanceProjection,
            view_class=BalanceView,
            env=env,
        )
        with runner:
            runner.wait(sample, timeout=600)
    with pg_connect(schema) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_library_balances")
    return {"events": sample, "seconds": t["seconds"]}


def phase_rebuild(schema: str) -> dict[str, Any]:
    app, database = open_app(schema)
    projections = open_projections(app, database)
    with timed() as t:
        result = projections.rebuild()
    projections.close()
    app.close()
    return {"events": result.events, "seconds": t["seconds"], "peak_rss_mb": peak_rss_mb()}


def phase_reconcile(schema: str) -> dict[str, Any]:
    app, database = open_app(schema)
    projections = open_projections(app, database)
    projections.catch_up()
    with timed() as t:
        report = projections.reconcile()
    projections.close()
    app.close()
    return {
        "events": report.position,
        "seconds": t["seconds"],
        "consistent": report.consistent,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_user(schema: str, telegram_id: int, repeat: int = 5) -> dict[str, Any]:

    app, database = open_app(schema)
    projections = open_projections(app, database)
    projections.catch_up()
    streams = user_streams(projections, telegram_id)
    events = 0
    plain: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        events = 0
        for stream in streams:
            for stored in app.recorder.select_events(stream):
                app.mapper.to_domain_event(stored)
                events += 1
        plain.append(time.perf_counter() - started)
    check: list[float] = []
    consistent = True
    for _ in range(repeat):
        started = time.perf_counter()
        report = projections.reconcile(user=telegram_id)
        check.append(time.perf_counter() - started)
        consistent = consistent and report.consistent
    projections.close()
    app.close()
    return {
        "events": events,
        "plain_seconds": min(plain),
        "check_seconds": min(check),
        "consistent": consistent,
    }


PHASES = {
    "seed": lambda a: phase_seed(a.schema, a.players, a.events),
    "copy": lambda a: phase_copy(a.schema),
    "fold": lambda a: phase_fold(a.schema),
    "library": lambda a: phase_library(a.schema, a.library_sample),
    "rebuild": lambda a: phase_rebuild(a.schema),
    "reconcile": lambda a: phase_reconcile(a.schema),
    "user": lambda a: phase_user(a.schema, 1),
}


def run_phase(args: argparse.Namespace, phase: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter (its own memory, no warm caches)."""
    command = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--schema",
        args.schema,
        "--events",
        str(args.events),
        "--players",
        str(args.players),
        "--library-sample",
        str(args.library_sample),
    ]
    print(f"  {phase}...", file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    def rate(name: str, key: str = "events") -> float:
        return results[name][key] / results[name]["seconds"]

    library, fold, copy_rate = rate("library"), rate("fold"), rate("copy", "rows")
    rebuild = rate("rebuild")
    user = results["user"]
    rows = [
        ("seed (bulk, recorder batches of 10,000)", f"{rate('seed'):,.0f} ev/s", "", ""),
        ("baseline: library ProjectionRunner", f"{library:,.0f} ev/s", "1.0x runner", ""),
        (
            "baseline: minimal batched fold",
            f"{fold:,.0f} ev/s",
            f"{fold / library:.1f}x runner",
            "",
        ),
        ("baseline: raw COPY, one row per event", f"{copy_rate:,.0f} rows/s", "", ""),
        (
            "rebuild all 7 read models",
            f"{rebuild:,.0f} ev/s ({results['rebuild']['seconds']:.1f} s)",
            f"{rebuild / fold:.2f}x fold, {rebuild / library:.0f}x runner",
            _verdict(rebuild >= 0.75 * fold, ">= 0.75x fold"),
        ),
        (
            "reconcile (replay + compare + checks)",
            f"{results['reconcile']['seconds']:.1f} s",
            f"{results['reconcile']['seconds'] / results['rebuild']['seconds']:.2f}x rebuild",
            _verdict(
                results["reconcile"]["seconds"] <= 1.2 * results["rebuild"]["seconds"],
                "<= 1.2x rebuild",
            ),
        ),
        (
            "peak memory (rebuild / reconcile)",
            f"{results['rebuild']['peak_rss_mb']:.0f} / "
            f"{results['reconcile']['peak_rss_mb']:.0f} MB",
            "",
            _verdict(
                max(results["rebuild"]["peak_rss_mb"], results["reconcile"]["peak_rss_mb"]) < 500,
                "< 500 MB",
            ),
        ),
        (
            f"per-user check ({user['events']:,} events)",
            f"{user['check_seconds'] * 1000:.0f} ms vs {user['plain_seconds'] * 1000:.0f} ms",
            f"{user['check_seconds'] / user['plain_seconds']:.2f}x read+decode",
            _verdict(user["check_seconds"] <= 1.5 * user["plain_seconds"], "<= 1.5x read+decode"),
        ),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"{args.events:,} events, {args.players:,} players, PostgreSQL; "
        f"reconcile consistent: {results['reconcile']['consistent']}",
        "",
    ]
    for row in rows:
        lines.append("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def _verdict(ok: bool, target: str) -> str:
    return f"{'met' if ok else 'MISSED'} ({target})"


def main() -> None:
    # PostgreSQL has no default audit key file (docs/operations.md): this benchmark names one
    # (here, not on import: bench/audit.py and bench/asof.py import this module).
    os.environ.setdefault(
        "DIANABOT_AUDIT_KEY_FILE", str(Path(tempfile.gettempdir()) / "dianabot-bench-audit.key")
    )
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--library-sample", type=int, default=LIBRARY_SAMPLE)
    parser.add_argument("--schema", default=None, help="reuse a seeded schema (kept afterwards)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--save", metavar="FILE", help="also write the raw measurements as JSON")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return
    reuse = args.schema is not None
    args.schema = args.schema or f"bench_proj_{uuid.uuid4().hex[:8]}"
    results: dict[str, dict[str, Any]] = {}
    try:
        if not reuse:
            results["seed"] = run_phase(args, "seed")
        else:
            results["seed"] = {"events": 0, "seconds": 1.0}
        for phase in ("copy", "fold", "library", "rebuild", "reconcile", "user"):
            results[phase] = run_phase(args, phase)
    finally:
        if not (reuse or args.keep):
            with psycopg.connect(BASE_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(args.schema))
                )
    print(report(results, args))
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
