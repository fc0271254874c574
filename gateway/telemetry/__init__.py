"""Telemetry store: DeviceEvents into InfluxDB (batched, retried, spooled to disk while it is down) and
sensor-log reads back over InfluxQL. Nothing here runs on, or waits in, the alarm path.

Import the modules themselves (`gateway.telemetry.writer`, `.reads`, ...): this package re-exports
nothing, so reading the configuration (`gateway.telemetry.config`) does not load the InfluxDB client
and SQLAlchemy into every process that reads it (the telemetry process's memory, docs/benchmarks.md).
"""
