"""A signed JSON POST to a receiver of the site's choosing (a nurse-call system, a chat bridge, ...).

The body is signed with HMAC-SHA256 under a shared secret: `X-Careline-Signature: sha256=<hex>`.
`X-Careline-Timestamp` is informational; the same instant is inside the signed body as `sent_at`, which is
the value a receiver should trust when it rejects stale (replayed) requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import time
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from gateway.escalation.channels.messages import ack_url, alarm_label, place_text, sms_text
from gateway.escalation.config import WebhookConfig
from gateway.escalation.model import ChannelKind, Delivery, Notification

SIGNATURE_HEADER: Final = "X-Careline-Signature"
TIMESTAMP_HEADER: Final = "X-Careline-Timestamp"
_SIGNATURE_PREFIX: Final = "sha256="


class SignedWebhook:
    kind: ChannelKind = ChannelKind.WEBHOOK

    def __init__(self, settings: WebhookConfig, *, secret: str, public_url: str) -> None:
        """`secret` is read by the caller from the variable `settings.secret_env` names."""
        if not secret:
            raise ValueError("a webhook needs a non-empty secret")
        self._config = settings
        self._secret = secret
        self._public_url = public_url
        #: Built at the first send, then shared: building one (reading the CA bundle) takes 50-100 ms of
        #: CPU on the event loop, which every send paid when each client built its own, so a burst of
        #: notifications (after a restart) stalled the loop - and the alarm lane on it - for seconds.
        self._tls: ssl.SSLContext | None = None

    async def send(self, notification: Notification) -> Delivery:
        now = time.time()
        body = webhook_body(notification, self._public_url, sent_at=now)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_webhook_body(self._secret, body),
            TIMESTAMP_HEADER: str(int(now)),
            # Receivers can drop duplicates: the retry stage may send the same attempt again after a timeout.
            "X-Careline-Notification": f"{notification.notification_id}.{notification.attempt}",
        }
        try:
            async with asyncio.timeout(self._config.timeout_s):
                response = await self._post(body, headers)
        except (TimeoutError, httpx.TimeoutException):
            return Delivery(
                ok=False, retryable=True, detail=f"webhook timeout after {self._config.timeout_s:g} s"
            )
        except httpx.HTTPError as exc:
            return Delivery(
                ok=False, retryable=True, detail=f"webhook unreachable: {type(exc).__name__}: {exc}"
            )
        return _from_status(response.status_code, response.reason_phrase)

    async def _post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        # A client per send: sends are rare, and a client bound to no event loop cannot go stale.
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        async with httpx.AsyncClient(
            timeout=self._config.timeout_s, follow_redirects=False, verify=self._tls
        ) as client:
            return await client.post(self._config.url, content=body, headers=headers)


def webhook_body(notification: Notification, public_base_url: str, *, sent_at: float) -> bytes:
    alarm, recipient = notification.alarm, notification.recipient
    payload: dict[str, Any] = {
        "event": "careline.alarm",
        "sent_at": datetime.fromtimestamp(sent_at, UTC).isoformat(),
        "notification_id": notification.notification_id,
        "attempt": notification.attempt,
        "incident": {
            "id": alarm.incident_id,
            "rule": alarm.rule,
            "label": alarm_label(alarm.rule, recipient.language),
            "severity": alarm.severity,
            "site": alarm.site_name,
            "room": alarm.room,
            "place": place_text(alarm, recipient.language),
            "resident": alarm.resident_name,
            "opened_at": alarm.opened_at.isoformat(),
            "timezone": alarm.timezone,
            "trigger_count": alarm.trigger_count,
        },
        "recipient": {"id": recipient.responder_id, "name": recipient.name, "language": recipient.language},
        "text": sms_text(notification),
        "ack_url": ack_url(public_base_url, notification.ack_token),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign_webhook_body(secret: str | bytes, body: bytes) -> str:
    return _SIGNATURE_PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_webhook_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is `sha256=<hex HMAC-SHA256 of body>` under `secret` (constant-time compare)."""
    if not secret or not header:
        return False
    expected = sign_webhook_body(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8", "replace"))


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _from_status(status: int, reason: str) -> Delivery:
    detail = f"HTTP {status} {reason}".rstrip()
    extra = {"http_status": str(status)}
    if 200 <= status < 300:
        return Delivery(ok=True, detail=detail, extra=extra)
    # 408 and 429 say "not now"; other 4xx (and redirects) say the request itself is wrong.
    retryable = status >= 500 or status in (408, 429)
    return Delivery(ok=False, retryable=retryable, detail=detail, extra=extra)
