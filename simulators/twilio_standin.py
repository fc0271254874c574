"""A LOCAL STAND-IN for Twilio's REST API, for tests and the demo. It is not Twilio.

Twilio's cloud is unreachable from this machine, so the real `twilio` client is pointed at this small
FastAPI app instead (`client.api.base_url = stand_in.base_url`). It implements only what Careline uses:

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and `.../Calls.json`, form-encoded as the client
  sends them, and `GET .../Messages.json?To=…` (the newest messages first, one page), behind HTTP Basic
  auth (account SID + auth token), answering 201 with JSON shaped like Twilio's (sid "SM…"/"CA…",
  status "queued", ...) or Twilio's error JSON (`code`, `message`, `status`);
- a record of every request, for assertions;
- fault injection: fail the next N requests with a status and Twilio error code, or hang them;
- `drive_callback`, which plays Twilio's part in the other direction: it POSTs a status or gather callback
  to OUR webhook URL, signed with `X-Twilio-Signature` exactly as Twilio signs it.

What it cannot tell us: how real carriers deliver, Twilio's rate limits, or its exact validation rules.

Given the gateway's URL, it also serves the simulated responders' phones (`simulators/phone.py`) at
`/phone`: the demo's visitor sees the SMS and calls arrive and answers them as a responder would.

`UvicornThread` runs any ASGI app on 127.0.0.1 in a background thread; the webhook tests use it too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from common.net import free_port
from simulators.phone import ResponderPhones, phone_router

API_VERSION = "2010-04-01"


class UvicornThread:
    """An ASGI app served by uvicorn on 127.0.0.1:free_port in a daemon thread, until `stop()`."""

    host = "127.0.0.1"

    def __init__(self, app: Any, *, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            # Fewest moving parts: no websockets or lifespan, no global logging config, plain asyncio.
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.base_url}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> UvicornThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received: which resource, and the form exactly as sent (repeats kept)."""

    resource: str  # "Messages" or "Calls"
    account_sid: str
    pairs: tuple[tuple[str, str], ...]
    authorized: bool

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.pairs if key == name), None)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


@dataclass
class _Fault:
    remaining: int
    status: int = 500
    code: int | None = None
    message: str = "Internal Server Error"
    hang_s: float = 0.0


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    #: Every message accepted, as its JSON resource, newest last (what `GET Messages.json` lists).
    messages: list[dict[str, Any]] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


