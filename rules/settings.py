"""The alarm rules' own settings, per site (`sites[].rules` in the configuration file)."""

from __future__ import annotations

from datetime import time

from pydantic import Field

from common.settings import LocalTime, LocalWindow, StrictModel


class NightWindow(LocalWindow):
    """Site-local night: doors opened and beds left now mean more than by day."""

    start: LocalTime = time(22, 0)
    end: LocalTime = time(6, 0)


class RulesConfig(StrictModel):
    #: A resident may cancel a fall alarm from their own device within this window (seconds).
    fall_cancel_window_s: int = Field(60, ge=0, le=3600)
    door_at_night: bool = True
    night: NightWindow = NightWindow()
    #: Raise an alarm when a door stays open longer than this; 0 turns the rule off.
    door_left_open_minutes: float = Field(10, ge=0, le=24 * 60)
