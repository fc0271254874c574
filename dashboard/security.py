"""What every response carries and every state-changing request must prove.

Responses: a Content-Security-Policy (the pages load only their own scripts and styles), no framing, no
referrer (acknowledge links carry tokens), no content sniffing. Requests authenticated by the session
cookie that change state must come from an allowed origin (Origin, else Referer) and carry the session's
CSRF token: `SameSite` alone lets any page on the same site (another port, a sibling host) act for the
operator.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's interactive docs load Swagger UI from its CDN and start it with an inline script; they are
# off unless `http.api_docs` is set, and only their own paths get this looser policy.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_FIXED_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEBSOCKET_SCHEMES = {"ws": "http", "wss": "https"}


class SecurityHeaders:
    """ASGI middleware: the headers go on every HTTP response, static files and errors included."""

    def __init__(self, app: ASGIApp, docs_paths: Iterable[str] = ()) -> None:
        self._app = app
        self._docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        policy = DOCS_CSP if scope["path"] in self._docs_paths else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = policy
                for name, value in _FIXED_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self._app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: no request body larger than `max_bytes`, declared or streamed.

    Neither uvicorn nor Starlette bounds a body: a sign-in (open to anyone) or a multipart upload, which
    Starlette parses, spooling to disk, before any route can look at it, could fill memory or the disk.
    The largest real body is a directory import (5 MiB), so the default leaves room for that alone."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_bytes:
            await self._refuse(send)
            return
        await self._app(scope, *self._bounded(receive, send))

    def _bounded(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        received = 0
        refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes and not refused:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # the 413 is the answer; whatever the app says after it is dropped
                await send(message)

        return bounded_receive, guarded_send

    async def _refuse(self, send: Send) -> None:
        body = f'{{"detail": "request body larger than {self._max_bytes} bytes"}}'.encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def web_origin(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower-cased, default port dropped; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = _WEBSOCKET_SCHEMES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


class OriginPolicy:
    """Which pages may send the operator's cookie along with a change: the gateway's own, plus those
    configured in `http.trusted_origins` (e.g. the public HTTPS name of a reverse proxy)."""

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        self._trusted = frozenset(o for o in map(web_origin, trusted) if o)

    def refusal(self, conn: HTTPConnection) -> str | None:
        """Why this request's origin is not allowed, or None when it is (or names none at all)."""
        origin = conn.headers.get("origin")
        if origin is not None:
            if origin.strip() == "null":
                return "an opaque (null) origin may not change anything"
            return self._judge(origin, conn, "Origin")
        referer = conn.headers.get("referer")
        if referer is not None:
            return self._judge(referer, conn, "Referer")
        # Browsers name the origin of every cross-origin change; a client naming none is not a
        # browser tricked by another page, and it still needs the CSRF token.
        return None

    def _judge(self, claimed: str, conn: HTTPConnection, header: str) -> str | None:
        origin = web_origin(claimed)
        if origin is None:
            return f"the {header} header is not a web origin"
        if origin in self._trusted or origin == own_origin(conn):
            return None
        return f"origin {origin} is not allowed (add it to http.trusted_origins if it is yours)"


def own_origin(conn: HTTPConnection) -> str | None:
    """The origin the client addressed: the scheme it used and its Host header."""
    host = conn.headers.get("host")
    if not host:
        return None
    return web_origin(f"{conn.url.scheme}://{host}")


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: derived from the session secret, so it needs no storage and no other
    page can know it (a double-submit cookie could be planted by a sibling host)."""
    return hmac.new(session_token.encode(), b"careline-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_token), presented)
