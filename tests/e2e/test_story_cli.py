"""`dianabot story check|publish` and the VIP admin commands, end to end on a SQLite file."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.settings import Settings
from dianabot.adapters.story_file import bundled_story_file, load_bundled_story
from dianabot.application.results import Origin
from typer.testing import CliRunner

from tests.unit.test_progress import SMALL_STORY, WITHOUT_B

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIANABOT_DATABASE_URL", f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", "42")
    return tmp_path


def cli():  # type: ignore[no-untyped-def]
    from dianabot.adapters.cli.main import app

    return app


def write(workdir: Path, name: str, text: str) -> Path:
    path = workdir / name
    path.write_text(text, encoding="utf-8")
    return path


def test_check_the_bundled_story(workdir: Path) -> None:
    human = runner.invoke(cli(), ["story", "check"])
    assert human.exit_code == 0, human.output
    assert "publishable" in human.output and "diana" in human.output
    as_json = runner.invoke(cli(), ["story", "check", "--json"])
    assert as_json.exit_code == 0
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["file"] == str(bundled_story_file())
    assert report["story"]["content_hash"] == load_bundled_story().story.content_hash
    assert report["story"]["fragments"] == len(load_bundled_story().story.fragments)


def test_check_reports_problems_with_exit_1(workdir: Path) -> None:
    path = write(workdir, "roto.yaml", SMALL_STORY.replace("next: b}", "next: nowhere}"))
    human = runner.invoke(cli(), ["story", "check", str(path)])
    assert human.exit_code == 1
    assert "choice 'a_b' leads to unknown fragment 'nowhere' [dangling_link]" in human.output
    assert f"{path}:" in human.output
    as_json = runner.invoke(cli(), ["story", "check", str(path), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    problem = next(p for p in report["problems"] if p["code"] == "dangling_link")
    lines = path.read_text(encoding="utf-8").splitlines()
    expected_line = next(i for i, line in enumerate(lines, 1) if "next: nowhere" in line)
    assert problem["fragment_id"] == "a" and problem["line"] == expected_line


def test_check_an_unreadable_file_exits_2(workdir: Path) -> None:
    missing = runner.invoke(cli(), ["story", "check", str(workdir / "nope.yaml"), "--json"])
    assert missing.exit_code == 2
    assert json.loads(missing.stdout)["error"]["message"].startswith("cannot read the file")
    bad = write(workdir, "malo.yaml", "slug: [unclosed\n")
    human = runner.invoke(cli(), ["story", "check", str(bad)])
    assert human.exit_code == 2 and "YAML syntax error" in human.output


def test_publish_then_republish_then_a_new_version(workdir: Path) -> None:
    first = runner.invoke(cli(), ["story", "publish", "--json"])
    assert first.exit_code == 0, first.output
    published = json.loads(first.stdout)
    assert published["outcome"] == "ok" and published["details"]["version"] == 1
    assert [e["name"] for e in published["events"]] == ["StoryCreated", "StoryPublished"]
    again = runner.invoke(cli(), ["story", "publish"])
    assert again.exit_code == 0 and "already published" in again.output

    small = write(workdir, "prueba.yaml", SMALL_STORY)
    assert runner.invoke(cli(), ["story", "publish", str(small)]).exit_code == 0
    with bootstrap(Settings(_env_file=None)) as wired:
        app = wired.app
        assert app.register_player(7, "Ana", Origin.telegram(1, 7)).ok
        assert app.start_story(7, Origin.telegram(2, 7), "prueba").ok
        assert app.make_choice(7, "a_b", Origin.telegram(3, 7), "prueba").ok
    v2 = write(workdir, "prueba2.yaml", WITHOUT_B)
    moved = runner.invoke(cli(), ["story", "publish", str(v2)])
    assert moved.exit_code == 0, moved.output
    assert "v2" in moved.output and "1 player(s) relocated" in moved.output
    with bootstrap(Settings(_env_file=None)) as wired:
        assert wired.app.get_progress(7, "prueba").fragment_id == "a"


def test_publish_refuses_a_story_with_problems(workdir: Path) -> None:
    path = write(workdir, "roto.yaml", SMALL_STORY.replace("next: b}", "next: nowhere}"))
    refused = runner.invoke(cli(), ["story", "publish", str(path)])
    assert refused.exit_code == 3
    assert "invalid_story" in refused.output and "[dangling_link]" in refused.output
    unreadable = runner.invoke(cli(), ["story", "publish", str(workdir / "nope.yaml")])
    assert unreadable.exit_code == 2


def test_issue_a_vip_token_and_grant_vip(workdir: Path) -> None:
    issued = runner.invoke(cli(), ["admin", "issue-vip-token", "--days", "30", "--json"])
    assert issued.exit_code == 0, issued.output
    token = json.loads(issued.stdout)["details"]["token"]
    assert token.startswith("vip-")
    human = runner.invoke(cli(), ["admin", "issue-vip-token", "--days", "7"])
    assert human.exit_code == 0 and "/start vip-" in human.output
    with bootstrap(Settings(_env_file=None)) as wired:
        app = wired.app
        assert app.register_player(7, "Ana", Origin.telegram(1, 7)).ok
        redeemed = app.redeem_vip_token(7, token, Origin.telegram(2, 7))
        assert redeemed.ok
        until = redeemed.details["vip_until"]
    assert (workdir / "bot.sqlite3").read_bytes().find(token.encode()) == -1

    granted = runner.invoke(cli(), ["admin", "grant-vip", "7", "--days", "10", "--json"])
    assert granted.exit_code == 0, granted.output
    details = json.loads(granted.stdout)["details"]
    assert details["vip_until"] == str(until + timedelta(days=10))  # extended, not replaced
    stranger = runner.invoke(cli(), ["admin", "grant-vip", "7", "--days", "1", "--admin", "99"])
    assert stranger.exit_code == 3 and "not_admin" in stranger.output
    not_admin = runner.invoke(cli(), ["admin", "issue-vip-token", "--admin", "99"])
    assert not_admin.exit_code == 3 and "not_admin" in not_admin.output
