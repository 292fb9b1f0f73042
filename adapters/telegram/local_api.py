"""A local Telegram Bot API server for tests and the demo.

`LocalBotAPI` is an aiohttp application that answers like Telegram's Bot API
(`POST|GET /bot<token>/<method>`, JSON, urlencoded or multipart parameters, answers
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": ..., "description": ...}`) with
Telegram's object shapes, so aiogram parses what it returns. A bot reaches it exactly as a
self-hosted Bot API server::

    async with LocalBotAPI(token) as api:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
        bot = Bot(token, session=session)

A test injects updates (`inject_message`, `inject_callback_query`, `inject_channel_post`, ...),
reads what the bot did (`calls("sendMessage")`, `messages(chat_id)`, `wait_for_calls`), and
scripts faults (`fail_with_retry_after`, `fail_with_bad_request`, `block`). `getUpdates` is real
long polling: it confirms and drops updates before `offset`, waits up to `timeout` seconds for an
update, and answers a concurrent earlier poll with 409 like Telegram. Sync tests run it on a
thread of its own: `with LocalBotAPI(token).running_in_thread() as api: ...`.

Only the methods the bot uses are implemented; any other method is 404, an unknown token 401.
State is in memory and is guarded by one lock, so a test thread may inject while the server's
loop answers.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

#: What Telegram sends when `allowed_updates` was never set (or set to an empty list).
DEFAULT_ALLOWED_UPDATES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)

# How form values (always strings: aiogram sends multipart with JSON-encoded non-strings) map
# back to JSON types, by parameter name, as Telegram reads them.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "commands",
        "scope",
        "options",
        "prices",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "question_entities",
        "explanation_entities",
        "suggested_tip_amounts",
    }
)
_INT_PARAMS = frozenset(
    {
        "offset",
        "limit",
        "message_id",
        "user_id",
        "message_thread_id",
        "reply_to_message_id",
        "cache_time",
        "max_connections",
        "open_period",
        "close_date",
        "correct_option_id",
        "total_amount",
        "expire_date",
        "member_limit",
        "until_date",
        "max_tip_amount",
        "subscription_period",
    }
)
_FLOAT_PARAMS = frozenset({"timeout"})
_BOOL_PARAMS = frozenset(
    {
        "allows_revoting",
        "members_only",
        "show_alert",
        "drop_pending_updates",
        "is_anonymous",
        "allows_multiple_answers",
        "is_closed",
        "disable_notification",
        "protect_content",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "ok",
        "creates_join_request",
        "revoke_messages",
        "only_if_banned",
        "need_name",
        "need_email",
        "need_phone_number",
        "is_flexible",
    }
)

_TAG = re.compile(r"<[^>]+>")
_COMMAND = re.compile(r"^/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
BLOCKED = "Forbidden: bot was blocked by the user"
# The methods a user who blocked the bot refuses (403).
_TO_A_CHAT = ("send", "edit", "copy", "forward", "createinvoicelink")


class BotAPIError(Exception):
    """An error answer: `{"ok": false, "error_code": ..., "description": ...}`."""

    def __init__(self, error_code: int, description: str, *, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(description: str) -> BotAPIError:
    return BotAPIError(400, f"Bad Request: {description}")


@dataclass
class Call:
    """One request the server answered: method as the client spelled it, its parameters
    (decoded to JSON types), when it arrived, and the answer (`result` or `error_code`)."""

    method: str
    params: JSON
    at: float
    monotonic: float
    status: int = 0
    result: Any = None
    error_code: int | None = None
    description: str | None = None
    finished: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Fault:
    """A scripted error answer for `method` (any method when `*`), for calls addressing `chat_id`
    when given, `times` times (forever when None)."""

    method: str
    error_code: int
    description: str
    times: int | None = 1
    retry_after: int | None = None
    chat_id: int | str | None = None

    def matches(self, method: str, params: JSON) -> bool:
        if self.method != "*" and self.method.lower() != method:
            return False
        return self.chat_id is None or _addressed_chat(params) == self.chat_id


@dataclass(frozen=True)
class TelegramUser:
    """A person as the updates name them."""

    id: int
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "es"
    is_premium: bool | None = None

    def to_api(self) -> JSON:
        user: JSON = {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name or f"User{self.id}",
        }
        for key in ("last_name", "username", "language_code", "is_premium"):
            value = getattr(self, key)
            if value is not None:
                user[key] = value
        return user

    def private_chat(self) -> JSON:
        chat: JSON = {"id": self.id, "type": "private", "first_name": self.to_api()["first_name"]}
        if self.last_name is not None:
            chat["last_name"] = self.last_name
        if self.username is not None:
            chat["username"] = self.username
        return chat


UserLike = TelegramUser | int


def _as_user(user: UserLike) -> TelegramUser:
    return user if isinstance(user, TelegramUser) else TelegramUser(id=user)


def _addressed_chat(params: JSON) -> int | str | None:
    chat = params.get("chat_id", params.get("user_id"))
    return chat if isinstance(chat, int | str) else None


def _decode_value(name: str, value: str) -> Any:
    try:
        if name in _JSON_PARAMS:
            return orjson.loads(value)
        if name in _INT_PARAMS:
            return int(value)
        if name in _FLOAT_PARAMS:
            number = float(value)
            return int(number) if number.is_integer() else number
        if name in _BOOL_PARAMS:
            return value.lower() in ("true", "1")
    except (ValueError, orjson.JSONDecodeError) as error:
        raise bad_request(f"can't parse parameter {name}") from error
    if name in ("chat_id", "from_chat_id") and value.lstrip("-").isdigit():
        return int(value)
    return value


def _strip_markup(text: str, parse_mode: Any) -> str:
    if parse_mode == "HTML":
        return html.unescape(_TAG.sub("", text))
    return text


@dataclass
class _Queued:
    update: JSON
    update_id: int
    reinjected: bool
    delivered: bool = False
    sending: bool = False
    """Being POSTed to the webhook now."""
    attempts: int = 0
    retry_at: float = 0.0


WEBHOOK_RETRY = (0.2, 5.0)
"""Pauses (first, longest) before a webhook delivery that failed is tried again (Telegram's
are longer; the tests' patience is not)."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class _AsyncWaiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self, current: asyncio.AbstractEventLoop | None) -> None:
        if self.loop is current:
            self.event.set()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.event.set)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


