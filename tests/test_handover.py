"""Shift handover on a real gateway: the draft of the operator's shift, signing it (an audit entry whose
hash is the signature, in an intact chain), reading handovers back, and the next shift's window."""

from __future__ import annotations

from pathlib import Path

from harness import live_gateway
from services import Mosquitto
from stores import store_execute, store_rows
from test_console_api import client_for, console_config, sos

from dashboard.auth import Role


async def test_an_operator_signs_the_handover_of_their_shift_and_the_next_one_reads_it(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        manager = await client_for(live, "manager", Role.MANAGER)
        resolved = await sos(live, mosquitto)
        await live.http.post(f"/api/incidents/{resolved}/resolve", json={"outcome": "assisted_on_site"})
        open_one = await sos(live, mosquitto, "day", "day-pendant-wang")
        none_yet = await live.http.get("/api/handovers/latest")
        assert (none_yet.status_code, none_yet.json()) == (200, None)

        draft = (await live.http.get("/api/handovers/draft")).json()
        assert draft["counts"] == {"opened": 2, "handled": 1, "still_open": 1}
        assert [i["id"] for i in draft["handled"]] == [resolved]
        assert [i["id"] for i in draft["still_open"]] == [open_one]
        assert draft["previous_handover"] is None
        assert draft["shift_start"] < draft["shift_end"]

        signed = await live.http.post("/api/handovers", json={"notes": "102 室王奶奶夜里起床两次，请留意。"})
        assert signed.status_code == 201, signed.text
        handover = signed.json()
        assert handover["signed_by"] == "operator"
        assert handover["verified"] is True
        assert handover["summary"]["counts"] == draft["counts"]

        trail = (await manager.get("/api/audit/verify")).json()
        assert trail["intact"] is True
        [(action, entry_hash)] = store_rows(
            live.gateway.config.storage.url,
            "SELECT action, hash FROM audit_log WHERE id = :id",
            id=handover["audit_id"],
        )
        assert (action, entry_hash) == ("handover.signed", handover["signature"])

        assert (await live.http.get(f"/api/handovers/{handover['id']}")).json() == handover
        assert (await manager.get("/api/handovers/latest")).json()["id"] == handover["id"]
        assert [h["id"] for h in (await manager.get("/api/handovers", params={"limit": 5})).json()] == [
            handover["id"]
        ]
        assert (await live.http.get("/api/handovers/999")).status_code == 404
        assert (await live.http.get("/api/handovers", params={"limit": 0})).status_code == 422

        # The next draft starts where this handover ended and carries its notes.
        following = (await live.http.get("/api/handovers/draft")).json()
        assert following["shift_start"] == handover["shift_end"].replace("Z", "+00:00")
        assert following["counts"]["opened"] == 0
        assert following["previous_handover"]["notes"] == "102 室王奶奶夜里起床两次，请留意。"
        await manager.aclose()


async def test_a_handover_changed_after_signing_no_longer_verifies(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        handover = (await live.http.post("/api/handovers", json={"notes": "一切正常"})).json()
        store_execute(
            live.gateway.config.storage.url,
            "UPDATE shift_handovers SET notes = '什么也没发生' WHERE id = :id",
            id=handover["id"],
        )
        reread = (await live.http.get(f"/api/handovers/{handover['id']}")).json()
        assert reread["verified"] is False


async def test_a_user_of_one_site_sees_only_handovers_of_their_site(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        day_operator = await client_for(live, "day-operator", Role.OPERATOR, sites=("day",))
        await sos(live, mosquitto)  # a night alarm
        everyone = (await live.http.post("/api/handovers", json={"notes": "全院交接"})).json()
        draft = (await day_operator.get("/api/handovers/draft")).json()
        assert draft["counts"]["opened"] == 0  # the night alarm is not theirs
        assert draft["previous_handover"] is None  # nor is the handover of every site
        assert (await day_operator.get(f"/api/handovers/{everyone['id']}")).status_code == 404
        own = (await day_operator.post("/api/handovers", json={"notes": "白班交接"})).json()
        assert own["sites"] == ["day"]
        assert [h["id"] for h in (await day_operator.get("/api/handovers")).json()] == [own["id"]]
        assert [h["id"] for h in (await live.http.get("/api/handovers")).json()] == [
            own["id"],
            everyone["id"],
        ]
        await day_operator.aclose()
