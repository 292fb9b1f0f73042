"""`dianabot audit ...`: tamper evidence (verify, anchor) and the store as JSON Lines (export,
import). Other audit commands register on `audit_app` from their own modules.

Exit codes: 0 the chain holds; 1 tampering found (position and kind named); 2 bad usage, a
missing or unreadable key or anchor; 3 refused (import into a store that is not empty, or a
corrupted export, naming the line); 4 no store.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import console, errors, fail, print_json, services
from dianabot.adapters.eventstore.chain import Anchor, AuditChain, AuditKeyError, Report, moment
from dianabot.adapters.eventstore.snapshot_check import verify_snapshots
from dianabot.adapters.eventstore.transfer import (
    ImportRefused,
    StoreNotEmpty,
    export_lines,
    import_lines,
)
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

audit_app = typer.Typer(help="Auditing: tamper evidence, export and import.", no_args_is_help=True)

PROGRESS_FROM = 50_000
"""Events from which a run shows a progress bar (on a terminal)."""


@contextmanager
def _progress(total: int, label: str, as_json: bool) -> Iterator[Any]:
    """A callback `(done, total)` drawing a progress bar on stderr for long runs, or None."""
    if as_json or total < PROGRESS_FROM or not errors.is_terminal:
        yield None
        return
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, _total=total: bar.update(task, completed=done)


def _anchor(path: Path, as_json: bool) -> Anchor:
    try:
        data = json.loads(path.read_text())
        return Anchor(int(data["position"]), bytes.fromhex(data["digest"]), data["committed_at"])
    except OSError as error:
        fail(exits.USAGE, "bad anchor", f"cannot read {path}: {error.strerror}", as_json)
    except (ValueError, KeyError, TypeError):
        fail(
            exits.USAGE, "bad anchor", f"{path} is not an anchor written by `audit anchor`", as_json
        )


@audit_app.command()
def verify(
    from_position: Annotated[
        int, typer.Option("--from", min=0, help="Start at this position (trusts the link before).")
    ] = 0,
    anchor: Annotated[
        Path | None,
        typer.Option("--anchor", help="An anchor file (`audit anchor`): detects a cut tail."),
    ] = None,
    snapshots: Annotated[
        bool, typer.Option("--snapshots", help="Also check every snapshot against its events.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Recompute the chain: name the first altered, deleted, inserted or reordered event."""
    expected = _anchor(anchor, as_json) if anchor is not None else None
    with services(read_only=True, as_json=as_json, projections=False, policies=False) as wired:
        chain = AuditChain(wired.app)
        started = time.perf_counter()
        total = chain.store.event_head()
        try:
            with _progress(total, "verifying", as_json) as progress:
                report = chain.verify(from_position, anchor=expected, progress=progress)
        except AuditKeyError as error:
            fail(exits.USAGE, "audit key", str(error), as_json)
        seconds = time.perf_counter() - started
        snapshot_result = None
        if snapshots:
            started_snapshots = time.perf_counter()
            snapshot_result = verify_snapshots(wired.app)
            snapshot_seconds = time.perf_counter() - started_snapshots
    payload: dict[str, Any] = _report_dict(report, seconds)
    if snapshot_result is not None:
        payload["snapshots"] = {
            "ok": snapshot_result.ok,
            "checked": snapshot_result.checked,
            "failed": snapshot_result.failed,
            "mismatches": snapshot_result.mismatches,
            "seconds": round(snapshot_seconds, 3),
        }
    if as_json:
        print_json(payload)
    else:
        _render(payload)
    if not report.ok or (snapshot_result is not None and not snapshot_result.ok):
        raise typer.Exit(exits.DIFFERENCES)


def _report_dict(report: Report, seconds: float) -> dict[str, Any]:
    head = report.head
    return {
        "ok": report.ok,
        "checked": report.checked,
        "from": report.start,
        "to": report.end,
        "unchained_prefix": report.unchained,
        "head": {
            "position": head.position,
            "digest": head.digest.hex(),
            "committed_at": moment(head.committed_at).isoformat(),
        }
        if head is not None
        else None,
        "anchor_checked": report.anchor_checked,
        "problem": {
            "position": report.problem.position,
            "kind": report.problem.kind,
            "detail": report.problem.detail,
        }
        if report.problem is not None
        else None,
        "seconds": round(seconds, 3),
        "events_per_second": round(report.checked / seconds) if seconds > 0 else None,
    }


