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
        self.spoofed = Counter(
            "careline_spoofed_messages",
            "Messages refused because the payload names another device than its topic (also dead letters)",
            ["lane"],
            registry=r,
        )
        self.webhooks_forged = Counter(
            "careline_webhooks_forged",
            "Webhook requests refused because their signature did not match",
            ["path"],
            registry=r,
        )
        self.telemetry_left_to_alarm_lane = Counter(
            "careline_telemetry_left_to_alarm_lane",
            "Undecodable messages the telemetry lane also received on an alarm-lane topic: the alarm lane "
            "keeps the dead letter, so each message is stored once",
            registry=r,
        )
        self.dead_letters_evicted = Counter(
            "careline_dead_letters_evicted",
            "Oldest dead letters deleted to keep a lane within storage.dead_letters_max",
            ["lane"],
            registry=r,
        )
        self.disk_refused = Counter(
            "careline_disk_refused",
            "Telemetry-side writes refused because the disk was short of storage.min_free_mb "
            "(what: telemetry_dead_letters, telemetry_spool_points)",
            ["what"],
            registry=r,
        )
        self.disk_free_bytes = Gauge(
            "careline_disk_free_bytes",
            "Free bytes on the filesystem of the incident store or the telemetry spool",
            ["store"],
            registry=r,
        )
        self.cluster_changes_followed = Counter(
            "careline_cluster_changes_followed",
            "Commits of other gateway instances whose incidents were pushed to this instance's screens",
            registry=r,
        )
        self.cluster_adopted_sessions = Gauge(
            "careline_cluster_adopted_sessions",
            "Broker sessions of dead peer instances this instance has adopted (their alarms come here)",
            registry=r,
        )
        self.cluster_peers_alive = Gauge(
            "careline_cluster_peers_alive",
            "Gateway instances (this one included) with a fresh heartbeat",
            registry=r,
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
        self.zigbee_bridge_refused = Counter(
            "careline_zigbee_bridge_refused",
            "Zigbee2MQTT bridge messages refused by the pairing listener (too large, not JSON, wrong shape)",
            ["reason"],
            registry=r,
        )
        self.paired_devices = Gauge(
            "careline_zigbee_paired_devices", "Devices Zigbee2MQTT reports paired (bounded)", registry=r
        )
        self.unbound_messages = Counter(
            "careline_unbound_messages",
            "Messages from devices the directory does not hold (listed at /api/devices/unbound)",
            ["lane", "profile"],
            registry=r,
        )
        self.unbound_devices = Gauge(
            "careline_unbound_devices", "Devices heard but not bound, as listed (bounded)", registry=r
        )
        self.directory_applied = Counter(
            "careline_directory_applied", "Directories applied while the gateway ran", registry=r
        )
        self.subscriptions_refused = Counter(
            "careline_subscriptions_refused",
            "Topic subscriptions the broker refused (an ACL, a quota)",
            ["lane"],
            registry=r,
        )
        self.websocket_clients = Gauge(
            "careline_websocket_clients", "Connected dashboard WebSockets", registry=r
        )
        self.login_failures = Counter(
            "careline_login_failures", "Logins refused for a wrong user name or password", registry=r
        )
        self.login_throttled = Counter(
            "careline_login_throttled",
            "Login attempts refused unchecked (429) while a user name or address is locked",
            ["scope"],
            registry=r,
        )
        self.login_locks = Counter(
            "careline_login_locks", "Runs of failed logins that started a lock", ["scope"], registry=r
        )
        self.http_refused = Counter(
            "careline_http_refused",
            "Requests refused by the web checks (origin, CSRF token, WebSocket origin, metrics token)",
            ["reason"],
            registry=r,
        )
        self.ack_links_refused = Counter(
            "careline_ack_links_refused",
            "Acknowledge-link posts refused: the link was already used, or is unknown",
            ["reason"],
            registry=r,
        )
        # Rule state across restarts (gateway/rule_state.py).
        self.rule_state_restored = Counter(
            "careline_rule_state_restored",
            "Rules whose saved state was taken back at start",
            ["lane", "rule"],
            registry=r,
        )
        self.rule_state_ignored = Counter(
            "careline_rule_state_ignored",
            "Rules whose saved state was ignored at start (another version, corrupt, too old)",
            ["lane", "rule"],
            registry=r,
        )
        self.rule_state_saved = Counter(
            "careline_rule_state_saved", "Rule-state snapshots written to the store", registry=r
        )
        self.rule_state_save_failures = Counter(
            "careline_rule_state_save_failures", "Rule-state snapshots the store refused", registry=r
        )
        self.baseline_seeded_residents = Counter(
            "careline_baseline_seeded_residents",
            "Residents whose activity baseline was seeded from the sensor log",
            registry=r,
        )
