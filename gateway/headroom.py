"""Free-space headroom on the disk that holds the incident store.

A full disk must never cost an alarm. When the filesystem of the incident store (or of the telemetry
spool) has less free space than the configured minimum, telemetry-side writes are refused first: the
telemetry lane's dead letters and the InfluxDB writer's spool. Incidents, their audit rows, the alarm
lane's dead letters and operators' sessions keep the space that is left. Refusals are counted.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the telemetry writer imports this module, and the configuration imports the writer's
    from gateway.config import CarelineConfig

log = logging.getLogger(__name__)
_MB = 1024 * 1024


class Headroom:
    """The free space of the filesystem holding `path`, against a minimum."""

    def __init__(
        self, path: Path, min_free_bytes: int, refusing: str = "telemetry writes are refused"
    ) -> None:
        self.path = path
        self.min_free_bytes = min_free_bytes
        #: What gives way while the disk is short, for the log.
        self._refusing = refusing
        self._was_short = False

    def free_bytes(self) -> int | None:
        """Free bytes for this (unprivileged) process; None when the filesystem cannot be asked."""
        try:
            return shutil.disk_usage(_nearest_existing(self.path)).free
        except OSError:
            return None

    @property
    def low(self) -> bool:
        # Unknown is not low: refusing telemetry because statvfs failed would help nobody.
        free = self.free_bytes()
        return free is not None and free < self.min_free_bytes

    def short(self) -> bool:
        """Whether to refuse a telemetry-side write now; logs once when a shortage starts and ends."""
        short = self.low
        if short != self._was_short:
            self._was_short = short
            free = round((self.free_bytes() or 0) / _MB)
            if short:
                log.error(
                    "%d MB free at %s, below %d MB: %s",
                    free,
                    self.path,
                    self.min_free_bytes // _MB,
                    self._refusing,
                )
            else:
                log.warning("%d MB free at %s again: %s no longer", free, self.path, self._refusing)
        return short

    def free_bytes_gauge(self) -> float:
        """For a Prometheus gauge: free bytes, 0 when unknown."""
        return float(self.free_bytes() or 0)

    def report(self) -> dict[str, Any]:
        free = self.free_bytes()
        return {
            "path": str(self.path),
            "free_mb": None if free is None else round(free / _MB, 1),
            "min_free_mb": round(self.min_free_bytes / _MB, 1),
            "low": free is not None and free < self.min_free_bytes,
        }


def _nearest_existing(path: Path) -> Path:
    """The spool or database directory may not exist yet; its filesystem is its nearest ancestor's."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def watched_disks(config: CarelineConfig) -> dict[str, Headroom]:
    """``database``: the SQLite store's directory (a database server minds its own disk);
    ``telemetry_spool``: the spool directory, when telemetry is stored."""
    # Here, not at the top: the telemetry process uses `Headroom` and needs no SQLAlchemy.
    from gateway.incidents.db import sqlite_directory

    minimum = config.storage.min_free_bytes
    disks: dict[str, Headroom] = {}
    database = sqlite_directory(config.storage.url)
    if database is not None:
        disks["database"] = Headroom(database, minimum, "telemetry dead letters are not kept")
    if config.telemetry.enabled:
        disks["telemetry_spool"] = Headroom(config.telemetry.spool_dir, minimum, "telemetry is not spooled")
    return disks
