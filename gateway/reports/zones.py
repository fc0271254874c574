"""Site-local clock readings of many UTC instants at once (numpy), for days, months and shifts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Coded:
    """Strings as small integers (one sort of the strings, then integer work): `names[codes]` is the
    original array."""

    names: list[str]
    codes: npt.NDArray[np.intp]

    @classmethod
    def of(cls, values: npt.NDArray[np.str_]) -> Coded:
        names, codes = np.unique(values, return_inverse=True)
        return cls([str(n) for n in names.tolist()], codes.reshape(-1))


def local_seconds(epochs: Seconds, sites: Coded, zones: Mapping[str, ZoneInfo], default: ZoneInfo) -> Seconds:
    """Each instant (UTC seconds) as seconds of its site's local clock since 1970-01-01 00:00 local."""
    local = epochs.copy()
    if epochs.size == 0:
        return local
    first_hour = int(np.floor(epochs.min() / HOUR))
    hours = int(np.floor(epochs.max() / HOUR)) - first_hour + 1
    by_zone: dict[str, npt.NDArray[np.int64]] = {}
    for code, site in enumerate(sites.names):
        mask = sites.codes == code
        zone = zones.get(site, default)
        if zone.key not in by_zone:
            by_zone[zone.key] = _hourly_offsets(zone, first_hour, hours)
        index = (np.floor(epochs[mask] / HOUR) - first_hour).astype(np.int64)
        local[mask] = epochs[mask] + by_zone[zone.key][index]
    return local


def day_numbers(local: Seconds) -> npt.NDArray[np.int64]:
    """Days since 1970-01-01 of each local clock reading."""
    return np.floor(local / DAY).astype(np.int64)


def month_numbers(local: Seconds) -> npt.NDArray[np.int64]:
    """Months since January 1970 of each local clock reading."""
    return day_numbers(local).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def day_label(number: int) -> str:
    return str(np.datetime64(number, "D"))


def month_label(number: int) -> str:
    return str(np.datetime64(number, "M"))


def minute_of_day(local: Seconds) -> npt.NDArray[np.int64]:
    return (np.floor(np.mod(local, DAY) / 60)).astype(np.int64)
