"""Where line protocol goes: InfluxDB 2.x through influxdb-client, or InfluxDB 1.x's ``/write`` over httpx.

Both are blocking and run on the writer's worker thread, never on the event loop. Both report failures
the same way, so the writer's retry logic does not care which server it talks to:

* `TransientWriteError` — try again later, the batch is fine: unreachable, timeout, 5xx, 408, 429, and
  also 401/403/404 (bad token, missing database or bucket). Those last are the operator's to fix, not the
  data's fault; dropping every batch until someone notices would lose the whole outage's telemetry.
* `RejectedBatchError` — any other 4xx: the batch itself is bad (unparsable point, field type
  conflict, too large). Retrying cannot help; the writer counts it and drops it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import httpx
import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gateway.telemetry.config import TelemetryConfig

#: Server answers worth retrying besides 5xx, and those we treat as configuration trouble (see above).
_RETRY_STATUSES = frozenset({401, 403, 404, 408, 429})
#: InfluxDB's "partial write: ... dropped=3": the rest of the batch was stored.
_DROPPED = re.compile(r"dropped=(\d+)")
_MESSAGE_MAX = 300


class TransientWriteError(Exception):
    """The server could not take the batch now; keep it and retry."""


class RejectedBatchError(Exception):
    """The server refused (part of) the batch for good."""

    def __init__(self, message: str, dropped: int | None) -> None:
        super().__init__(message)
        #: Points the server refused, when it said; None means the whole batch.
        self.dropped = dropped


class LineProtocolBackend(Protocol):
    name: str

    def write(self, lines: Sequence[str]) -> None:
        """Store the points or raise `TransientWriteError` / `RejectedBatchError`."""

    def close(self) -> None: ...


def raise_for_status(status: int, body: str) -> None:
    """Turn a write response into nothing (stored) or one of the two errors."""
    if 200 <= status < 300:
        return
    message = f"HTTP {status}: {body.strip()[:_MESSAGE_MAX]}"
    if status >= 500 or status in _RETRY_STATUSES or status < 400:
        raise TransientWriteError(message)
    match = _DROPPED.search(body)
    raise RejectedBatchError(message, int(match.group(1)) if match else None)


class InfluxV1Backend:
    """POST line protocol to InfluxDB 1.x ``/write?db=&rp=&precision=ns``."""

    name = "influxdb1"

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._params: dict[str, str] = {"db": database, "precision": "ns"}
        if retention_policy:
            self._params["rp"] = retention_policy
        # Basic auth rather than the equivalent u=/p= parameters: httpx logs request URLs, headers not.
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._client = httpx.Client(base_url=url, auth=auth, timeout=timeout_s, transport=transport)

    def write(self, lines: Sequence[str]) -> None:
        body = "\n".join(lines).encode("utf-8")
        try:
            response = self._client.post(
                "/write",
                params=self._params,
                content=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except httpx.TransportError as exc:
            raise TransientWriteError(f"{type(exc).__name__}: {exc}") from exc
        raise_for_status(response.status_code, response.text)

    def close(self) -> None:
        self._client.close()


class InfluxV2Backend:
    """influxdb-client's WriteApi in SYNCHRONOUS mode: one blocking request per batch, no hidden retries.

    The client's own batching mode retries and buffers in its own thread; we need to see each failure to
    spool the batch, so we call it synchronously (on the worker thread) and keep retries ours.
    """

    name = "influxdb2"

    def __init__(
        self, url: str, org: str, bucket: str, *, token: str | None, timeout_s: float = 10.0
    ) -> None:
        self._org = org
        self._bucket = bucket
        self._client = InfluxDBClient(url=url, token=token or "", org=org, timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self._closers: tuple[Callable[[], object], ...] = (self._api.close, self._client.close)

    def write(self, lines: Sequence[str]) -> None:
        try:
            # Line protocol strings are sent as they are; their precision is the default, nanoseconds.
            self._api.write(bucket=self._bucket, org=self._org, record=list(lines))
        except ApiException as exc:
            raise_for_status(int(exc.status or 0), _text(exc.body))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientWriteError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        # influxdb-client's close() methods carry no annotations; call them through typed references.
        for close in self._closers:
            close()


def _text(body: object) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return "" if body is None else str(body)


def make_backend(config: TelemetryConfig, environ: Mapping[str, str] | None = None) -> LineProtocolBackend:
    """The backend `config` asks for, with its secrets read from the environment now."""
    if config.url is None or config.backend == "none":
        raise ValueError("telemetry backend is none: there is nothing to write to")
    if config.backend == "influxdb2":
        # The config validator saw to these; the asserts tell the type checker.
        assert config.org is not None
        assert config.bucket is not None
        return InfluxV2Backend(
            config.url,
            config.org,
            config.bucket,
            token=config.token(environ),
            timeout_s=config.request_timeout_s,
        )
    assert config.database is not None
    return InfluxV1Backend(
        config.url,
        config.database,
        retention_policy=config.retention_policy,
        username=config.username,
        password=config.password(environ),
        timeout_s=config.request_timeout_s,
    )
