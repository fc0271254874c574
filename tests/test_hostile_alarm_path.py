"""Hostile side fields end to end: a real SOS whose side fields no store can keep must still open an
incident (real Mosquitto, real gateway, real SQLite), and the incident must still be listed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import Publisher, live_gateway, new_config
from services import Mosquitto

pytestmark = pytest.mark.asyncio

SOS = {"v": 1, "event_id": "01HQ7ZK3V9AB", "ts": "2025-03-14T08:29:59Z", "kind": "sos"}


def raw_json(document: dict[str, object], **raw_fields: str) -> bytes:
    """`document` with fields spliced in as raw JSON text (lone surrogates cannot be json.dumps'ed)."""
    text = json.dumps(document)[:-1]
    return (text + "".join(f', "{key}": {value}' for key, value in raw_fields.items()) + "}").encode()


@pytest.mark.parametrize(
    ("what", "payload"),
    [
        # Its UTC time is in year 10000: the store cannot convert it.
        ("a time beyond datetime's range in UTC", raw_json(SOS | {"ts": "9999-12-31T23:59:59-23:59"})),
        ("a lone surrogate in its value", raw_json(SOS, value='"\\ud800"')),
        ("a lone surrogate in an extra key", raw_json(SOS, extra='{"\\udc00": 1}')),
        ("a byte-order mark before it", b"\xef\xbb\xbf" + json.dumps(SOS).encode()),
    ],
    ids=["utc-overflow", "surrogate-value", "surrogate-extra-key", "bom"],
)
async def test_an_sos_with_a_hostile_side_field_still_opens_a_listed_incident(
    mosquitto: Mosquitto, tmp_path: Path, what: str, payload: bytes
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.send("careline/night/night-pendant-wang/alarm", payload)
        try:
            [incident] = await live.wait_for(lambda found: len(found) == 1, f"the SOS with {what}")
        finally:
            device.close()
        assert (incident["rule"], incident["device_id"]) == ("sos", "night-pendant-wang")
        letters = (await live.http.get("/api/dead-letters")).json()
        assert letters == [], what


@pytest.mark.parametrize(
    "last_seen", ["9999-12-31T23:59:59-23:59", 253402300799999, "0001-01-01T00:00:00+00:00"]
)
async def test_a_zigbee_sos_with_an_unstorable_last_seen_still_opens_an_incident(
    mosquitto: Mosquitto, tmp_path: Path, last_seen: object
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.zigbee("day/102/pendant", action="emergency", last_seen=last_seen)
        try:
            [incident] = await live.wait_for(lambda found: len(found) == 1, f"the SOS seen {last_seen}")
        finally:
            device.close()
        assert incident["device_id"] == "day-pendant-li"
        assert "last_seen" in " ".join(incident.get("faults", []))
