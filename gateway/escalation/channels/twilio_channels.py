"""SMS and voice calls through Twilio's REST API, with the official `twilio` client.

The client's `*_async` methods go through aiohttp's `BasicAuth`, which aiohttp 3.14 deprecates with a
`DeprecationWarning` on every request (an error under our `filterwarnings = error`). So the synchronous
client runs in a worker thread; the per-send timeout is enforced both on the sockets (so the thread ends)
and around the await (so the caller gets its answer on time even if the thread lingers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped]
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]
from twilio.twiml.voice_response import Gather, VoiceResponse  # type: ignore[import-untyped]

from gateway.escalation.channels.messages import (
    Language,
    gather_reply_text,
    goodbye_text,
    normalize_language,
    sms_text,
    voice_script,
)
from gateway.escalation.config import TwilioConfig
from gateway.escalation.model import ChannelKind, Delivery, Notification

log = logging.getLogger(__name__)

#: `language` attribute of `<Say>` per recipient language.
SAY_LANGUAGES: Final[Mapping[Language, str]] = {"en": "en-US", "zh-CN": "zh-CN"}

CALL_STATUS_EVENTS: Final = ("initiated", "ringing", "answered", "completed")

# How long <Gather> waits for a key after the script has been spoken, before speaking it again.
_GATHER_WAIT_S: Final = 6


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    """What the configuration file does not hold: the account, read from the environment once; the auth
    token is never logged. Everything else comes from the validated `TwilioConfig`."""

    account_sid: str
    auth_token: str = field(repr=False)


def sms_status_callback_url(public_base_url: str, notification_id: int) -> str:
    return f"{public_base_url.rstrip('/')}/api/twilio/sms-status?n={notification_id}"


def call_status_callback_url(public_base_url: str, notification_id: int) -> str:
    return f"{public_base_url.rstrip('/')}/api/twilio/call-status?n={notification_id}"


def gather_action_url(public_base_url: str, notification_id: int, ack_token: str) -> str:
    return f"{public_base_url.rstrip('/')}/api/twilio/gather?n={notification_id}&t={ack_token}"


class TwilioSms:
    """Sends the alarm as one SMS; Twilio reports delivery later to the status callback."""

    kind: ChannelKind = ChannelKind.SMS

    def __init__(self, settings: TwilioConfig, account: TwilioAccount, *, public_url: str) -> None:
        self._config = settings
        self._account = account
        self._public_url = public_url

    async def send(self, notification: Notification) -> Delivery:
        phone = notification.recipient.phone
        if not phone:
            return Delivery(ok=False, retryable=False, detail="recipient has no phone number")
        callback = sms_status_callback_url(self._public_url, notification.notification_id)
        return await self.text(phone, sms_text(notification), callback)

    async def sent_since(self, notification: Notification, since: datetime) -> str | None:
        """The sid of an SMS already accepted for this notification (same number, same text, created
        since `since`), asked of Twilio itself: an instance that died mid-send leaves no other trace.
        None when there is none, or Twilio cannot say now (the caller then sends it)."""
        phone = notification.recipient.phone
        if not phone:
            return None
        body = sms_text(notification)
        try:
            async with asyncio.timeout(self._config.timeout_s):
                return await asyncio.to_thread(
                    _sent_blocking, self._config, self._account, phone, body, since
                )
        except Exception as exc:
            # Not knowing is not a reason to stay silent: the notification is sent again.
            log.warning("could not ask Twilio whether an SMS went out (%s); sending it", type(exc).__name__)
            return None

    async def text(self, to: str, body: str, status_callback: str) -> Delivery:
        """One SMS of any text through this account (the daily reassurance uses it too)."""
        params: dict[str, Any] = {
            "to": to,
            "from_": self._config.from_number,
            "body": body,
            "status_callback": status_callback,
        }
        return await _create(self._config, self._account, "messages", params)


class TwilioVoice:
    """Calls the responder, speaks the alarm twice and waits for key 1 (posted to the gather webhook)."""

    kind: ChannelKind = ChannelKind.VOICE

    def __init__(self, settings: TwilioConfig, account: TwilioAccount, *, public_url: str) -> None:
        self._config = settings
        self._account = account
        self._public_url = public_url

    async def send(self, notification: Notification) -> Delivery:
        phone = notification.recipient.phone
        if not phone:
            return Delivery(ok=False, retryable=False, detail="recipient has no phone number")
        twiml = voice_twiml(notification, self._config, self._public_url)
        callback = call_status_callback_url(self._public_url, notification.notification_id)
        return await self.call(phone, twiml, callback)

    @property
    def settings(self) -> TwilioConfig:
        return self._config

    async def call(self, to: str, twiml: str, status_callback: str) -> Delivery:
        """One call speaking `twiml` through this account (the daily reassurance uses it too)."""
        params: dict[str, Any] = {
            "to": to,
            "from_": self._config.from_number,
            "twiml": twiml,
            "status_callback": status_callback,
            "status_callback_event": list(CALL_STATUS_EVENTS),
            "timeout": self._config.ring_timeout_s,
        }
        return await _create(self._config, self._account, "calls", params)

    def gather_reply(self, digits: str, language: str) -> str:
        """`gather_response` with this channel's voice settings."""
        lang = normalize_language(language)
        return gather_response(
            digits,
            lang,
            voice=self._config.voices.get(lang),
        )