Handler = Callable[[JSON], Awaitable[Any]]


class LocalBotAPI:
    """A Bot API server for one bot (`token`), in memory. See the module docstring."""

    def __init__(
        self,
        token: str = "123456789:TEST-local-bot-api-token",
        *,
        username: str = "diana_local_bot",
        first_name: str = "Diana",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        strict_chats: bool = True,
        first_update_id: int = 10_001,
    ) -> None:
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("a bot token looks like 123456789:secret")
        self.token = token
        self.bot_id = int(bot_id)
        self.bot_user: JSON = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.host = host
        self.port = port
        self.clock = clock
        #: Refuse messages to chats the server has never seen (400 "chat not found"), as
        #: Telegram does; chats become known from injected updates or `add_chat`.
        self.strict_chats = strict_chats

        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._queue: list[_Queued] = []
        self._update_ids = itertools.count(first_update_id)
        self._highest_update_id = first_update_id - 1
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self._dropped: list[JSON] = []
        self._chats: dict[int, JSON] = {}
        self._messages: dict[tuple[int, int], JSON] = {}
        self._message_ids: dict[int, int] = {}
        self._callback_queries: dict[str, JSON] = {}
        self._pre_checkout_queries: dict[str, JSON] = {}
        self._answers: dict[str, JSON] = {}
        self._charges: dict[str, JSON] = {}
        self._refunded: set[str] = set()
        self._polls: dict[str, JSON] = {}
        self._ids = itertools.count(1)
        self._faults: list[Fault] = []
        self._blocked: set[int | str] = set()
        self._banned: dict[int, set[int]] = {}
        self._members: dict[int, set[int]] = {}
        self._commands: dict[str, list[JSON]] = {}
        self._invoice_links: list[JSON] = []
        self._invite_links: list[JSON] = []
        self._webhook: JSON = {"url": ""}
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_wake = asyncio.Event()
        self._deliveries: list[JSON] = []

        self._poller: object | None = None
        self._update_waiters: set[asyncio.Event] = set()
        self._call_waiters: list[_AsyncWaiter] = []
        self._calls_changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False

        self._methods: dict[str, Handler] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendpoll": self._send_poll,
            "createinvoicelink": self._create_invoice_link,
            "answerprecheckoutquery": self._answer_pre_checkout_query,
            "refundstarpayment": self._refund_star_payment,
            "createchatinvitelink": self._create_chat_invite_link,
            "banchatmember": self._ban_chat_member,
            "unbanchatmember": self._unban_chat_member,
            "revokechatinvitelink": self._revoke_chat_invite_link,
        }

    # ------------------------------------------------------------------ running

    @property
    def url(self) -> str:
        """The base URL for `TelegramAPIServer.from_base` (set once started)."""
        if not self.port:
            raise RuntimeError("the local Bot API is not started")
        return f"http://{self.host}:{self.port}"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_post("/local/bot{token}/inject/{kind}", self._control_inject)
        app.router.add_get("/local/bot{token}/calls", self._control_calls)
        return app

    # ------------------------------------------------------------------ control (other process)

    async def _control_inject(self, request: web.Request) -> web.Response:
        """`POST /local/bot<token>/inject/<kind>` with the builder's arguments as JSON (`user`
        an object of `TelegramUser` fields): how a test in another process injects."""
        if request.match_info["token"] != self.token:
            return self._answer(BotAPIError(401, "Unauthorized").payload(), 401)
        builders: dict[str, Callable[..., JSON]] = {
            "update": self.inject_update,
            "message": self.inject_message,
            "group_message": self.inject_group_message,
            "channel_post": self.inject_channel_post,
            "callback_query": self.inject_callback_query,
            "poll_answer": self.inject_poll_answer,
            "pre_checkout_query": self.inject_pre_checkout_query,
            "successful_payment": self.inject_successful_payment,
        }
        builder = builders.get(request.match_info["kind"])
        if builder is None:
            return self._answer(BotAPIError(404, "Not Found").payload(), 404)
        try:
            arguments = orjson.loads(await request.read())
            if not isinstance(arguments, dict):
                raise TypeError("arguments must be an object")
            if isinstance(arguments.get("user"), dict):
                arguments["user"] = TelegramUser(**arguments["user"])
            if isinstance(arguments.get("message"), list):
                arguments["message"] = tuple(arguments["message"])
            update = builder(**arguments)
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as error:
            return self._answer(bad_request(str(error)).payload(), 400)
        return self._answer({"ok": True, "result": update}, 200)

    async def _control_calls(self, request: web.Request) -> web.Response:
        """`GET /local/bot<token>/calls[?method=M][&since=N]`: the recorded calls from index N."""
        if request.match_info["token"] != self.token:
            return self._answer(BotAPIError(401, "Unauthorized").payload(), 401)
        method = request.query.get("method")
        since = int(request.query.get("since", "0"))
        calls = [
            {
                "method": call.method,
                "params": call.params,
                "at": call.at,
                "status": call.status,
                "result": call.result,
                "description": call.description,
            }
            for call in self.calls(method)[since:]
        ]
        return self._answer({"ok": True, "result": calls}, 200)

    async def start(self) -> None:
        """Listen on `host:port` (a free port when 0) in the running loop."""
        self._loop = asyncio.get_running_loop()
        self._closing = False
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        self.port = sock.getsockname()[1]
        logger.info("local Bot API listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening; waiting long polls answer with what they have (nothing)."""
        self._closing = True
        self._wake_pollers()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalBotAPI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self) -> Iterator[LocalBotAPI]:
        """Serve from a thread with its own event loop, for synchronous tests."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # handed to the caller below
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="local-bot-api", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            loop.close()
            raise failure[0]
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._answer(BotAPIError(401, "Unauthorized").payload(), 401)
        name = request.match_info["method"]
        method = name.lower()
        try:
            params = await self._params(request)
        except BotAPIError as error:
            return self._answer(error.payload(), error.error_code)
        call = self._record(name, params)
        handler = self._methods.get(method)
        try:
            if handler is None:
                raise BotAPIError(404, "Not Found")
            self._scripted_fault(method, params)
            result = await handler(params)
        except BotAPIError as error:
            self._finish(call, error.error_code, None, error)
            return self._answer(error.payload(), error.error_code)
        self._finish(call, 200, result, None)
        return self._answer({"ok": True, "result": result}, 200)

    @staticmethod
    def _answer(body: JSON, status: int) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    @staticmethod
    async def _params(request: web.Request) -> JSON:
        params: JSON = {}
        for key, value in request.query.items():
            params[key] = _decode_value(key, value)
        if request.method != "POST" or not request.body_exists:
            return params
        if request.content_type == "application/json":
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError as error:
                raise bad_request("can't parse JSON object") from error
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object")
            for key, value in body.items():
                params[key] = _decode_value(key, value) if isinstance(value, str) else value
            return params
        form = await request.post()
        for key, field_value in form.items():
            if isinstance(field_value, str):
                params[key] = _decode_value(key, field_value)
        return params

    def _record(self, method: str, params: JSON) -> Call:
        call = Call(method=method, params=params, at=self.clock(), monotonic=time.monotonic())
        with self._lock:
            self._calls.append(call)
        return call

    def _finish(self, call: Call, status: int, result: Any, error: BotAPIError | None) -> None:
        with self._lock:
            call.status = status
            call.result = result
            if error is not None:
                call.error_code = error.error_code
                call.description = error.description
            call.finished = time.monotonic()
            self._calls_changed.notify_all()
            waiters, self._call_waiters = self._call_waiters, []
        current = _running_loop()
        for waiter in waiters:
            waiter.wake(current)

    def _scripted_fault(self, method: str, params: JSON) -> None:
        with self._lock:
            chat = _addressed_chat(params)
            if chat is not None and chat in self._blocked and method.startswith(_TO_A_CHAT):
                raise BotAPIError(403, BLOCKED)
            for fault in self._faults:
                if fault.matches(method, params):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    raise BotAPIError(
                        fault.error_code, fault.description, retry_after=fault.retry_after
                    )

    # ------------------------------------------------------------------ faults

    def fail(
        self,
        method: str,
        error_code: int,
        description: str,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        chat_id: int | str | None = None,
    ) -> Fault:
        """Answer the next `times` calls of `method` (`*`: any) with this error."""
        fault = Fault(method, error_code, description, times, retry_after, chat_id)
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_with_retry_after(
        self, method: str, retry_after: int, *, times: int | None = 1, chat_id: int | None = None
    ) -> Fault:
        """429 with `parameters.retry_after`, as Telegram's flood control answers."""
        return self.fail(
            method,
            429,
            f"Too Many Requests: retry after {retry_after}",
            times=times,
            retry_after=retry_after,
            chat_id=chat_id,
        )

    def fail_with_bad_request(
        self,
        method: str,
        *,
        times: int | None = 1,
        description: str = "Bad Request: scripted failure",
        chat_id: int | None = None,
    ) -> Fault:
        """400 for the next `times` calls of `method`."""
        return self.fail(method, 400, description, times=times, chat_id=chat_id)

    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot: every call addressing them is 403."""
        with self._lock:
            self._blocked.add(chat_id)

    def unblock(self, chat_id: int | str) -> None:
        with self._lock:
            self._blocked.discard(chat_id)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._blocked.clear()

    # ------------------------------------------------------------------ recorded calls

    def calls(self, method: str | None = None) -> list[Call]:
        """Every call so far (of `method` when given, case-insensitive), oldest first."""
        with self._lock:
            if method is None:
                return list(self._calls)
            wanted = method.lower()
            return [call for call in self._calls if call.method.lower() == wanted]

    def _matching(
        self, method: str, where: Callable[[Call], bool] | None, ok_only: bool
    ) -> list[Call]:
        return [
            call
            for call in self.calls(method)
            if call.finished is not None
            and (call.ok or not ok_only)
            and (where is None or where(call))
        ]

    def wait_for_calls(
        self,
        method: str,
        count: int = 1,
        *,
        where: Callable[[Call], bool] | None = None,
        ok_only: bool = False,
        timeout: float = 5.0,
    ) -> list[Call]:
        """Block until `count` answered calls of `method` (matching `where`) were made; from a
        thread other than the server's (see `running_in_thread`)."""
        deadline = time.monotonic() + timeout
        with self._calls_changed:
            while True:
                found = self._matching(method, where, ok_only)
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    break
                self._calls_changed.wait(remaining)
        if len(found) < count:
            raise TimeoutError(f"{len(found)} of {count} {method} calls after {timeout} s")
        return found

    async def wait_for_calls_async(
        self,
        method: str,
        count: int = 1,
        *,
        where: Callable[[Call], bool] | None = None,
        ok_only: bool = False,
        timeout: float = 5.0,
    ) -> list[Call]:
        """`wait_for_calls` for a coroutine (on the server's loop or any other)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiter = _AsyncWaiter(loop)
            with self._lock:
                found = self._matching(method, where, ok_only)
                if len(found) >= count:
                    return found
                self._call_waiters.append(waiter)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(found)} of {count} {method} calls after {timeout} s")
            with suppress(TimeoutError):
                await asyncio.wait_for(waiter.event.wait(), remaining)

    def messages(self, chat_id: int) -> list[JSON]:
        """The messages of a chat as they stand now (edits applied), oldest first."""
        with self._lock:
            found = [m for (chat, _), m in self._messages.items() if chat == chat_id]
        return sorted(found, key=lambda message: int(message["message_id"]))

    def message(self, chat_id: int, message_id: int) -> JSON:
        with self._lock:
            return self._messages[(chat_id, message_id)]

    def sent_texts(self, chat_id: int) -> list[str]:
        """The texts the bot sent to a chat (as they stand now), oldest first."""
        return [
            str(m["text"])
            for m in self.messages(chat_id)
            if m.get("from", {}).get("id") == self.bot_id and "text" in m
        ]

    def callback_answer(self, callback_query_id: str) -> JSON | None:
        with self._lock:
            return self._answers.get(callback_query_id)

    @property
    def commands(self) -> dict[str, list[JSON]]:
        """`setMyCommands` per scope and language (key `"<scope type>:<language>"`)."""
        with self._lock:
            return dict(self._commands)

    @property
    def webhook_url(self) -> str:
        return str(self._webhook["url"])

    def banned(self, chat_id: int) -> set[int]:
        with self._lock:
            return set(self._banned.get(chat_id, set()))

    @property
    def refunded_charges(self) -> set[str]:
        with self._lock:
            return set(self._refunded)

    @property
    def invoice_links(self) -> list[JSON]:
        with self._lock:
            return list(self._invoice_links)

    # ------------------------------------------------------------------ update queue

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates not confirmed yet (delivered or not)."""
        with self._lock:
            return [queued.update for queued in self._queue]

    @property
    def dropped_updates(self) -> list[JSON]:
        """Injected updates of a type the bot's `allowed_updates` excluded (never sent)."""
        with self._lock:
            return list(self._dropped)

    def inject_update(self, update: JSON) -> JSON:
        """Queue a raw update (a fresh `update_id` unless it carries one: an update injected
        again with its old id is delivered again, as after a lost offset). One the Bot API
        could not send (an integer beyond 64 bits) is refused here (ValueError), not queued to
        make every later `getUpdates` fail."""
        try:
            orjson.dumps(update)
        except orjson.JSONEncodeError as error:
            raise ValueError(f"not an update the Bot API could send: {error}") from error
        with self._lock:
            update = dict(update)
            if "update_id" in update and isinstance(update["update_id"], int):
                update_id = update["update_id"]
                reinjected = update_id <= self._highest_update_id
            else:
                update_id = next(self._update_ids)
                while update_id <= self._highest_update_id:
                    update_id = next(self._update_ids)
                update = {"update_id": update_id, **update}
                reinjected = False
            self._highest_update_id = max(self._highest_update_id, update_id)
            kind = next((key for key in update if key != "update_id"), None)
            if kind is not None and kind not in self._allowed_updates:
                self._dropped.append(update)
                return update
            self._queue.append(_Queued(update, update_id, reinjected))
        self._wake_pollers()
        return update

    def _wake_pollers(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:
            self._wake_pollers_now()
        else:
            loop.call_soon_threadsafe(self._wake_pollers_now)

    def _wake_pollers_now(self) -> None:
        for event in list(self._update_waiters):
            event.set()
        self._webhook_wake.set()

    def _confirm(self, offset: int) -> None:
        with self._lock:
            if offset < 0:
                self._queue = self._queue[offset:]
                return
            self._queue = [
                queued
                for queued in self._queue
                if not (queued.update_id < offset and (queued.delivered or not queued.reinjected))
            ]

    def _take(self, limit: int) -> list[JSON]:
        with self._lock:
            batch = self._queue[:limit]
            for queued in batch:
                queued.delivered = True
            return [queued.update for queued in batch]

    # ------------------------------------------------------------------ update builders

    def add_chat(self, chat: JSON) -> JSON:
        """Make a chat known (a channel or group the bot is in, a user who started it)."""
        with self._lock:
            known = self._chats.setdefault(int(chat["id"]), dict(chat))
            known.update(chat)
            return known

    def add_channel(self, chat_id: int, title: str = "Diana", username: str | None = None) -> JSON:
        chat: JSON = {"id": chat_id, "type": "channel", "title": title}
        if username is not None:
            chat["username"] = username
        return self.add_chat(chat)

    def add_group(self, chat_id: int, title: str = "Diana's circle") -> JSON:
        return self.add_chat({"id": chat_id, "type": "supergroup", "title": title})

    def _new_message(self, chat: JSON, **fields: Any) -> JSON:
        with self._lock:
            chat = self.add_chat(chat)
            chat_id = int(chat["id"])
            message_id = self._message_ids.get(chat_id, 0) + 1
            self._message_ids[chat_id] = message_id
            message: JSON = {"message_id": message_id, "date": int(self.clock()), "chat": chat}
            message.update({key: value for key, value in fields.items() if value is not None})
            self._messages[(chat_id, message_id)] = message
            return message

    @staticmethod
    def _text_fields(text: str) -> JSON:
        fields: JSON = {"text": text}
        command = _COMMAND.match(text)
        if command:
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": command.end()}]
        return fields

    def inject_message(self, user: UserLike, text: str) -> JSON:
        """A private message (a command when it starts with `/`, e.g. `/start vip-abc`)."""
        person = _as_user(user)
        message = self._new_message(
            person.private_chat(), **{"from": person.to_api()}, **self._text_fields(text)
        )
        return self.inject_update({"message": message})

    inject_command = inject_message

    def inject_group_message(self, chat_id: int, user: UserLike, text: str) -> JSON:
        """A message from `user` in a group (a supergroup unless added otherwise)."""
        person = _as_user(user)
        with self._lock:
            chat = self._chats.get(chat_id) or self.add_group(chat_id)
        message = self._new_message(chat, **{"from": person.to_api()}, **self._text_fields(text))
        return self.inject_update({"message": message})

    def inject_channel_post(self, chat_id: int, text: str) -> JSON:
        """A post in a channel (the bot is an administrator there)."""
        with self._lock:
            chat = self._chats.get(chat_id) or self.add_channel(chat_id)
        message = self._new_message(chat, sender_chat=chat, text=text)
        return self.inject_update({"channel_post": message})

    def inject_callback_query(
        self, user: UserLike, message: JSON | tuple[int, int], data: str
    ) -> JSON:
        """A press of an inline button carrying `data` on a message (a Message object, e.g. a
        call's result, or `(chat_id, message_id)`); the message is sent as it stands now."""
        person = _as_user(user)
        chat_id, message_id = (
            message
            if isinstance(message, tuple)
            else (int(message["chat"]["id"]), int(message["message_id"]))
        )
        with self._lock:
            current = self._messages.get((chat_id, message_id))
            query_id = str(next(self._ids) * 1_000_003 + person.id)
            query: JSON = {
                "id": query_id,
                "from": person.to_api(),
                "chat_instance": str(-chat_id * 7 + 11),
                "data": data,
            }
            if current is not None:
                query["message"] = current
            else:
                kind = "private" if chat_id > 0 else "supergroup"
                chat: JSON = {"id": chat_id, "type": kind}
                query["message"] = {"message_id": message_id, "date": 0, "chat": chat}
            self._callback_queries[query_id] = query
        return self.inject_update({"callback_query": query})

    def inject_poll_answer(self, user: UserLike, poll_id: str, option_ids: list[int]) -> JSON:
        """A non-anonymous poll answer (Telegram reports them only for polls the bot sent)."""
        person = _as_user(user)
        answer: JSON = {
            "poll_id": poll_id,
            "user": person.to_api(),
            "option_ids": option_ids,
            "option_persistent_ids": [f"{poll_id}:{index}" for index in option_ids],
        }
        return self.inject_update({"poll_answer": answer})

    def inject_pre_checkout_query(
        self, user: UserLike, payload: str, total_amount: int, currency: str = "XTR"
    ) -> JSON:
        person = _as_user(user)
        with self._lock:
            query_id = str(next(self._ids) * 1_000_033 + person.id)
            query: JSON = {
                "id": query_id,
                "from": person.to_api(),
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
            }
            self._pre_checkout_queries[query_id] = query
        return self.inject_update({"pre_checkout_query": query})

    def inject_successful_payment(
        self,
        user: UserLike,
        payload: str,
        total_amount: int,
        currency: str = "XTR",
        charge_id: str | None = None,
        *,
        subscription_expiration_date: int | None = None,
        is_recurring: bool | None = None,
        is_first_recurring: bool | None = None,
    ) -> JSON:
        """The service message Telegram sends once a payment went through (a subscription's
        first payment and each renewal carry `is_recurring` and the period's end)."""
        person = _as_user(user)
        with self._lock:
            charge = charge_id or f"stxLOCAL{next(self._ids):010d}"
            payment: JSON = {
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge,
                "provider_payment_charge_id": "",
            }
            extra = {
                "subscription_expiration_date": subscription_expiration_date,
                "is_recurring": is_recurring,
                "is_first_recurring": is_first_recurring,
            }
            payment.update({key: value for key, value in extra.items() if value is not None})
            self._charges[charge] = {"user_id": person.id, **payment}
        message = self._new_message(
            person.private_chat(), **{"from": person.to_api()}, successful_payment=payment
        )
        return self.inject_update({"message": message})

    def join_via_link(self, user: UserLike, invite_link: str) -> JSON:
        """`user` opens an invite link: refused (ValueError) when it is revoked, used up
        (`member_limit`) or the user is banned there; else they join and the `chat_member`
        update Telegram sends the chat's administrators is queued."""
        person = _as_user(user)
        with self._lock:
            link = next((x for x in self._invite_links if x["invite_link"] == invite_link), None)
            if link is None or link["is_revoked"]:
                raise ValueError("INVITE_HASH_EXPIRED")
            chat_id = int(link["chat_id"])
            if person.id in self._banned.get(chat_id, set()):
                raise ValueError("USER_BANNED_IN_CHANNEL")
            joined = link.setdefault("_joined", [])
            if link.get("member_limit") and len(joined) >= int(link["member_limit"]):
                raise ValueError("USERS_TOO_MUCH")
            joined.append(person.id)
            self._members.setdefault(chat_id, set()).add(person.id)
            shown = {k: v for k, v in link.items() if k not in {"chat_id", "_joined"}}
        return self.inject_chat_member(chat_id, person, "left", "member", shown)

    def members(self, chat_id: int) -> set[int]:
        """Who is in a chat (joined through `join_via_link`, not removed since)."""
        with self._lock:
            return set(self._members.get(chat_id, set()))

    def invite_links(self, chat_id: int) -> list[JSON]:
        with self._lock:
            return [dict(x) for x in self._invite_links if x["chat_id"] == chat_id]

    def inject_chat_member(
        self, chat_id: int, user: UserLike, old: str, new: str, link: JSON | None = None
    ) -> JSON:
        """A `chat_member` update: `user`'s status in the chat went from `old` to `new`."""
        person = _as_user(user)
        with self._lock:
            chat = self._chats.get(chat_id) or self.add_channel(chat_id)
        member: JSON = {
            "chat": chat,
            "from": person.to_api(),
            "date": int(self.clock()),
            "old_chat_member": {"status": old, "user": person.to_api()},
            "new_chat_member": {"status": new, "user": person.to_api()},
        }
        if new == "kicked":
            member["new_chat_member"]["until_date"] = 0
        if link is not None:
            member["invite_link"] = link
        return self.inject_update({"chat_member": member})

    # ------------------------------------------------------------------ methods

    def _chat(self, params: JSON, key: str = "chat_id") -> JSON:
        if key not in params:
            raise bad_request(f"{key} is empty" if key == "chat_id" else f"{key} is required")
        chat_id = params[key]
        with self._lock:
            if isinstance(chat_id, int) and chat_id in self._chats:
                return self._chats[chat_id]
            if isinstance(chat_id, str) and chat_id.startswith("@"):
                for chat in self._chats.values():
                    if chat.get("username") == chat_id[1:]:
                        return chat
            if isinstance(chat_id, int) and not self.strict_chats:
                kind = "private" if chat_id > 0 else "supergroup"
                return self.add_chat({"id": chat_id, "type": kind, "title": str(chat_id)})
        raise bad_request("chat not found")

    @staticmethod
    def _required(params: JSON, key: str) -> Any:
        value = params.get(key)
        if value is None or value == "":
            raise bad_request(f"{key} is empty" if key == "text" else f"{key} is required")
        return value

    @staticmethod
    def _inline_markup(params: JSON) -> JSON | None:
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            return markup
        return None

    async def _get_me(self, params: JSON) -> JSON:
        return self.bot_user

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self._webhook["url"]:
            raise BotAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        limit = params.get("limit") or 100
        timeout = params.get("timeout") or 0
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            limit = 100
        if not isinstance(timeout, int | float) or timeout < 0:
            timeout = 0
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            with self._lock:
                self._allowed_updates = (
                    frozenset(str(kind) for kind in allowed) or DEFAULT_ALLOWED_UPDATES
                )
        if isinstance(offset, int):
            self._confirm(offset)
        me = object()
        if self._poller is not None:
            self._poller = me
            self._wake_pollers_now()
        self._poller = me
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        try:
            while True:
                if self._webhook["url"]:
                    raise BotAPIError(
                        409, "Conflict: webhook was set during the getUpdates request"
                    )
                if self._poller is not me:
                    raise BotAPIError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
                batch = self._take(limit)
                remaining = deadline - loop.time()
                if batch or remaining <= 0 or self._closing:
                    return batch
                event = asyncio.Event()
                self._update_waiters.add(event)
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    pass
                finally:
                    self._update_waiters.discard(event)
        finally:
            if self._poller is me:
                self._poller = None

    async def _send_message(self, params: JSON) -> JSON:
        chat = self._chat(params)
        text = str(self._required(params, "text"))
        if len(text) > 4096:
            raise bad_request("message is too long")
        return self._new_message(
            chat,
            **{"from": self.bot_user},
            text=_strip_markup(text, params.get("parse_mode")),
            entities=params.get("entities"),
            reply_markup=self._inline_markup(params),
        )

    def _editable(self, params: JSON) -> JSON | None:
        if "inline_message_id" in params:
            return None
        chat = self._chat(params)
        message_id = self._required(params, "message_id")
        with self._lock:
            message = self._messages.get((int(chat["id"]), int(message_id)))
        if message is None:
            raise bad_request("message to edit not found")
        own = message.get("from", {}).get("id") == self.bot_id
        if not own and chat.get("type") != "channel":
            raise bad_request("message can't be edited")
        return message

    def _edited(self, message: JSON, changes: JSON) -> JSON:
        with self._lock:
            if all(message.get(key) == value for key, value in changes.items()):
                raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
            for key, value in changes.items():
                if value is None:
                    message.pop(key, None)
                else:
                    message[key] = value
            message["edit_date"] = int(self.clock())
            return dict(message)

    async def _edit_message_text(self, params: JSON) -> JSON | bool:
        text = str(self._required(params, "text"))
        message = self._editable(params)
        if message is None:
            return True
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        changes: JSON = {
            "text": _strip_markup(text, params.get("parse_mode")),
            "reply_markup": self._inline_markup(params),
        }
        return self._edited(message, changes)

    async def _edit_message_reply_markup(self, params: JSON) -> JSON | bool:
        message = self._editable(params)
        if message is None:
            return True
        return self._edited(message, {"reply_markup": self._inline_markup(params)})

    async def _answer_callback_query(self, params: JSON) -> bool:
        query_id = str(self._required(params, "callback_query_id"))
        with self._lock:
            if query_id not in self._callback_queries or query_id in self._answers:
                raise bad_request(
                    "query is too old and response timeout expired or query ID is invalid"
                )
            self._answers[query_id] = params
        return True

    @staticmethod
    def _commands_key(params: JSON) -> str:
        scope = params.get("scope")
        kind = scope.get("type", "default") if isinstance(scope, dict) else "default"
        return f"{kind}:{params.get('language_code') or ''}"

    async def _set_my_commands(self, params: JSON) -> bool:
        commands = self._required(params, "commands")
        if not isinstance(commands, list) or not all(
            isinstance(c, dict) and c.get("command") and c.get("description") for c in commands
        ):
            raise bad_request("can't parse commands JSON object")
        with self._lock:
            self._commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: JSON) -> list[JSON]:
        with self._lock:
            return list(self._commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSON) -> bool:
        with self._lock:
            self._commands.pop(self._commands_key(params), None)
        return True

    def _drop_pending(self, params: JSON) -> None:
        if params.get("drop_pending_updates"):
            with self._lock:
                self._queue.clear()

    async def _delete_webhook(self, params: JSON) -> bool:
        self._drop_pending(params)
        with self._lock:
            self._webhook = {"url": ""}
        self._webhook_wake.set()
        return True

    async def _set_webhook(self, params: JSON) -> bool:
        """Like Telegram's, but a plain-HTTP URL is accepted on a loopback host (a bot under
        test, or behind a proxy on this machine). Updates are then POSTed to it (see
        `_deliver_webhook`), with `secret_token` in `X-Telegram-Bot-Api-Secret-Token`."""
        url = str(params.get("url") or "")
        if url and not url.startswith("https://"):
            host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if not (url.startswith("http://") and host in LOOPBACK_HOSTS):
                raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        connections = params.get("max_connections") or 40
        if not isinstance(connections, int) or not 1 <= connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        self._drop_pending(params)
        with self._lock:
            self._webhook = {"url": url, "max_connections": connections}
            if secret is not None:
                self._webhook["secret_token"] = str(secret)
            if isinstance(params.get("allowed_updates"), list):
                self._webhook["allowed_updates"] = params["allowed_updates"]
                self._allowed_updates = (
                    frozenset(str(k) for k in params["allowed_updates"]) or DEFAULT_ALLOWED_UPDATES
                )
            for queued in self._queue:
                queued.sending, queued.attempts, queued.retry_at = False, 0, 0.0
        if self._poller is not None:
            self._wake_pollers_now()
        if url and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.create_task(self._deliver_webhook())
        self._webhook_wake.set()
        return True

    @property
    def webhook_deliveries(self) -> list[JSON]:
        """Every POST of an update to the webhook: `update_id`, `status` (0: no answer), `at`."""
        with self._lock:
            return list(self._deliveries)

    async def _deliver_webhook(self) -> None:
        """While a webhook is set: POST each queued update to it, up to `max_connections` at a
        time, not in order; a 2xx answer confirms the update, anything else (or no answer) has
        it tried again after a growing pause, as Telegram does."""
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            sending: set[asyncio.Task[None]] = set()
            while not self._closing:
                with self._lock:
                    hook = dict(self._webhook)
                    if not hook["url"]:
                        break
                    now = time.monotonic()
                    room = int(hook.get("max_connections", 40)) - len(sending)
                    due = [q for q in self._queue if not q.sending and q.retry_at <= now][
                        : max(0, room)
                    ]
                    for queued in due:
                        queued.sending = True
                        queued.delivered = True
                for queued in due:
                    task = asyncio.create_task(self._post_update(session, hook, queued))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                    task.add_done_callback(lambda _: self._webhook_wake.set())
                self._webhook_wake.clear()
                with self._lock:
                    waits = [q.retry_at for q in self._queue if not q.sending]
                pause = max(0.01, min(waits) - time.monotonic()) if waits else 1.0
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._webhook_wake.wait(), min(pause, 1.0))
            for task in list(sending):
                task.cancel()

    async def _post_update(self, session: Any, hook: JSON, queued: _Queued) -> None:
        headers = {"Content-Type": "application/json"}
        if hook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(hook["secret_token"])
        status = 0
        try:
            async with session.post(
                hook["url"], data=orjson.dumps(queued.update), headers=headers
            ) as response:
                status = response.status
                await response.read()
        except Exception as error:
            logger.info("webhook delivery of update %s failed: %s", queued.update_id, error)
        with self._lock:
            self._deliveries.append(
                {"update_id": queued.update_id, "status": status, "at": time.time()}
            )
            queued.sending = False
            if 200 <= status < 300:
                self._queue = [q for q in self._queue if q is not queued]
            else:
                queued.attempts += 1
                first, longest = WEBHOOK_RETRY
                queued.retry_at = time.monotonic() + min(
                    longest, first * 2 ** (queued.attempts - 1)
                )

    async def _get_webhook_info(self, params: JSON) -> JSON:
        with self._lock:
            return {
                **self._webhook,
                "has_custom_certificate": False,
                "pending_update_count": len(self._queue),
            }

    async def _send_poll(self, params: JSON) -> JSON:
        chat = self._chat(params)
        question = str(self._required(params, "question"))
        options = self._required(params, "options")
        if not isinstance(options, list) or not 2 <= len(options) <= 10:
            raise bad_request("poll must have at least 2 option")
        with self._lock:
            poll_id = str(5_000_000_000_000_000_000 + next(self._ids))
        poll: JSON = {
            "id": poll_id,
            "question": question,
            "options": [
                {
                    "persistent_id": f"{poll_id}:{index}",
                    "text": str(option.get("text") if isinstance(option, dict) else option),
                    "voter_count": 0,
                }
                for index, option in enumerate(options)
            ],
            "total_voter_count": 0,
            "is_closed": bool(params.get("is_closed", False)),
            "is_anonymous": bool(params.get("is_anonymous", True)),
            "type": str(params.get("type") or "regular"),
            "allows_multiple_answers": bool(params.get("allows_multiple_answers", False)),
            "allows_revoting": bool(params.get("allows_revoting", params.get("type") != "quiz")),
            "members_only": bool(params.get("members_only", False)),
        }
        if poll["type"] == "quiz" and "correct_option_id" in params:
            poll["correct_option_id"] = params["correct_option_id"]
        with self._lock:
            self._polls[poll_id] = poll
        return self._new_message(
            chat, **{"from": self.bot_user}, poll=poll, reply_markup=self._inline_markup(params)
        )

    def poll(self, poll_id: str) -> JSON:
        with self._lock:
            return self._polls[poll_id]

    async def _create_invoice_link(self, params: JSON) -> str:
        for key in ("title", "description", "payload", "currency", "prices"):
            self._required(params, key)
        prices = params["prices"]
        if not isinstance(prices, list) or not prices:
            raise bad_request("can't parse prices JSON object")
        if params["currency"] == "XTR" and len(prices) != 1:
            raise bad_request("exactly one price must be specified for payments in Telegram Stars")
        with self._lock:
            slug = f"LocalInvoice{next(self._ids):06d}"
            self._invoice_links.append({"link": f"https://t.me/${slug}", **params})
        return f"https://t.me/${slug}"

    async def _answer_pre_checkout_query(self, params: JSON) -> bool:
        query_id = str(self._required(params, "pre_checkout_query_id"))
        if "ok" not in params:
            raise bad_request("ok is required")
        if not params["ok"] and not params.get("error_message"):
            raise bad_request("error_message is required")
        with self._lock:
            if query_id not in self._pre_checkout_queries or query_id in self._answers:
                raise bad_request("QUERY_ID_INVALID")
            self._answers[query_id] = params
        return True

    async def _refund_star_payment(self, params: JSON) -> bool:
        user_id = self._required(params, "user_id")
        charge = str(self._required(params, "telegram_payment_charge_id"))
        with self._lock:
            known = self._charges.get(charge)
            if known is None or known["user_id"] != user_id:
                raise bad_request("CHARGE_NOT_FOUND")
            if charge in self._refunded:
                raise bad_request("CHARGE_ALREADY_REFUNDED")
            self._refunded.add(charge)
        return True

    async def _create_chat_invite_link(self, params: JSON) -> JSON:
        chat = self._chat(params)
        if chat.get("type") == "private":
            raise bad_request("can't invite members to a private chat")
        with self._lock:
            code = f"LOCAL{next(self._ids):08d}"
        link: JSON = {
            "invite_link": f"https://t.me/+{code}",
            "creator": self.bot_user,
            "creates_join_request": bool(params.get("creates_join_request", False)),
            "is_primary": False,
            "is_revoked": False,
        }
        for key in ("name", "expire_date", "member_limit"):
            if params.get(key) is not None:
                link[key] = params[key]
        with self._lock:
            self._invite_links.append({"chat_id": chat["id"], **link})
        return link

    async def _ban_chat_member(self, params: JSON) -> bool:
        chat = self._chat(params)
        user_id = int(self._required(params, "user_id"))
        with self._lock:
            self._banned.setdefault(int(chat["id"]), set()).add(user_id)
            self._members.get(int(chat["id"]), set()).discard(user_id)
        return True

    async def _revoke_chat_invite_link(self, params: JSON) -> JSON:
        chat = self._chat(params)
        wanted = str(self._required(params, "invite_link"))
        with self._lock:
            for link in self._invite_links:
                if link["chat_id"] == chat["id"] and link["invite_link"] == wanted:
                    link["is_revoked"] = True
                    return {k: v for k, v in link.items() if k not in {"chat_id", "_joined"}}
        raise bad_request("INVITE_HASH_EXPIRED")

    async def _unban_chat_member(self, params: JSON) -> bool:
        chat = self._chat(params)
        user_id = int(self._required(params, "user_id"))
        with self._lock:
            self._banned.get(int(chat["id"]), set()).discard(user_id)
        return True


def main(argv: list[str] | None = None) -> None:
    """`python -m dianabot.adapters.telegram.local_api --token T --port 8081`: serve until
    interrupted (a bot then uses `DIANABOT_TELEGRAM_API_SERVER=http://127.0.0.1:8081`)."""
    import argparse

    parser = argparse.ArgumentParser(description="A local Telegram Bot API server for tests.")
    parser.add_argument("--token", default="123456789:TEST-local-bot-api-token")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--lenient-chats", action="store_true", help="accept any chat id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    api = LocalBotAPI(
        args.token, host=args.host, port=args.port, strict_chats=not args.lenient_chats
    )

    async def serve() -> None:
        async with api:
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        logger.info("local Bot API stopped")


if __name__ == "__main__":
    main()
