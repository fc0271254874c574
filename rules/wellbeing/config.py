"""Wellbeing settings: thresholds for the quiet-emergency rules, per site, with per-resident overrides.

Local clock times are quoted ``"HH:MM"`` strings in the site's zone. A resident's override names only the
settings that differ (``{"inactivity": {"hours": 4}}``); `WellbeingConfig.for_resident` merges it over the
site's settings. Overrides are merged and checked once, when the configuration is validated.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from common.settings import Identifier, LocalTime, LocalWindow, StrictModel
from rules.settings import NightWindow


class ActiveHours(LocalWindow):
    start: LocalTime = time(7, 0)
    end: LocalTime = time(22, 0)


class InactivityConfig(StrictModel):
    enabled: bool = True
    #: Raise when nobody has seen a sign of life from the resident for this long...
    hours: float = Field(12.0, gt=0, le=7 * 24)
    #: ...but only while the site-local clock is inside these hours (sleeping is not an emergency).
    active_hours: ActiveHours = ActiveHours()


class CheckInConfig(StrictModel):
    enabled: bool = False
    #: The resident checks in (button "I am OK") each local day before this time.
    by: LocalTime = time(10, 0)


class BedExitConfig(StrictModel):
    enabled: bool = True
    #: Raise when the resident left bed at night and has not come back for this long.
    minutes: float = Field(30.0, gt=0, le=12 * 60)
    night: NightWindow = NightWindow()


class VitalRange(StrictModel):
    """Normal range of one vital sign. Once out of range, a reading must come back inside the range by
    `margin` to count as normal again (hysteresis), so a value dancing on a limit is one excursion."""

    low: float | None = None
    high: float | None = None
    margin: float = Field(0.0, ge=0)

    def problem(self) -> str | None:
        if self.low is not None and self.high is not None:
            if self.low >= self.high:
                return "low must be below high"
            if 2 * self.margin >= self.high - self.low:
                return "margin must be less than half of the range high - low"
        return None

    def outside(self, value: float) -> bool:
        return (self.low is not None and value < self.low) or (self.high is not None and value > self.high)

    def back_to_normal(self, value: float) -> bool:
        """Inside the range with the hysteresis margin to spare."""
        low_ok = self.low is None or value >= self.low + self.margin
        high_ok = self.high is None or value <= self.high - self.margin
        return low_ok and high_ok


class HeartRateRange(VitalRange):
    low: float | None = 40.0
    high: float | None = 120.0
    margin: float = Field(3.0, ge=0)


class Spo2Range(VitalRange):
    low: float | None = 90.0
    high: float | None = None
    margin: float = Field(1.0, ge=0)


class BodyTemperatureRange(VitalRange):
    low: float | None = 35.0
    high: float | None = 38.0
    margin: float = Field(0.2, ge=0)


class VitalsConfig(StrictModel):
    enabled: bool = True
    #: beats per minute
    heart_rate: HeartRateRange = HeartRateRange()
    #: percent
    spo2: Spo2Range = Spo2Range()
    #: degrees Celsius
    body_temperature: BodyTemperatureRange = BodyTemperatureRange()
    #: Raise when a reading stays out of range (with hysteresis) for this many seconds.
    for_s: float = Field(120.0, gt=0, le=3600)
    #: How much recent history is kept per resident and vital sign, for the evidence.
    window_s: float = Field(600.0, ge=60, le=6 * 3600)

    def problems(self) -> list[str]:
        found = [f"{name}: {p}" for name in _VITALS if (p := self.range(name).problem()) is not None]
        if self.for_s > self.window_s:
            found.append("for_s must not exceed window_s")
        return found

    def range(self, name: str) -> VitalRange:
        found: VitalRange = getattr(self, name)
        return found


_VITALS = ("heart_rate", "spo2", "body_temperature")


class DeviceHealthConfig(StrictModel):
    enabled: bool = True
    #: How often a device is expected to report something (seconds), unless overridden per device.
    heartbeat_interval_s: float = Field(3600.0, gt=0, le=7 * 24 * 3600)
    #: A device is silent after `interval * grace_factor` without any message.
    grace_factor: float = Field(2.0, ge=1.0, le=20.0)
    #: Per-device expected interval (seconds), for devices that report more or less often.
    interval_overrides_s: dict[Identifier, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    battery_low_pct: float = Field(15.0, ge=0, le=100)
    #: A low battery counts as replaced once it reads above `battery_low_pct + battery_recover_pct`.
    battery_recover_pct: float = Field(5.0, ge=0, le=50)
    #: Tamper switches often report only "true"; a tamper still reported is raised again after this.
    tamper_repeat_s: float = Field(3600.0, ge=60)
    #: Below this link quality (Zigbee LQI, 0..255) the managers' device board flags a weak signal.
    weak_link_quality: float = Field(40.0, ge=0, le=255)


class BaselineConfig(StrictModel):
    enabled: bool = True
    #: Days of history the baseline keeps.
    days: int = Field(14, ge=2, le=90)
    #: Raise when today's activity is this many standard deviations below the usual (negative).
    z_threshold: float = Field(-2.5, ge=-20, lt=0)
    #: Compare only once this many days of history are known.
    min_days: int = Field(7, ge=2, le=90)
    #: Smallest standard deviation used (events), so a very regular resident is not alarmed over one event.
    std_floor: float = Field(1.0, gt=0)

    def problems(self) -> list[str]:
        return ["min_days must not exceed days"] if self.min_days > self.days else []


class RepositioningConfig(StrictModel):
    """Pressure sores (GB/T 38600): residents flagged `pressure_sores` who lie in bed get turned."""

    enabled: bool = True
    #: A task for the carer when the bed sensor has seen no change of position for this long.
    hours: float = Field(2.0, gt=0, le=24)


class FallingFromBedConfig(StrictModel):
    """Residents flagged `falling_from_bed`: getting up at night is the danger itself."""

    enabled: bool = True
    #: Seconds out of bed at night before the alarm; 0 raises it at once.
    grace_s: float = Field(0.0, ge=0, le=600)
    night: NightWindow = NightWindow()


class ScaldsConfig(StrictModel):
    """Residents flagged `scalds`: hot water at their tap or shower above the limit."""

    enabled: bool = True
    #: Degrees Celsius; docs/risks.md says why 50.
    limit_c: float = Field(50.0, ge=30, le=90)
    #: After an alarm, a reading must fall this far below the limit before another can be raised.
    margin_c: float = Field(5.0, gt=0, le=30)


class FeverConfig(StrictModel):
    """Epidemic early warning: several feverish residents of one site within a day."""

    enabled: bool = True
    #: Degrees Celsius, as China's fever screening uses (docs/risks.md).
    threshold_c: float = Field(37.3, ge=36, le=42)
    #: Distinct feverish residents of the site within `window_hours` that make a cluster.
    residents: int = Field(3, ge=2, le=1000)
    window_hours: float = Field(24.0, gt=0, le=14 * 24)
    #: A wearable still reading a fever notes the resident again after this long.
    repeat_hours: float = Field(4.0, gt=0, le=24)


class ResidentWellbeing(StrictModel):
    """One resident's overrides; only the settings given differ from the site's."""

    inactivity: InactivityConfig | None = None
    check_in: CheckInConfig | None = None
    bed_exit: BedExitConfig | None = None
    vitals: VitalsConfig | None = None
    baseline: BaselineConfig | None = None


class EffectiveRules(StrictModel):
    """The settings that apply to one resident: the site's, with the resident's overrides merged in."""

    inactivity: InactivityConfig
    check_in: CheckInConfig
    bed_exit: BedExitConfig
    vitals: VitalsConfig
    baseline: BaselineConfig

    @model_validator(mode="after")
    def _consistent(self) -> EffectiveRules:
        # Checked on the merged settings, so an override may change one end of a range on its own.
        problems = [f"vitals.{p}" for p in self.vitals.problems()]
        problems += [f"baseline.{p}" for p in self.baseline.problems()]
        if problems:
            raise ValueError("; ".join(problems))
        return self


_PER_RESIDENT = ("inactivity", "check_in", "bed_exit", "vitals", "baseline")


class WellbeingConfig(StrictModel):
    inactivity: InactivityConfig = InactivityConfig()
    check_in: CheckInConfig = CheckInConfig()
    bed_exit: BedExitConfig = BedExitConfig()
    vitals: VitalsConfig = VitalsConfig()
    device_health: DeviceHealthConfig = DeviceHealthConfig()
    baseline: BaselineConfig = BaselineConfig()
    #: The risk rules of docs/risks.md (per site only).
    repositioning: RepositioningConfig = RepositioningConfig()
    falling_from_bed: FallingFromBedConfig = FallingFromBedConfig()
    scalds: ScaldsConfig = ScaldsConfig()
    fever: FeverConfig = FeverConfig()
    #: Resident id -> overrides.
    residents: dict[Identifier, ResidentWellbeing] = Field(default_factory=dict)

    _default: EffectiveRules | None = PrivateAttr(default=None)
    _effective: dict[str, EffectiveRules] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _merge_overrides(self) -> WellbeingConfig:
        self._default = self._merged(None)  # raises ValueError when the site's own settings clash
        for resident_id, override in self.residents.items():
            try:
                self._effective[resident_id] = self._merged(override)
            except ValidationError as exc:
                raise ValueError(f"residents.{resident_id}: {_first_message(exc)}") from None
        return self

    def for_resident(self, resident_id: str | None) -> EffectiveRules:
        """The settings for `resident_id`; the site's own when the resident has no overrides."""
        effective = self._effective.get(resident_id) if resident_id else None
        if effective is not None:
            return effective
        assert self._default is not None  # set by the validator
        return self._default

    def _merged(self, override: ResidentWellbeing | None) -> EffectiveRules:
        data: dict[str, Any] = {name: getattr(self, name).model_dump() for name in _PER_RESIDENT}
        if override is not None:
            given = override.model_dump(exclude_unset=True)
            _deep_update(data, {name: section for name, section in given.items() if section is not None})
        try:
            return EffectiveRules.model_validate(data)
        except ValidationError as exc:
            if override is None:
                raise ValueError(_first_message(exc)) from None
            raise


def _first_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _deep_update(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