class TwilioStandIn:
    """The stand-in server. Use as a context manager; `base_url` goes into `TwilioConfig.api_base_url`."""

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        port: int | None = None,
        gateway_url: str | None = None,
        phone_book: Mapping[str, str] | None = None,
        report_status: str | None = None,
    ) -> None:
        #: Like Twilio: a moment after accepting a message, POST this status ("sent") to its
        #: StatusCallback, signed. None: callbacks only when a test drives them (`drive_callback`).
        self._report_status = report_status
        self._reporting: set[asyncio.Task[None]] = set()
        #: Status callbacks posted (URL, status code or the error's name), for assertions.
        self.reported: list[tuple[str, str]] = []
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self._state = _State()
        #: The responders' phones (with `gateway_url`): phone number → name in `phone_book`.
        self.phones = ResponderPhones(phone_book or {}, gateway_url, self.auth_token) if gateway_url else None
        self._server = UvicornThread(self._app(), port=port)

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._state.stopping.set()  # releases hanging requests so uvicorn can shut down
        self._server.stop()

    def __enter__(self) -> TwilioStandIn:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what the tests look at and control ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def fail_next(
        self, count: int = 1, *, status: int = 500, code: int | None = None, message: str | None = None
    ) -> None:
        """Answer the next `count` requests with an error, e.g. `status=400, code=21211`."""
        text = message or ("Internal Server Error" if status >= 500 else "Bad Request")
        with self._state.lock:
            self._state.faults.append(_Fault(remaining=count, status=status, code=code, message=text))

    def hang_next(self, count: int = 1, *, seconds: float = 30.0) -> None:
        """Hold the next `count` requests for `seconds` (or until `stop()`) before answering normally."""
        with self._state.lock:
            self._state.faults.append(_Fault(remaining=count, hang_s=seconds))

    def drive_callback(
        self, url: str, params: Mapping[str, str], *, signature: str | None = None
    ) -> httpx.Response:
        """POST a callback to our webhook `url` as Twilio would, signed with this account's auth token.

        Pass `signature` to send a different (e.g. forged) one.
        """
        if signature is None:
            signature = RequestValidator(self.auth_token).compute_signature(url, dict(params))
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
        return httpx.post(url, data=dict(params), headers=headers, timeout=10.0)

    # -- the app -----------------------------------------------------------------------------------

    def _app(self) -> FastAPI:
        app = FastAPI()
        base = f"/{API_VERSION}/Accounts/{{sid}}"

        @app.post(base + "/Messages.json")
        async def create_message(sid: str, request: Request) -> JSONResponse:
            return await self._handle("Messages", sid, request)

        @app.get(base + "/Messages.json")
        async def list_messages(sid: str, request: Request) -> JSONResponse:
            return self._list_messages(sid, request)

        @app.post(base + "/Calls.json")
        async def create_call(sid: str, request: Request) -> JSONResponse:
            return await self._handle("Calls", sid, request)

        if self.phones is not None:
            app.include_router(phone_router(self.phones))
        return app

    async def _handle(self, resource: str, sid: str, request: Request) -> JSONResponse:
        pairs = tuple(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        record = RecordedRequest(
            resource, sid, pairs, self._authorized(sid, request.headers.get("authorization"))
        )
        with self._state.lock:
            self._state.requests.append(record)
            fault = self._take_fault()
        if not record.authorized:
            return _error(401, 20003, "Authenticate")
        if fault is not None and fault.hang_s > 0:
            await self._hang(fault.hang_s)
        elif fault is not None:
            return _error(fault.status, fault.code, fault.message)
        missing = _missing_parameter(resource, record)
        if missing is not None:
            return _error(400, *missing)
        body = _message_json(sid, record) if resource == "Messages" else _call_json(sid, record)
        if resource == "Messages":
            with self._state.lock:
                self._state.messages.append(body)
        if self.phones is not None:
            self.phones.received(resource, record.pairs, body["sid"], sid)
        callback = record.get("StatusCallback")
        if resource == "Messages" and self._report_status and callback:
            task = asyncio.create_task(self._report(callback, body["sid"], record))
            self._reporting.add(task)
            task.add_done_callback(self._reporting.discard)
        return JSONResponse(body, status_code=201)

    async def _report(self, url: str, message_sid: str, record: RecordedRequest) -> None:
        await asyncio.sleep(0.05)
        params = {
            "MessageSid": message_sid,
            "SmsSid": message_sid,
            "AccountSid": self.account_sid,
            "MessageStatus": self._report_status or "sent",
            "To": record.get("To") or "",
            "From": record.get("From") or "",
        }
        try:
            response = await asyncio.to_thread(self.drive_callback, url, params)
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            # Twilio does not retry a status callback that fails either.
            outcome = type(exc).__name__
        with self._state.lock:
            self.reported.append((url, outcome))

    def _list_messages(self, sid: str, request: Request) -> JSONResponse:
        """Twilio's message list: newest first, filtered by `To`, one page (`PageSize`, at most 1000)."""
        if not self._authorized(sid, request.headers.get("authorization")):
            return _error(401, 20003, "Authenticate")
        to = request.query_params.get("To")
        size = min(int(request.query_params.get("PageSize", "50")), 1000)
        with self._state.lock:
            found = [m for m in reversed(self._state.messages) if to is None or m["to"] == to][:size]
        uri = f"/{API_VERSION}/Accounts/{sid}/Messages.json?PageSize={size}&Page=0"
        page = {
            "messages": found,
            "end": max(len(found) - 1, 0),
            "first_page_uri": uri,
            "next_page_uri": None,
            "page": 0,
            "page_size": size,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }
        return JSONResponse(page)

    def _authorized(self, sid: str, header: str | None) -> bool:
        if not header or not header.startswith("Basic ") or sid != self.account_sid:
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    def _take_fault(self) -> _Fault | None:
        faults = self._state.faults
        if not faults:
            return None
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.pop(0)
        return fault

    async def _hang(self, seconds: float) -> None:
        # A worker thread waits on the threading.Event that `stop()` sets from the test's thread.
        await asyncio.to_thread(self._state.stopping.wait, seconds)


def _error(status: int, code: int | None, message: str) -> JSONResponse:
    more_info = f"https://www.twilio.com/docs/errors/{code}" if code else None
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return JSONResponse(body, status_code=status)


def _missing_parameter(resource: str, record: RecordedRequest) -> tuple[int, str] | None:
    # The error codes Twilio gives for these omissions.
    if not record.get("To"):
        return 21604, "A 'To' phone number is required."
    if not record.get("From"):
        return 21603, "A 'From' phone number is required."
    if resource == "Messages" and not record.get("Body"):
        return 21602, "Message body is required."
    if resource == "Calls" and not (record.get("Twiml") or record.get("Url")):
        return 21205, "Url or Twiml parameter is required."
    return None


def _common_json(sid: str, record: RecordedRequest, resource_sid: str, resource: str) -> dict[str, Any]:
    now = formatdate(usegmt=True)
    return {
        "account_sid": sid,
        "api_version": API_VERSION,
        "date_created": now,
        "date_updated": now,
        "direction": "outbound-api",
        "from": record.get("From"),
        "to": record.get("To"),
        "sid": resource_sid,
        "status": "queued",
        "price": None,
        "price_unit": "USD",
        "uri": f"/{API_VERSION}/Accounts/{sid}/{resource}/{resource_sid}.json",
    }


def _message_json(sid: str, record: RecordedRequest) -> dict[str, Any]:
    message_sid = "SM" + secrets.token_hex(16)
    body = _common_json(sid, record, message_sid, "Messages")
    text = record.get("Body") or ""
    # UCS-2 parts hold 67 characters once concatenated; good enough for a plausible segment count.
    segments = 1 if len(text) <= 70 else -(-len(text) // 67)
    body.update(
        body=text,
        date_sent=None,
        error_code=None,
        error_message=None,
        messaging_service_sid=None,
        num_media="0",
        num_segments=str(segments),
        subresource_uris={"media": f"/{API_VERSION}/Accounts/{sid}/Messages/{message_sid}/Media.json"},
    )
    return body


def _call_json(sid: str, record: RecordedRequest) -> dict[str, Any]:
    call_sid = "CA" + secrets.token_hex(16)
    body = _common_json(sid, record, call_sid, "Calls")
    body.update(
        answered_by=None,
        caller_name=None,
        duration=None,
        end_time=None,
        forwarded_from=None,
        parent_call_sid=None,
        phone_number_sid=None,
        start_time=None,
        to_formatted=record.get("To"),
        from_formatted=record.get("From"),
        subresource_uris={
            "notifications": f"/{API_VERSION}/Accounts/{sid}/Calls/{call_sid}/Notifications.json"
        },
    )
    return body
