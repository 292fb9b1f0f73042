"""The `dianabot` console script end to end: the demo and the admin commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dianabot.adapters.cli.main import app as cli
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIANABOT_DATABASE_URL", f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", "42, 43")
    return tmp_path


def test_demo_runs_every_flow_on_the_configured_store(workdir) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(cli, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    outcomes = summary["outcomes"]
    for refusal in (
        "already_reacted",
        "cooldown",
        "already_answered",
        "already_checked_in",
        "duplicate",
        "insufficient_points",
        "vip_required",
        "token_used",
    ):
        assert outcomes[refusal] >= 1, refusal
    players = {row["user"]: row for row in summary["players"]}
    assert len(players) == 5
    assert all(row["balance"] >= 0 for row in players.values())
    assert "racha-7" in players[1001]["badges"]  # eight daily check-ins in a row
    ana = players[1001]
    assert ana["vip"] and "el-divan" in ana["badges"]  # redeemed a token after the VIP gate
    assert ana["fragment"].startswith(("c4_", "c5_", "c6_"))  # and walked into the VIP arc
    assert all(row["fragment"] for row in players.values())
    assert (workdir / "bot.sqlite3").exists()  # where DIANABOT_DATABASE_URL points
    assert not (workdir / "dianabot-demo.sqlite3").exists()
    assert summary["reconciliation"]["consistent"] is True  # replay equals the read models
    assert summary["vip_funnel"] == {"users": 1, "converted": 1, "gate_hits": 1}
    # Every effect came from the policies, which caught up with the log.
    effects = summary["policies"]
    assert set(effects) == {
        "badges-by-criteria", "streak-badges", "story-decisions", "engagement",
        "vip-conversion", "vip-badge", "error-recovery",
    }  # fmt: skip
    assert effects["error-recovery"]["commands"] == 0  # nothing failed: nothing to check
    assert all(e["lag"] == 0 and e["parked"] == 0 for e in effects.values())
    assert effects["vip-conversion"]["commands"] == 1  # Ana, at the gate, before her token
    assert all("primera-decision" in row["badges"] for row in players.values())
    assert "capitulo-1" in ana["badges"] and "reacciones-10" in players[1005]["badges"]
    assert_effects_came_from_policies(workdir / "bot.sqlite3")
    assert_users_went_through_the_bot(workdir / "bot.sqlite3")
    # Through the real dispatcher and the local Bot API: what it handled, what the bot called.
    telegram = summary["telegram"]
    assert telegram["updates"] >= 200
    calls = telegram["calls_by_method"]
    assert telegram["bot_calls"] == sum(calls.values())
    assert calls["editMessageReplyMarkup"] == 15  # reaction buttons on each channel post
    assert calls["sendPoll"] == 1 and calls["setMyCommands"] == 1
    assert calls["answerCallbackQuery"] >= 100 and calls["editMessageText"] >= 10
    assert summary["health"]["status"] == "ok" and summary["health"]["telegram"] == "ok"
    assert [row["rank"] for row in summary["players"]] == [1, 2, 3, 4, 5]
    lifetimes = [row["lifetime"] for row in summary["players"]]
    assert lifetimes == sorted(lifetimes, reverse=True)
    refused = runner.invoke(cli, ["demo"])  # the store has data now: not without --yes
    assert refused.exit_code == 3 and "--yes" in refused.output
    again = json.loads(runner.invoke(cli, ["demo", "--yes", "--json"]).stdout)  # a fresh file
    for key in ("players", "outcomes", "vip_funnel"):
        assert again[key] == summary[key]


def assert_effects_came_from_policies(path: Path) -> None:
    from dianabot.adapters.bootstrap import bootstrap
    from dianabot.domain.rules import PointSource

    from tests.conftest import make_settings
    from tests.policies import logged

    with bootstrap(make_settings(f"sqlite:///{path}"), projections=False) as wired:
        awards = logged(wired, "BadgeAwarded", "BadgeReawarded")
        assert awards and {e.actor for e in awards} <= {
            f"policy:{name}" for name in ("badges-by-criteria", "streak-badges",
                                          "story-decisions", "engagement", "vip-badge")
        }  # fmt: skip
        bonuses = [
            e for e in logged(wired, "PointsAwarded") if e.source == PointSource.STORY_DECISION
        ]
        assert bonuses and {e.actor for e in bonuses} == {"policy:story-decisions"}
        [invitation] = logged(wired, "VipInvitationQueued")
        assert invitation.actor == "policy:vip-conversion"


def assert_users_went_through_the_bot(path: Path) -> None:
    """Every player's points came from Telegram updates the bot handled (their causation is
    the update), the admin's grant included; none from the console."""
    from dianabot.adapters.bootstrap import bootstrap
    from dianabot.adapters.cli.demo import ADMIN_ID, TOKEN

    from tests.conftest import make_settings
    from tests.policies import logged

    bot = TOKEN.split(":")[0]
    with bootstrap(make_settings(f"sqlite:///{path}"), projections=False) as wired:
        awards = logged(wired, "PointsAwarded")
        by_users = [e for e in awards if not e.actor.startswith("policy:")]
        assert len(by_users) > 100
        assert all(e.causation.startswith(f"tg:{bot}:update:") for e in by_users)
        [grant] = logged(wired, "PointsAdjusted")
        assert grant.actor == f"tg:user:{ADMIN_ID}" and grant.amount == 150
        assert grant.causation.startswith(f"tg:{bot}:update:")
        paid = logged(wired, "PointsSpent")  # the story's paid choices, pressed as buttons
        assert paid and {e.purpose for e in paid} == {"story_choice"}
        assert all(e.causation.startswith(f"tg:{bot}:update:") for e in paid)


