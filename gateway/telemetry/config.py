"""Typed settings of the telemetry store (the ``telemetry:`` section of the gateway configuration).

Secrets never live in the file: ``token_env`` and ``password_env`` name the environment variables that
hold them; `TelemetryConfig.token()` and `TelemetryConfig.password()` read them and fail clearly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from common.settings import StrictModel, secret_from_env

Backend = Literal["none", "influxdb2", "influxdb1"]
#: Organisation, bucket, database and retention-policy names: printable, no control characters.
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

_V2_ONLY = ("org", "bucket", "token_env")
_V1_ONLY = ("username", "password_env")


class TelemetryConfig(StrictModel):
    #: ``none`` keeps telemetry in memory only; ``influxdb2`` writes with influxdb-client (InfluxDB 2.x/3.x
    #: or anything speaking ``/api/v2/write``); ``influxdb1`` posts the same line protocol to ``/write``.
    backend: Backend = "none"
    #: Base URL of the server, e.g. ``http://influxdb:8086``.
    url: str | None = None
    # InfluxDB 2.x
    org: Name | None = None
    bucket: Name | None = None
    token_env: EnvName | None = None
    # InfluxDB 1.x; with influxdb2, `database`/`retention_policy` name the DBRP mapping InfluxQL reads use
    # (by default the bucket's name).
    database: Name | None = None
    retention_policy: Name | None = None
    username: Name | None = None
    password_env: EnvName | None = None
    #: Points per write request; a full batch is written at once, a partial one after `flush_interval_ms`.
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval_ms: int = Field(1000, ge=10, le=600_000)
    #: Back-off after a failed write doubles from `retry_min_s` up to `retry_max_s`.
    retry_min_s: float = Field(0.5, gt=0, le=600)
    retry_max_s: float = Field(30.0, gt=0, le=3600)
    #: Points held in memory; beyond this the buffer moves to the on-disk spool instead of growing.
    buffer_max_points: int = Field(50_000, ge=1, le=10_000_000)
    #: Where batches wait (SQLite) while the server is unreachable; they are replayed oldest first.
    spool_dir: Path = Path("var/telemetry-spool")
    #: Beyond this many spooled points the OLDEST are dropped (and counted): recent data matters most.
    spool_max_points: int = Field(1_000_000, ge=1, le=1_000_000_000)
    request_timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("telemetry url must look like http://host:8086 or https://host:8086")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("telemetry url takes no query, fragment or credentials (use token_env)")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _backend_settings(self) -> TelemetryConfig:
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s must not exceed retry_max_s")
        if self.buffer_max_points < self.batch_size:
            raise ValueError("buffer_max_points must be at least batch_size")
        if self.backend == "none":
            return self
        if self.url is None:
            raise ValueError(f"telemetry backend {self.backend} needs a url")
        if self.backend == "influxdb2":
            self._require("org", "bucket")
            self._refuse(_V1_ONLY, "influxdb1")
        else:
            self._require("database")
            self._refuse(_V2_ONLY, "influxdb2")
            if (self.username is None) != (self.password_env is None):
                raise ValueError("give both username and password_env, or neither")
        return self

    def _require(self, *names: str) -> None:
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise ValueError(f"telemetry backend {self.backend} needs {' and '.join(missing)}")

    def _refuse(self, names: tuple[str, ...], owner: str) -> None:
        # A setting of the other backend is almost certainly a copy-paste mistake; say so at start-up.
        given = [name for name in names if getattr(self, name) is not None]
        if given:
            what = "is an" if len(given) == 1 else "are"
            plural = "" if len(given) == 1 else "s"
            raise ValueError(
                f"{', '.join(given)} {what} {owner} setting{plural}, but backend is {self.backend}"
            )

    @property
    def enabled(self) -> bool:
        return self.backend != "none"

    @property
    def read_database(self) -> str | None:
        """The database InfluxQL reads name: 1.x's database, or 2.x's DBRP mapping (the bucket by default)."""
        return self.database or self.bucket

    def token(self, environ: Mapping[str, str] | None = None) -> str | None:
        return secret_from_env(self.token_env, environ)

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        return secret_from_env(self.password_env, environ)
