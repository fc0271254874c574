"""Prometheus metrics, one registry per gateway (tests run several gateways in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_received = Counter(
            "careline_messages_received", "MQTT messages received", ["lane"], registry=r
        )
        self.dead_letters = Counter(
            "careline_dead_letters", "Messages kept in the dead-letter store", ["lane"], registry=r
        )
        self.telemetry_dropped = Counter(
            "careline_telemetry_dropped",
            "Telemetry messages dropped because the lane's queue was full",
            registry=r,
        )
        self.alarm_retained_ignored = Counter(
            "careline_alarm_retained_ignored",
            "Retained messages on the alarm lane (old state, not new alarms)",
            registry=r,
        )
        self.duplicates = Counter(
            "careline_alarm_duplicates", "Redelivered alarm messages recognised", registry=r
        )
        self.alarms_with_faults = Counter(
            "careline_alarms_with_faults",
            "Alarm messages accepted although part of the payload was faulty (the fault is on the incident)",
            ["profile"],
            registry=r,
        )
        self.device_tests = Counter(
            "careline_device_tests",
            "Device self-tests recorded instead of raised as alarms (a smoke detector's test button)",
            registry=r,
        )
        self.incidents_opened = Counter("careline_incidents_opened", "Incidents opened", ["rule"], registry=r)
        self.store_failures = Counter(
            "careline_store_failures", "Failed incident-store commits (retried)", registry=r
        )
        self.directory_imports = Counter(
            "careline_directory_imports",
            "Directory file uploads: applied, refused (invalid), too_large",
            ["outcome"],
            registry=r,
        )
        self.alarm_latency = Histogram(
            "careline_alarm_commit_seconds",
            "Broker receipt to durable incident commit",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.alarm_batch_size = Histogram(
            "careline_alarm_batch_size",
            "Alarm messages committed together",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200),
            registry=r,
        )
        self.broker_connected = Gauge(
            "careline_broker_connected", "1 while the lane is connected", ["lane"], registry=r
        )
        self.queue_depth = Gauge(
            "careline_lane_queue_depth", "Messages waiting in a lane's queue", ["lane"], registry=r
        )
        self.telemetry_lag = Gauge(
            "careline_telemetry_lag_seconds",
            "Device time of the latest telemetry handled, behind the gateway's clock: grows when telemetry "
            "queues up before the gateway (e.g. in TCP buffers), which the queue depth cannot show",
            registry=r,
        )
        self.websocket_clients = Gauge(
            "careline_websocket_clients", "Connected dashboard WebSockets", registry=r
        )
