"""Drive the real bot (`build_dispatcher`) with aiogram updates built here, on a `Bot` whose
session is `FakeSession`: `await harness.command(user, "/checkin")`, then look at what it sent."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.types import CallbackQuery, Chat, Message, PollAnswer, Update, User
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.telegram.bot import RetryAfterMiddleware, build_dispatcher

from tests.telegram_fake import FakeSession
from tests.telegram_live import bot_services_of

BOT_ID = 123456
TOKEN = f"{BOT_ID}:TEST-token"
CHANNEL = -1001
GROUP = -1002


class Harness:
    def __init__(self, services: Services) -> None:
        assert services.coordinator is not None
        self.services = services
        self.bot_services = bot_services_of(services, follow=False)
        self.dispatcher = build_dispatcher(self.bot_services)
        self.session = FakeSession()
        self.session.middleware(RetryAfterMiddleware())
        self.bot = Bot(TOKEN, session=self.session)
        self._ids = itertools.count(1)
        self._messages = itertools.count(1)

    @property
    def texts(self) -> list[str]:
        return self.session.texts()

    @property
    def last(self) -> str:
        return self.texts[-1]

    @property
    def answered(self) -> str:
        """The text of the last `answerCallbackQuery`."""
        return str(self.session.sent("answerCallbackQuery")[-1].get("text"))

    def user(self, user_id: int) -> User:
        return User(id=user_id, is_bot=False, first_name=f"Usuario{user_id}", language_code="es")

    async def feed(self, update: Update) -> Any:
        return await self.dispatcher.feed_update(self.bot, update)

    def message_update(self, user_id: int, text: str, chat_id: int | None = None) -> Update:
        chat = Chat(id=user_id if chat_id is None else chat_id, type="private")
        if chat_id is not None and chat_id < 0:
            chat = Chat(id=chat_id, type="supergroup")
        message = Message(
            message_id=next(self._messages),
            date=datetime.now(UTC),
            chat=chat,
            from_user=self.user(user_id),
            text=text,
        )
        return Update(update_id=next(self._ids), message=message)

    async def command(self, user_id: int, text: str, chat_id: int | None = None) -> str:
        """Send a message as the user; the last text the bot sent or answered afterwards."""
        before = len(self.texts)
        await self.feed(self.message_update(user_id, text, chat_id))
        return self.texts[-1] if len(self.texts) > before else ""

    def channel_post(self, message_id: int, chat_id: int = CHANNEL) -> Update:
        message = Message(
            message_id=message_id,
            date=datetime.now(UTC),
            chat=Chat(id=chat_id, type="channel"),
            text="Un nuevo post de Diana",
        )
        return Update(update_id=next(self._ids), channel_post=message)

    def press(
        self, user_id: int, data: str, chat_id: int | None = None, message_id: int = 1
    ) -> Update:
        message = Message(
            message_id=message_id,
            date=datetime.now(UTC),
            chat=Chat(id=user_id if chat_id is None else chat_id, type="private"),
            text="…",
        )
        query = CallbackQuery(
            id=f"q{next(self._messages)}",
            from_user=self.user(user_id),
            chat_instance="ci",
            message=message,
            data=data,
        )
        return Update(update_id=next(self._ids), callback_query=query)

    async def tap(self, user_id: int, data: str, **where: Any) -> str:
        before = len(self.texts)
        await self.feed(self.press(user_id, data, **where))
        return self.texts[-1] if len(self.texts) > before else ""

    def poll_answer(self, user_id: int, poll_id: str) -> Update:
        answer = PollAnswer(
            poll_id=poll_id, user=self.user(user_id), option_ids=[0], option_persistent_ids=["0"]
        )
        return Update(update_id=next(self._ids), poll_answer=answer)

    def balance(self, user_id: int) -> int:
        player = self.services.app.get_player(user_id)
        return -1 if player is None else player.balance
