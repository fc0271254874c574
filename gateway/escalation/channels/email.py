"""E-mail through an SMTP relay, with a link that acknowledges the alarm.

`aiosmtplib` is not installed in this project, so the standard library's `smtplib` runs in a worker thread.
The timeout applies to every socket operation (so the thread ends) and to the whole send (so the caller
gets its answer on time).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from gateway.escalation.channels.messages import email_text
from gateway.escalation.config import SmtpConfig
from gateway.escalation.model import ChannelKind, Delivery, Notification


class SmtpEmail:
    kind: ChannelKind = ChannelKind.EMAIL

    def __init__(
        self,
        settings: SmtpConfig,
        *,
        public_url: str,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`settings` as validated from the configuration file; `password` read from its environment
        variable by the caller; `ssl_context` for TLS (the system's default verification when None)."""
        self._config = settings
        self._public_url = public_url
        self._password = password
        self._ssl_context = ssl_context

    async def send(self, notification: Notification) -> Delivery:
        address = notification.recipient.email
        if not address:
            return Delivery(ok=False, retryable=False, detail="recipient has no e-mail address")
        message = build_email(notification, self._config, self._public_url, address)
        message_id = str(message["Message-ID"])
        try:
            async with asyncio.timeout(self._config.timeout_s):
                await asyncio.to_thread(self._send_blocking, message)
        except TimeoutError:
            return Delivery(
                ok=False, retryable=True, detail=f"SMTP timeout after {self._config.timeout_s:g} s"
            )
        except smtplib.SMTPRecipientsRefused as exc:
            return _refused(exc)
        except smtplib.SMTPResponseException as exc:
            return _from_code(exc.smtp_code, _text(exc.smtp_error))
        except smtplib.SMTPNotSupportedError as exc:
            # e.g. STARTTLS or AUTH configured but not offered: a configuration problem, retrying won't help.
            return Delivery(ok=False, retryable=False, detail=f"SMTP server does not support: {exc}")
        except OSError as exc:
            # Connection refused/reset, TLS failure, server hung up (SMTPServerDisconnected): may pass later.
            return Delivery(ok=False, retryable=True, detail=f"SMTP failure: {type(exc).__name__}: {exc}")
        except Exception as exc:
            return Delivery(ok=False, retryable=True, detail=f"SMTP send failed: {type(exc).__name__}: {exc}")
        return Delivery(ok=True, provider_id=message_id, detail="accepted by SMTP server")

    def _send_blocking(self, message: EmailMessage) -> None:
        config = self._config
        context = self._ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if config.ssl:
            smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        with smtp:
            if config.starttls and not config.ssl:
                smtp.starttls(context=context)
            if config.username:
                smtp.login(config.username, self._password or "")
            smtp.send_message(message)


def build_email(
    notification: Notification, config: SmtpConfig, public_url: str, to_address: str
) -> EmailMessage:
    text = email_text(notification, public_url)
    message = EmailMessage()
    message["Subject"] = text.subject
    message["From"] = config.from_address
    message["To"] = to_address
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(idstring=f"careline-{notification.notification_id}")
    # Lets mail rules and a future reply parser find the incident without reading the body.
    message["X-Careline-Incident"] = str(notification.incident_id)
    message.set_content(text.body)
    return message


def _refused(exc: smtplib.SMTPRecipientsRefused) -> Delivery:
    # One recipient per message, so one (code, text) pair.
    code, reply = next(iter(exc.recipients.values()), (0, b""))
    return _from_code(code, _text(reply))


def _from_code(code: int, reply: str) -> Delivery:
    """4xx is a temporary refusal (greylisting, full mailbox); 5xx is permanent (no such user, auth)."""
    retryable = not 500 <= code < 600
    return Delivery(
        ok=False, retryable=retryable, detail=f"SMTP {code}: {reply}", extra={"smtp_code": str(code)}
    )


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