def _render(payload: dict[str, Any]) -> None:
    verdict = "[green]intact[/green]" if payload["ok"] else "[red]TAMPERED[/red]"
    table = Table(title=f"Audit chain: {verdict}", show_header=False)
    table.add_row("events checked", f"{payload['checked']:,} (positions {payload['from']}..)")
    table.add_row("log head", str(payload["to"]))
    if payload["unchained_prefix"]:
        table.add_row(
            "unchained prefix", f"{payload['unchained_prefix']:,} events before the chain"
        )
    if payload["head"]:
        head = payload["head"]
        table.add_row(
            "chain head", f"{head['position']} {head['digest'][:16]}… {head['committed_at']}"
        )
    table.add_row("anchor", "checked" if payload["anchor_checked"] else "[dim]none given[/dim]")
    table.add_row(
        "time", f"{payload['seconds']} s ({payload['events_per_second'] or 0:,} events/s)"
    )
    if payload["problem"]:
        problem = payload["problem"]
        table.add_row(
            "[red]first problem[/red]",
            f"[red]{escape(problem['kind'])}[/red] at position {problem['position']}: "
            f"{escape(problem['detail'])}",
        )
    console.print(table)
    snapshots = payload.get("snapshots")
    if snapshots is not None:
        colour = "green" if snapshots["ok"] else "red"
        console.print(
            f"Snapshots: [{colour}]{snapshots['checked'] - snapshots['failed']} of "
            f"{snapshots['checked']} match their events[/{colour}] ({snapshots['seconds']} s)"
        )
        for line in snapshots["mismatches"]:
            console.print(f"  [red]{escape(line)}[/red]")


@audit_app.command("anchor")
def anchor_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the anchor to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The chain's head (position and digest) to keep outside the database."""
    with services(read_only=True, as_json=as_json, projections=False, policies=False) as wired:
        chain = AuditChain(wired.app)
        head = chain.head()
        store = wired.database.describe()
    if head is None:
        fail(exits.UNAVAILABLE, "no chain", "the store has no chained events yet", as_json)
    anchor = {
        "store": store,
        "position": head.position,
        "digest": head.digest.hex(),
        "committed_at": head.committed_at,
        "committed": moment(head.committed_at).isoformat(),
        "taken": datetime.now(UTC).isoformat(),
    }
    text = json.dumps(anchor, indent=2)
    if output is not None:
        try:
            output.write_text(text + "\n")
        except OSError as error:
            fail(exits.USAGE, "cannot write", f"{output}: {error.strerror}", as_json)
    if as_json or output is None:
        typer.echo(text)
    else:
        console.print(f"anchor at position {head.position} written to {escape(str(output))}")


@audit_app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="Only jsonl.")] = "jsonl",
) -> None:
    """The whole event store, with its chain and subscribers' positions, as JSON Lines."""
    if format_ != "jsonl":
        fail(exits.USAGE, "bad usage", f"unknown format {format_!r}: only jsonl")
    with services(read_only=True, projections=False, policies=False) as wired:
        try:
            handle = output.open("w") if output is not None else sys.stdout
        except OSError as error:
            fail(exits.USAGE, "cannot write", f"{output}: {error.strerror}")
        try:
            with _progress(
                wired.app.recorder.max_notification_id() or 0, "exporting", output is None
            ) as progress:
                for line in export_lines(wired.app, progress):
                    handle.write(line + "\n")
        finally:
            if output is not None:
                handle.close()
    if output is not None:
        console.print(f"exported to {escape(str(output))}")


@audit_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="An export written by `audit export`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Load an export into an EMPTY store, checking every event against its link, then build
    the read models; nothing is written if any line fails."""
    try:
        handle = file.open()
    except OSError as error:
        fail(exits.USAGE, "cannot read", f"{file}: {error.strerror}", as_json)
    with handle, services(as_json=as_json, policies=False) as wired:
        try:
            summary = import_lines(wired.app, handle)
        except StoreNotEmpty as error:
            fail(exits.REFUSED, "refused", str(error), as_json)
        except ImportRefused as error:
            fail(exits.REFUSED, "corrupted export", f"{file} {error}; nothing imported", as_json)
        except AuditKeyError as error:
            fail(exits.USAGE, "audit key", str(error), as_json)
        built = wired.projections.catch_up() if wired.projections is not None else 0
    result = {
        "events": summary.events,
        "tracking": summary.tracking,
        "head": summary.head,
        "read_models_built_to": built,
    }
    if as_json:
        print_json(result)
    else:
        console.print(
            f"[green]imported[/green] {summary.events:,} events (head {summary.head}) and "
            f"{summary.tracking} subscriber positions; read models built"
        )
