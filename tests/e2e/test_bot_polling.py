"""Long polling that loses no update (issue 13, item 4): while the store is down the bot takes
no new update and Telegram keeps what it could not record; `dianabot run` stopped by SIGTERM
mid-way loses nothing and records nothing twice; a new store gets the bundled story."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.telegram.local_api import LocalBotAPI
from eventsourcing.persistence import OperationalError

from tests.conftest import make_settings
from tests.policies import logged
from tests.telegram_live import ANA, LUIS, BotRun, Live, run, until

TOKEN = "7000002:E2E-polling-token"


def test_while_the_store_is_down_no_new_update_is_taken_and_each_is_recorded_once_after(
    wired: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three users' check-ins meet a store that is down: each is answered politely and none is
    confirmed; a fourth update waits at the Bot API, untaken, while the store stays down. Once
    it answers, Telegram delivers all four (again) and each is recorded exactly once."""
    writer = wired.app._event_writer
    original = writer.record
    down = {"now": True}

    def record(*args: Any, **kwargs: Any) -> Any:
        if down["now"]:
            raise OperationalError("could not connect to server")
        return original(*args, **kwargs)

    users = (ANA, LUIS, 1003)

    async def scenario(live: Live) -> None:
        live.poller.store_answers = lambda: not down["now"]
        monkeypatch.setattr(writer, "record", record)
        for user in users:
            live.api.inject_message(user, "/checkin")
        for user in users:
            reply = (await live.replies(user, 1))[-1]
            assert "no puedo apuntarlo" in str(reply.params["text"])
        late = live.api.inject_message(1004, "/checkin")
        await until(lambda: live.poller.stats.unrecorded >= 3, 5)
        await asyncio.sleep(1.5)
        assert live.sent_to(1004) == []  # not taken while the store is down
        assert late in live.api.pending_updates
        down["now"] = False
        for user in (*users, 1004):
            reply = (await live.replies(user, 2 if user in users else 1))[-1]
            assert "+10 besitos" in str(reply.params["text"]), reply
        assert live.consistent()

    run(wired, scenario, handle_as_tasks=True)
    for user in (*users, 1004):
        assert wired.app.get_player(user).balance == 10  # type: ignore[union-attr]
    assert len(logged(wired, "CheckedIn")) == 4


def checked_in(api: LocalBotAPI, user: int) -> bool:
    return any(
        "+10 besitos" in str(call.params.get("text"))
        for call in api.calls("sendMessage")
        if call.params.get("chat_id") == user
    )


def test_sigterm_mid_way_loses_no_update_and_records_none_twice(tmp_path: Path) -> None:
    """200 users' check-ins; SIGTERM once some are answered: the process finishes what it took
    and exits 0; what it did not take stays at the Bot API. A second run takes the rest. Every
    user is checked in exactly once, and told so once."""
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    users = range(2001, 2201)
    with LocalBotAPI(TOKEN).running_in_thread() as api:
        first = BotRun(url, api.url, tmp_path, "first", "--no-workers", token=TOKEN)
        try:
            api.wait_for_calls("setMyCommands", timeout=60)
            for user in users:
                api.inject_message(user, "/checkin")
            api.wait_for_calls("sendMessage", 10, timeout=60)
            assert first.stop() == 0, first.output()
        finally:
            first.stop()
        taken = [user for user in users if checked_in(api, user)]
        assert 0 < len(taken) < len(users)  # stopped mid-way (after its first batch, here)
        assert "published the bundled story" in first.output()
        second = BotRun(url, api.url, tmp_path, "second", "--no-workers", token=TOKEN)
        try:
            deadline = time.monotonic() + 90
            while not all(checked_in(api, user) for user in users):
                assert second.process.poll() is None, second.output()
                assert time.monotonic() < deadline, f"{len(taken)} then stuck\n{second.output()}"
                time.sleep(0.1)
            assert second.stop() == 0, second.output()
        finally:
            second.stop()
        assert "published the bundled story" not in second.output()
        assert api.pending_updates == []
        for user in users:
            replies = [
                call
                for call in api.calls("sendMessage")
                if call.params.get("chat_id") == user and "+10 besitos" in str(call.params["text"])
            ]
            assert len(replies) == 1, (user, replies)
        # The first run confirmed what it finished: nothing came twice.
        assert not any("ya lo tenía" in str(c.params["text"]) for c in api.calls("sendMessage"))
    with bootstrap(make_settings(url)) as services:
        assert len(logged(services, "CheckedIn")) == len(users)
        for user in users:
            assert services.app.get_player(user).balance == 10  # type: ignore[union-attr]