def test_admin_grant_and_deduct(workdir) -> None:  # type: ignore[no-untyped-def]
    from dianabot.adapters.bootstrap import bootstrap
    from dianabot.adapters.settings import Settings
    from dianabot.application.results import Origin

    with bootstrap(Settings(_env_file=None)) as wired:
        assert wired.app.register_player(7, "Ana", Origin.telegram(1, 7)).ok
    granted = runner.invoke(cli, ["admin", "grant", "7", "150", "--reason", "sorteo", "--json"])
    assert granted.exit_code == 0, granted.output
    assert json.loads(granted.stdout)["outcome"] == "ok"
    deducted = runner.invoke(cli, ["admin", "deduct", "7", "200", "--reason", "x", "--admin", "42"])
    assert deducted.exit_code == 3
    assert "insufficient_points" in deducted.output
    stranger = runner.invoke(cli, ["admin", "grant", "7", "5", "-r", "x", "--admin", "99"])
    assert stranger.exit_code == 3 and "not_admin" in stranger.output
    unknown = runner.invoke(cli, ["admin", "grant", "8", "5", "-r", "x"])
    assert unknown.exit_code == 3 and "unknown_user" in unknown.output
    with bootstrap(Settings(_env_file=None)) as wired:
        assert wired.app.get_player(7).balance == 150


def test_badge_admin_commands(workdir) -> None:  # type: ignore[no-untyped-def]
    defined = runner.invoke(
        cli,
        [
            "admin",
            "define-badge",
            "fiel-2000",
            "--name",
            "Fiel",
            "--description",
            "2000",
            "--criteria",
            '{"kind": "lifetime_besitos", "threshold": 2000}',
        ],
    )
    assert defined.exit_code == 0, defined.output
    bad = runner.invoke(cli, ["admin", "define-badge", "x y", "--name", "n", "--description", "d"])
    assert bad.exit_code == 3 and "invalid_badge" in bad.output
    not_json = runner.invoke(
        cli,
        ["admin", "define-badge", "ok-1", "--name", "n", "--description", "d", "--criteria", "{"],
    )
    assert not_json.exit_code == 2
    retired = runner.invoke(cli, ["admin", "retire-badge", "fiel-2000", "-r", "obsoleta"])
    assert retired.exit_code == 0, retired.output


def test_an_unreachable_database_is_a_clear_error(workdir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIANABOT_DATABASE_URL", "postgresql+psycopg://postgres:pw@127.0.0.1:1/x")
    result = runner.invoke(cli, ["admin", "grant", "7", "5", "-r", "x"])
    assert result.exit_code == 4
    assert "database unavailable" in result.output and "pw@" not in result.output


def test_badge_commands_refuse_an_id_that_is_not_an_admin(workdir) -> None:  # type: ignore[no-untyped-def]
    """`--admin` names the acting admin: an id not in DIANABOT_ADMIN_IDS is refused, recording
    nothing; the console (no `--admin`) and a configured admin are accepted."""
    from dianabot.adapters.bootstrap import bootstrap
    from dianabot.adapters.settings import Settings
    from dianabot.application.results import Origin

    with bootstrap(Settings(_env_file=None)) as wired:
        assert wired.app.register_player(7, "Ana", Origin.telegram(1, 7)).ok
    define = ["admin", "define-badge", "x1", "--name", "X", "--description", "d"]
    stranger = runner.invoke(cli, [*define, "--admin", "777"])
    assert stranger.exit_code == 3  # refused (adapters/cli/exits.py)
    assert "not_admin" in stranger.output and "admin:777" in stranger.output
    assert "DIANABOT_ADMIN_IDS" in stranger.output
    for refused in (
        ["admin", "award-badge", "primeros-besitos", "7", "-r", "x", "--admin", "777"],
        ["admin", "revoke-badge", "primeros-besitos", "7", "-r", "x", "--admin", "777"],
        ["admin", "retire-badge", "x1", "-r", "x", "--admin", "777"],
        ["story", "publish", "--admin", "777"],
    ):
        result = runner.invoke(cli, refused)
        assert result.exit_code == 3 and "not_admin" in result.output, refused
    with bootstrap(Settings(_env_file=None)) as wired:
        assert wired.app.recorder.max_notification_id() == 1  # only the registration
    assert runner.invoke(cli, [*define, "--admin", "42"]).exit_code == 0
    console = runner.invoke(cli, ["admin", "retire-badge", "x1", "-r", "x"])
    assert console.exit_code == 0, console.output


def test_catalogue_badges_work_on_a_store_the_demo_never_touched(workdir) -> None:  # type: ignore[no-untyped-def]
    from dianabot.adapters.bootstrap import bootstrap
    from dianabot.adapters.settings import Settings
    from dianabot.application.results import Origin

    with bootstrap(Settings(_env_file=None)) as wired:
        assert wired.app.register_player(7, "Ana", Origin.telegram(1, 7)).ok
    awarded = runner.invoke(cli, ["admin", "award-badge", "racha-3", "7", "-r", "x", "--json"])
    assert awarded.exit_code == 0, awarded.output
    names = [e["name"] for e in json.loads(awarded.stdout)["events"]]
    assert names == ["BadgeDefined", "BadgeAwarded"]
    retired = runner.invoke(cli, ["admin", "retire-badge", "racha-30", "-r", "x"])
    assert retired.exit_code == 0, retired.output
