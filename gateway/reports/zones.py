"""Site-local clock readings of many UTC instants at once (numpy), for days, months and shifts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

HOUR = 3600
DAY = 86400
Seconds = npt.NDArray[np.float64]


def _hourly_offsets(zone: ZoneInfo, first_hour: int, hours: int) -> npt.NDArray[np.int64]:
    # Offsets change on whole UTC hours in every zone in use today, so one reading per hour is exact.
    offsets = np.empty(hours, dtype=np.int64)
    for i in range(hours):
        moment = datetime.fromtimestamp((first_hour + i) * HOUR, UTC)
        offset = moment.astimezone(zone).utcoffset()
        offsets[i] = int(offset.total_seconds()) if offset is not None else 0
    return offsets


def local_seconds(
    epochs: Seconds, sites: npt.NDArray[np.str_], zones: Mapping[str, ZoneInfo], default: ZoneInfo
) -> Seconds:
    """Each instant (UTC seconds) as seconds of its site's local clock since 1970-01-01 00:00 local."""
    local = epochs.copy()
    if epochs.size == 0:
        return local
    first_hour = int(np.floor(epochs.min() / HOUR))
    hours = int(np.floor(epochs.max() / HOUR)) - first_hour + 1
    by_zone: dict[str, npt.NDArray[np.int64]] = {}
    for site in np.unique(sites):
        mask = sites == site
        zone = zones.get(str(site), default)
        if zone.key not in by_zone:
            by_zone[zone.key] = _hourly_offsets(zone, first_hour, hours)
        offsets = by_zone[zone.key]
        index = (np.floor(epochs[mask] / HOUR) - first_hour).astype(np.int64)
        local[mask] = epochs[mask] + offsets[index]
    return local


def day_labels(local: Seconds) -> npt.NDArray[np.str_]:
    """YYYY-MM-DD of each local clock reading."""
    return np.datetime_as_string(np.floor(local / DAY).astype("datetime64[D]"), unit="D")


def month_labels(local: Seconds) -> npt.NDArray[np.str_]:
    """YYYY-MM of each local clock reading."""
    days = np.floor(local / DAY).astype("datetime64[D]")
    return np.datetime_as_string(days.astype("datetime64[M]"), unit="M")


def minute_of_day(local: Seconds) -> npt.NDArray[np.int64]:
    return (np.floor(np.mod(local, DAY) / 60)).astype(np.int64)
