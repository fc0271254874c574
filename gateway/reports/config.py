"""The `reports` section: the shifts the response-time report groups by (site-local clock times)."""

from __future__ import annotations

from datetime import time

from pydantic import Field, model_validator

from common.settings import Identifier, LocalTime, LocalWindow, StrictModel

MINUTES_PER_DAY = 24 * 60


class ShiftConfig(StrictModel):
    """A named daily window of site-local time; the night shift wraps past midnight."""

    name: Identifier
    start: LocalTime
    end: LocalTime

    @property
    def window(self) -> LocalWindow:
        return LocalWindow(start=self.start, end=self.end)


DEFAULT_SHIFTS = (
    ShiftConfig(name="day", start=time(8), end=time(20)),
    ShiftConfig(name="night", start=time(20), end=time(8)),
)


class ReportsConfig(StrictModel):
    #: Every minute of the day belongs to exactly one shift, so each alarm is counted in one shift.
    shifts: tuple[ShiftConfig, ...] = Field(DEFAULT_SHIFTS, min_length=1, max_length=12)

    @model_validator(mode="after")
    def _shifts_tile_the_day(self) -> ReportsConfig:
        names = [shift.name for shift in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError("each shift needs its own name")
        for shift in self.shifts:
            if shift.start.second or shift.end.second or shift.start.microsecond or shift.end.microsecond:
                raise ValueError(f"shift {shift.name}: give whole minutes (HH:MM)")
        for minute in range(MINUTES_PER_DAY):
            local = time(minute // 60, minute % 60)
            holders = [s.name for s in self.shifts if s.window.contains(local)]
            if len(holders) != 1:
                what = "no shift" if not holders else f"shifts {', '.join(holders)} overlap"
                raise ValueError(f"the shifts must cover the day once: at {local:%H:%M} {what}")
        return self

    def shift_of_minute(self) -> list[int]:
        """For each minute of the day (0 … 1439), the index of the shift it belongs to."""
        return [
            next(i for i, s in enumerate(self.shifts) if s.window.contains(time(m // 60, m % 60)))
            for m in range(MINUTES_PER_DAY)
        ]
