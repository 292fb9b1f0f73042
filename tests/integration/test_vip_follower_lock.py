"""One VIP follower at a time (issue 14): bot processes on one store each start a follower, the
one holding the store's follower lock runs the vip-channel policy, the others stand by and one
takes over once the holder stops; its lock is not the workers' (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.leadership import FOLLOWER, leader_lock
from dianabot.adapters.telegram.bot import make_bot
from dianabot.adapters.telegram.followers import LEADER, STANDBY, STOPPED, BotFollower
from dianabot.adapters.telegram.local_api import LocalBotAPI
from dianabot.application.clock import ManualClock
from dianabot.application.commands import RegisterPlayer
from dianabot.application.results import Origin

from tests.conftest import make_settings
from tests.telegram_live import TOKEN, VIP_CHANNEL, bot_services_of, until

ANA, LUIS = 1101, 1102


@pytest.fixture
def processes(shared_database_url: str, clock: ManualClock) -> Iterator[list[Services]]:
    """Two processes' services on one store."""
    settings = make_settings(shared_database_url, vip_channel_id=VIP_CHANNEL)
    with ExitStack() as stack:
        yield [stack.enter_context(bootstrap(settings, clock=clock)) for _ in range(2)]


def follower(services: Services, bot: Any) -> BotFollower:
    return BotFollower(bot_services_of(services), bot, interval=0.05, standby_retry=0.1)


def make_vip(services: Services, user: int) -> None:
    app = services.app
    assert app.bus.handle(RegisterPlayer(user, "x"), Origin.telegram(user, user)).ok
    assert app.grant_vip(user, 30, "admin", "prueba", Origin.console()).ok


def invites(api: LocalBotAPI, user: int) -> int:
    return len([c for c in api.calls("createChatInviteLink") if c.params["name"] == f"vip:{user}"])


def test_one_follower_runs_and_another_takes_over_when_it_stops(
    processes: list[Services],
) -> None:
    first_process, second_process = processes

    async def scenario() -> None:
        async with LocalBotAPI(TOKEN) as api:
            api.add_channel(VIP_CHANNEL, title="El Diván")
            api.strict_chats = False  # the users' private chats
            bots = [make_bot(TOKEN, api.url) for _ in processes]
            first = follower(first_process, bots[0])
            second = follower(second_process, bots[1])
            try:
                first.start()
                await until(lambda: first.role == LEADER, 10)
                second.start()
                await asyncio.sleep(0.5)  # several attempts: still standing by
                assert (first.role, second.role) == (LEADER, STANDBY)
                # The workers' lock is another: a workers process is not kept out.
                workers = leader_lock(second_process.database)
                assert workers.acquire()
                workers.release()

                make_vip(first_process, ANA)
                await until(lambda: invites(api, ANA) == 1, 10)
                await until(lambda: len(api.sent_texts(ANA)) == 1, 10)
                await asyncio.sleep(0.5)
                assert invites(api, ANA) == 1 and len(api.sent_texts(ANA)) == 1

                await first.stop()
                assert first.role == STOPPED
                await until(lambda: second.role == LEADER, 10)
                make_vip(first_process, LUIS)
                await until(lambda: invites(api, LUIS) == 1, 10)
                await until(lambda: len(api.sent_texts(LUIS)) == 1, 10)
                await asyncio.sleep(0.5)
                # Each effect once: the new holder resumed after Ana's recorded invitation.
                assert invites(api, ANA) == 1 and invites(api, LUIS) == 1
                assert len(api.sent_texts(ANA)) == 1 and len(api.sent_texts(LUIS)) == 1
                player = second_process.app.get_player(LUIS)
                assert player is not None and player.vip_channel == "invited"
            finally:
                await first.stop()
                await second.stop()
                for bot in bots:
                    await bot.session.close()
        # Released on stop: anyone may take it now.
        lock = leader_lock(first_process.database, FOLLOWER)
        assert lock.acquire()
        lock.release()

    asyncio.run(asyncio.wait_for(scenario(), 60))
