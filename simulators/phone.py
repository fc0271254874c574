"""The simulated phones of responders and residents: the SMS and calls the local Twilio stand-in
accepted, per number.

A visitor of the demo sees on `/phone` what each phone would show or say, replies to an SMS, presses a
key during a call or lets it ring out, and the stand-in then plays Twilio's part: it POSTs the
inbound-SMS or gather webhook to the gateway, and the call's status callbacks (`in-progress` when
answered, `completed` when the gateway's TwiML hangs up, `no-answer` when nobody picks up) to the
`StatusCallback` the call was created with, with the parameters Twilio sends and signed with
`X-Twilio-Signature` by the real `twilio` library, so the answer takes the gateway's real webhook path.
It does not report `initiated` or `ringing`.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from gateway.catalogue import CATALOGUE, Language

STATIC = Path(__file__).resolve().parent / "phone"
#: The page's texts are the catalogue's `phone.*` entries.
TEXT_PREFIX = "phone."
#: Entries kept per stand-in: a demo left running for days must not grow without bound.
MAX_ENTRIES = 500
_FILES = {"phone.js": "text/javascript", "phone.css": "text/css"}

EntryKind = Literal["sms", "call"]
API_VERSION = "2010-04-01"
#: A call's states here: ringing until answered or let ring out.
CALL_ENDED = frozenset({"completed", "no-answer"})


@dataclass
class Exchange:
    """What the responder did (a reply, a key) and what the gateway answered."""

    action: str
    answer: str
    http_status: int | None
    at: str
    #: Calls: the gateway's answer ended the call.
    hung_up: bool = False


@dataclass
class PhoneEntry:
    id: int
    kind: EntryKind
    to: str
    sender: str
    at: str
    #: The SMS text, or what the call says (from the TwiML the gateway sent).
    text: str
    #: Calls: where Twilio posts the key pressed (the gateway's gather webhook).
    gather_url: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    #: The SID the stand-in answered the create request with, and the account it was made on.
    sid: str = ""
    account_sid: str = ""
    #: Calls: the `StatusCallback` and its `StatusCallbackEvent`s, as created.
    status_callback: str | None = None
    status_events: tuple[str, ...] = ()
    #: Calls: ringing, in-progress, completed, no-answer.
    call_status: str = "ringing"
    answered_at: float | None = None


def spoken_text(twiml: str) -> str:
    """The words a call speaks: each distinct `<Say>` once, in order (the script is read twice)."""
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError:
        return ""
    said: list[str] = []
    for say in root.iter("Say"):
        words = (say.text or "").strip()
        if words and words not in said:
            said.append(words)
    return "\n".join(said)


def message_text(twiml: str) -> str:
    """The SMS a messaging TwiML answer sends back (`<Message>`), one per line."""
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError:
        return ""
    return "\n".join((m.text or "").strip() for m in root.iter("Message") if (m.text or "").strip())


def _hangs_up(twiml: str) -> bool:
    """The TwiML ends the call: no <Gather> waits for another key."""
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError:
        return True
    return root.find("Gather") is None


def _gather_url(twiml: str) -> str | None:
    try:
        gather = ElementTree.fromstring(twiml).find("Gather")
    except ElementTree.ParseError:
        return None
    return None if gather is None else gather.get("action")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResponderPhones:
    """What arrived on each number, and the way back to the gateway's webhooks."""

    def __init__(self, names: Mapping[str, str], gateway_url: str, auth_token: str) -> None:
        #: Phone number (E.164) → the responder's name, as the directory gives it.
        self.names = dict(names)
        self.gateway_url = gateway_url.rstrip("/")
        self._validator = RequestValidator(auth_token)
        self._lock = threading.Lock()
        self._entries: list[PhoneEntry] = []
        self._ids = itertools.count(1)

    def received(
        self, resource: str, pairs: Sequence[tuple[str, str]], sid: str = "", account_sid: str = ""
    ) -> None:
        """A Message or Call the stand-in accepted, under the SID it answered with."""
        form = dict(pairs)
        to, sender = form.get("To", ""), form.get("From", "")
        if resource == "Messages":
            entry = PhoneEntry(next(self._ids), "sms", to, sender, _now(), form.get("Body", ""))
        else:
            twiml = form.get("Twiml", "")
            entry = PhoneEntry(
                next(self._ids), "call", to, sender, _now(), spoken_text(twiml), _gather_url(twiml)
            )
            entry.status_callback = form.get("StatusCallback") or None
            entry.status_events = tuple(value for key, value in pairs if key == "StatusCallbackEvent")
        entry.sid = sid or ("SM" if resource == "Messages" else "CA") + format(entry.id, "032x")
        entry.account_sid = account_sid
        with self._lock:
            self._entries.append(entry)
            del self._entries[:-MAX_ENTRIES]

    def inbox(self) -> dict[str, Any]:
        """Every number the stand-in knows or has reached, each with its entries, newest first."""
        with self._lock:
            entries = list(self._entries)
        numbers = list(self.names) + [e.to for e in entries if e.to not in self.names]
        # The phones that were reached last come first: that is where the visitor looks.
        last = {e.to: e.id for e in entries}
        numbers.sort(key=lambda number: -last.get(number, 0))
        phones = [
            {
                "number": number,
                "name": self.names.get(number),
                "entries": [_entry_json(e) for e in reversed(entries) if e.to == number],
            }
            for number in dict.fromkeys(numbers)
        ]
        return {"phones": phones, "count": len(entries)}

    def entry(self, entry_id: int, kind: EntryKind) -> PhoneEntry:
        with self._lock:
            found = next((e for e in self._entries if e.id == entry_id and e.kind == kind), None)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} {entry_id}")
        return found

    async def reply(self, entry: PhoneEntry, body: str) -> Exchange:
        """The responder answers the SMS: Twilio's inbound-SMS webhook, From = the responder."""
        message_sid = "SM" + secrets.token_hex(16)
        params = {
            "MessageSid": message_sid,
            "SmsSid": message_sid,
            "SmsMessageSid": message_sid,
            "AccountSid": entry.account_sid,
            "From": entry.to,
            "To": entry.sender,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        return await self._post(entry, f"{self.gateway_url}/api/twilio/sms-inbound", params, body)

    async def press(self, entry: PhoneEntry, digit: str) -> Exchange:
        """A key pressed during the call: the call is answered first (status `in-progress`), then the
        gather webhook (the TwiML's action); when the answer hangs up, the `completed` status."""
        if entry.gather_url is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "this call waits for no key")
        if entry.call_status in CALL_ENDED:
            raise HTTPException(status.HTTP_409_CONFLICT, "this call has ended")
        if entry.call_status == "ringing":
            await self._call_status(entry, "in-progress")
        params = self._call_params(entry, "in-progress")
        params.update(Digits=digit, FinishedOnKey="")
        exchange = await self._post(entry, entry.gather_url, params, digit)
        if exchange.http_status is not None and exchange.http_status < 400 and exchange.hung_up:
            await self._call_status(entry, "completed")
        return exchange

    async def let_ring(self, entry: PhoneEntry) -> Exchange:
        """Nobody picks up: Twilio reports `no-answer` after the ring timeout."""
        if entry.call_status != "ringing":
            raise HTTPException(status.HTTP_409_CONFLICT, "this call is not ringing")
        status_code = await self._call_status(entry, "no-answer")
        exchange = Exchange("no-answer", "", status_code, _now())
        with self._lock:
            entry.exchanges.append(exchange)
        return exchange

    def _call_params(self, entry: PhoneEntry, call_status: str) -> dict[str, str]:
        return {
            "CallSid": entry.sid,
            "AccountSid": entry.account_sid,
            "From": entry.sender,
            "To": entry.to,
            "CallStatus": call_status,
            "Direction": "outbound-api",
            "ApiVersion": API_VERSION,
        }

    async def _call_status(self, entry: PhoneEntry, call_status: str) -> int | None:
        """The call moves on; Twilio posts the status callback for the events the call asked for (the
        final states always, as the `completed` event; `in-progress` as `answered`)."""
        with self._lock:
            entry.call_status = call_status
            if call_status == "in-progress":
                entry.answered_at = time.monotonic()
        event = "answered" if call_status == "in-progress" else "completed"
        if entry.status_callback is None or (event == "answered" and event not in entry.status_events):
            return None
        params = self._call_params(entry, call_status)
        params.update(CallbackSource="call-progress-events", Timestamp=formatdate(usegmt=True))
        if call_status in CALL_ENDED:
            duration = 0 if entry.answered_at is None else round(time.monotonic() - entry.answered_at)
            params.update(CallDuration=str(duration), Duration=str(max(1, -(-duration // 60))))
        return await self._send(entry.status_callback, params)

    async def _send(self, url: str, params: dict[str, str]) -> int | None:
        signature = self._validator.compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                return (await client.post(url, data=params, headers=headers)).status_code
        except httpx.HTTPError:
            return None

    async def _post(self, entry: PhoneEntry, url: str, params: dict[str, str], action: str) -> Exchange:
        signature = self._validator.compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(url, data=params, headers=headers)
            ok = response.status_code < 400
            answer = (spoken_text(response.text) or message_text(response.text)) if ok else ""
            exchange = Exchange(action, answer, response.status_code, _now(), ok and _hangs_up(response.text))
        except httpx.HTTPError:
            exchange = Exchange(action, "", None, _now())
        with self._lock:
            entry.exchanges.append(exchange)
        return exchange


def _entry_json(entry: PhoneEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "from": entry.sender,
        "at": entry.at,
        "text": entry.text,
        "can_press": entry.gather_url is not None and entry.call_status not in CALL_ENDED,
        "can_let_ring": entry.kind == "call" and entry.call_status == "ringing",
        "status": entry.call_status if entry.kind == "call" else None,
        "exchanges": [vars(x) for x in entry.exchanges],
    }


class Reply(BaseModel):
    body: Annotated[str, Field(min_length=1, max_length=1600)]


class Press(BaseModel):
    digit: Annotated[str, Field(pattern=r"^[0-9*#]$")]


def phone_router(phones: ResponderPhones) -> APIRouter:
    router = APIRouter(tags=["simulated phones"])

    @router.get("/phone", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "phone.html", media_type="text/html", headers=_NO_STORE)

    @router.get("/phone/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in _FILES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
        return FileResponse(STATIC / name, media_type=_FILES[name], headers=_NO_STORE)

    @router.get("/phone/api/texts/{language}")
    async def texts(language: Language) -> dict[str, str]:
        words = CATALOGUE.dictionary(language)
        return {key: value for key, value in words.items() if key.startswith(TEXT_PREFIX)}

    @router.get("/phone/api/inbox")
    async def inbox() -> Response:
        import json

        body = json.dumps(phones.inbox(), ensure_ascii=False)
        return Response(body, media_type="application/json", headers=_NO_STORE)

    @router.post("/phone/api/sms/{entry_id}/reply")
    async def reply(entry_id: int, reply: Reply) -> dict[str, Any]:
        return vars(await phones.reply(phones.entry(entry_id, "sms"), reply.body))

    @router.post("/phone/api/calls/{entry_id}/press")
    async def press(entry_id: int, press: Press) -> dict[str, Any]:
        return vars(await phones.press(phones.entry(entry_id, "call"), press.digit))

    @router.post("/phone/api/calls/{entry_id}/no-answer")
    async def let_ring(entry_id: int) -> dict[str, Any]:
        return vars(await phones.let_ring(phones.entry(entry_id, "call")))

    return router


_NO_STORE = {"Cache-Control": "no-store"}
