"""A small fake Bot API for driving the real dispatcher in tests: an aiogram session that
records every call and answers with canned results (a sent message, or True). It can answer a
method with Telegram's 429 a given number of times. The local Bot API server will replace it."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType

RETURNS_MESSAGE = {"sendMessage", "sendPoll"}


class FakeSession(BaseSession):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.too_many: dict[str, int] = defaultdict(int)
        self.message_ids = 1000

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def texts(self) -> list[str]:
        """Every text the bot sent, edited or answered, in order."""
        return [
            str(params.get("text"))
            for name, params in self.calls
            if name in {"sendMessage", "editMessageText", "answerCallbackQuery"}
            and params.get("text") is not None
        ]

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        name = method.__api_method__
        raw = method.model_dump(warnings=False)
        params = {
            key: self.prepare_value(value, bot=bot, files={}, _dumps_json=False)
            for key, value in raw.items()
        }
        params = {key: value for key, value in params.items() if value is not None}
        self.calls.append((name, params))
        if self.too_many[name] > 0:
            self.too_many[name] -= 1
            content = {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            }
            return self.check_response(bot, method, 429, json.dumps(content)).result  # type: ignore[return-value]
        result: Any = True
        if name in RETURNS_MESSAGE:
            self.message_ids += 1
            result = {
                "message_id": self.message_ids,
                "date": 0,
                "chat": {"id": params.get("chat_id", 0), "type": "private"},
                "text": params.get("text", ""),
            }
        if name == "createInvoiceLink":
            result = f"https://t.me/$FakeInvoice{len(self.calls)}"
        response = self.check_response(bot, method, 200, json.dumps({"ok": True, "result": result}))
        return response.result  # type: ignore[return-value]

    async def close(self) -> None:
        pass

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""