def voice_twiml(notification: Notification, config: TwilioConfig, public_url: str) -> str:
    """The call's TwiML: the script inside <Gather numDigits=1> twice, then a goodbye."""
    language = notification.recipient.language
    say = say_attributes(language, config.voices.get(language))
    action = gather_action_url(public_url, notification.notification_id, notification.ack_token)
    script = voice_script(notification)
    response = VoiceResponse()
    # Two <Gather> verbs rather than <Say loop="2">: each reading is followed by a pause for the key press,
    # and a key pressed during either reading ends the call flow at the action URL.
    for _ in range(2):
        gather = Gather(num_digits=1, action=action, method="POST", timeout=_GATHER_WAIT_S)
        gather.say(script, **say)
        response.append(gather)
    response.say(goodbye_text(language), **say)
    response.hangup()
    return str(response)


def gather_response(digits: str, language: str, *, voice: str | None = None) -> str:
    """TwiML answering the gather webhook: "accepted" for key 1, otherwise "not accepted"; then hang up.

    `language` is taken as stored ("zh-CN", "en", ...); anything not Chinese is answered in English.
    This only renders the words; recording the acknowledgement is the webhook handler's job.
    """
    accepted = digits.strip() == "1"
    lang = normalize_language(language)
    response = VoiceResponse()
    response.say(gather_reply_text(accepted, lang), **say_attributes(lang, voice))
    response.hangup()
    return str(response)


def say_attributes(language: Language, voice: str | None) -> dict[str, str]:
    attributes = {"language": SAY_LANGUAGES[language]}
    if voice:
        attributes["voice"] = voice
    return attributes


async def _create(
    config: TwilioConfig, account: TwilioAccount, resource: str, params: dict[str, Any]
) -> Delivery:
    """Create one Message or Call; every failure becomes a `Delivery`, never an exception."""
    try:
        async with asyncio.timeout(config.timeout_s):
            sid, status = await asyncio.to_thread(_create_blocking, config, account, resource, params)
    except TimeoutError:
        return Delivery(ok=False, retryable=True, detail=f"Twilio timeout after {config.timeout_s:g} s")
    except TwilioRestException as exc:
        return _rest_error(exc)
    except OSError as exc:
        # requests' ConnectionError and ReadTimeout derive from OSError: the network, not the request.
        return Delivery(ok=False, retryable=True, detail=f"Twilio unreachable: {type(exc).__name__}: {exc}")
    except Exception as exc:
        # An unexpected reply (e.g. not JSON) must not stop the escalation; trying again may well help.
        return Delivery(
            ok=False, retryable=True, detail=f"Twilio request failed: {type(exc).__name__}: {exc}"
        )
    return Delivery(ok=True, provider_id=sid, detail=status, extra={"status": status})


def _create_blocking(
    config: TwilioConfig, account: TwilioAccount, resource: str, params: dict[str, Any]
) -> tuple[str, str]:
    # A client per send: requests' Session is not meant to be shared between threads, and closing it
    # here releases the socket even when the awaiting side has already given up.
    http = TwilioHttpClient(timeout=config.timeout_s)
    try:
        client = Client(account.account_sid, account.auth_token, http_client=http)
        if config.api_base_url:
            client.api.base_url = config.api_base_url.rstrip("/")
        collection = client.messages if resource == "messages" else client.calls
        instance = collection.create(**params)
        return str(instance.sid), str(instance.status)
    finally:
        http.session.close()


#: Twilio's clock and ours may differ by this much when matching a message to the attempt that sent it.
_CLOCK_SKEW = timedelta(minutes=2)
#: The newest messages to one number looked through (one page of Twilio's list): a carer on a night shift
#: of a busy centre may get hundreds, and the one in doubt may be among the oldest of them.
_LOOKUP_LIMIT = 1000


def _sent_blocking(
    config: TwilioConfig, account: TwilioAccount, to: str, body: str, since: datetime
) -> str | None:
    http = TwilioHttpClient(timeout=config.timeout_s)
    try:
        client = Client(account.account_sid, account.auth_token, http_client=http)
        if config.api_base_url:
            client.api.base_url = config.api_base_url.rstrip("/")
        for message in client.messages.list(to=to, limit=_LOOKUP_LIMIT, page_size=_LOOKUP_LIMIT):
            created = message.date_created
            if message.body == body and created is not None and created >= since - _CLOCK_SKEW:
                return str(message.sid)
        return None
    finally:
        http.session.close()


def _rest_error(exc: TwilioRestException) -> Delivery:
    """Twilio refused: a 4xx (bad number 21211, unverified caller, auth) will fail again; 429/5xx may not."""
    status = int(exc.status)
    retryable = status in (408, 429) or status >= 500
    extra = {"http_status": str(status)}
    if exc.code is not None:
        extra["twilio_code"] = str(exc.code)
    detail = f"Twilio HTTP {status}" + (f" code {exc.code}" if exc.code is not None else "") + f": {exc.msg}"
    return Delivery(ok=False, retryable=retryable, detail=detail, extra=extra)
