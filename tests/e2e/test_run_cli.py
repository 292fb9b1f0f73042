"""`dianabot run`: a missing, malformed or refused token is one clear line pointing to the demo
(exit 2); a token the Bot API server accepts starts polling (through that server)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from dianabot.adapters.cli.main import app as cli
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIANABOT_DATABASE_URL", f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    return tmp_path


@pytest.mark.parametrize("token", ["", "not-a-token", "12345"])
def test_missing_or_malformed_token_points_to_the_demo(workdir, monkeypatch, token: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIANABOT_BOT_TOKEN", token)
    result = runner.invoke(cli, ["run"])
    assert result.exit_code == 2, result.output
    assert "DIANABOT_BOT_TOKEN" in result.output and "dianabot demo" in result.output


@pytest.fixture
def refusing_api() -> Iterator[str]:
    """A Bot API server that refuses every token (401 Unauthorized)."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
        )

    loop = asyncio.new_event_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", refuse)
    web_runner = web.AppRunner(application)
    loop.run_until_complete(web_runner.setup())
    loop.run_until_complete(web.TCPSite(web_runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_a_token_the_server_refuses_points_to_the_demo(workdir, monkeypatch, refusing_api) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIANABOT_BOT_TOKEN", "123456:refused-token")
    monkeypatch.setenv("DIANABOT_TELEGRAM_API_SERVER", refusing_api)
    result = runner.invoke(cli, ["run", "--no-workers"])
    assert result.exit_code == 2, result.output
    assert "refused the token" in result.output and "dianabot demo" in result.output


def test_webhook_mode_needs_a_secret_and_an_http_url(workdir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIANABOT_BOT_TOKEN", "123456:some-token")
    result = runner.invoke(cli, ["run", "--webhook", "https://bot.example/hook"])
    assert result.exit_code == 2, result.output
    assert "DIANABOT_WEBHOOK_SECRET" in result.output
    monkeypatch.setenv("DIANABOT_WEBHOOK_SECRET", "a-good_secret")
    result = runner.invoke(cli, ["run", "--webhook", "bot.example/hook"])
    assert result.exit_code == 2 and "not an http(s) URL" in result.output, result.output
    monkeypatch.setenv("DIANABOT_WEBHOOK_SECRET", "not a token!")
    result = runner.invoke(cli, ["run", "--webhook", "https://bot.example/hook"])
    assert result.exit_code == 2 and "DIANABOT_WEBHOOK_SECRET" in result.output, result.output
    assert not (workdir / "bot.sqlite3").exists()


def test_the_per_user_throttle_comes_from_the_settings() -> None:
    from dianabot.adapters.cli.run import throttle_of
    from dianabot.adapters.settings import Settings

    assert throttle_of(Settings(throttle_burst=0)) is None
    throttle = throttle_of(Settings(throttle_burst=5, throttle_per_second=0.5))
    assert throttle is not None and (throttle.burst, throttle.per_second) == (5, 0.5)
    assert [throttle.check(1) for _ in range(6)] == ["pass"] * 5 + ["warn"]


def test_a_webhook_port_in_use_is_one_clear_line(workdir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The token is accepted (a local Bot API); the webhook port is taken: exit 2, one line."""
    from dianabot.adapters.telegram.local_api import LocalBotAPI

    token = "123456:webhook-port-taken"
    with LocalBotAPI(token).running_in_thread() as api, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("DIANABOT_BOT_TOKEN", token)
        monkeypatch.setenv("DIANABOT_TELEGRAM_API_SERVER", api.url)
        monkeypatch.setenv("DIANABOT_WEBHOOK_SECRET", "a-good_secret")
        result = runner.invoke(
            cli,
            ["run", "--no-workers", "--webhook", "http://127.0.0.1/hook", "--port", str(port)],
        )
    assert result.exit_code == 2, result.output
    assert "cannot serve" in result.output and "Traceback" not in result.output
