"""Telemetry store: DeviceEvents into InfluxDB (batched, retried, spooled to disk while it is down) and
sensor-log reads back over InfluxQL. Nothing here runs on, or waits in, the alarm path."""

from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.reads import (
    SensorFilter,
    SensorLogReader,
    SensorRow,
    TelemetryQueryError,
    to_csv,
)
from gateway.telemetry.writer import InfluxWriter, create_writer

__all__ = [
    "InfluxWriter",
    "SensorFilter",
    "SensorLogReader",
    "SensorRow",
    "TelemetryConfig",
    "TelemetryQueryError",
    "create_writer",
    "to_csv",
]
