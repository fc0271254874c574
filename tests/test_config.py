"""Configuration: YAML in, a validated `CarelineConfig` out, and errors that point at the line at fault."""

from __future__ import annotations

import re
import textwrap
from datetime import time
from pathlib import Path

import pytest

from common.errors import ConfigError
from gateway.config import CarelineConfig, load_config, parse_config

MINIMAL = """\
broker:
  url: mqtt://127.0.0.1:1883
storage:
  url: sqlite:///careline.db
sites:
  - id: sunrise
    name: Sunrise
    timezone: Asia/Shanghai
    rooms:
      - id: "101"
residents:
  - id: wang
    name: Wang
    site: sunrise
    room: "101"
    wandering_risk: true
devices:
  - id: pendant-wang
    type: sos_button
    site: sunrise
    resident: wang
responders:
  - id: nurse
    name: Nurse
    sites: [sunrise]
"""


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text))
    return str(caught.value)


def test_a_valid_minimal_configuration_is_accepted() -> None:
    config = parse_config(MINIMAL)

    assert isinstance(config, CarelineConfig)
    assert [s.id for s in config.sites] == ["sunrise"]
    assert config.residents[0].wandering_risk is True
    assert config.devices[0].resident == "wang"
    assert config.broker.host == "127.0.0.1"
    assert config.broker.port == 1883
    assert config.site("sunrise").rules.night.start == time(22, 0)


def test_an_empty_file_is_a_configuration_with_defaults() -> None:
    config = parse_config("")

    assert config.sites == ()
    assert config.broker.embedded


def test_an_unknown_setting_is_reported_with_its_line_and_path() -> None:
    message = config_error(
        """\
        broker:
          url: mqtt://127.0.0.1:1883
        sites:
          - id: sunrise
            name: Sunrise
            rules:
              door_at_nite: true
        """
    )

    assert "<config>:7:" in message
    assert "sites.0.rules.door_at_nite" in message


def test_the_error_names_the_file_it_came_from(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("broker:\n  url: mqtt://x\n  pasword_env: X\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=re.escape(f"{path}:3: broker.pasword_env")):
        load_config(path)


def test_an_invalid_timezone_is_reported_clearly() -> None:
    message = config_error(
        """\
        sites:
          - id: sunrise
            name: Sunrise
            timezone: Asia/Shanghay
        """
    )

    assert "<config>:4: sites.0.timezone" in message
    assert "unknown time zone 'Asia/Shanghay'" in message
    assert "IANA" in message


def test_a_time_zone_name_longer_than_a_file_name_is_unknown_not_a_crash() -> None:
    # ZoneInfo looks the name up as a file: past 255 bytes the OS refuses the path (found by the fuzzer).
    name = "Asia/Sha" + "\ufffd" * 120 + "nghai"
    message = config_error(f"sites:\n  - id: sunrise\n    name: Sunrise\n    timezone: {name}\n")
    assert "<config>:4: sites.0.timezone" in message
    assert "unknown time zone" in message


def test_an_unquoted_night_start_is_refused_with_a_hint_to_quote_it() -> None:
    # YAML 1.1 reads an unquoted 22:00 as the base-60 integer 1320.
    message = config_error(
        """\
        sites:
          - id: sunrise
            name: Sunrise
            rules:
              night:
                start: 22:00
        """
    )

    assert "<config>:6: sites.0.rules.night.start" in message
    assert 'quoted "HH:MM"' in message


def test_a_quoted_night_window_is_read_as_local_times() -> None:
    config = parse_config(
        textwrap.dedent(
            """\
            sites:
              - id: sunrise
                name: Sunrise
                rules:
                  night: {start: "21:30", end: "06:30"}
            """
        )
    )

    night = config.site("sunrise").rules.night
    assert (night.start, night.end) == (time(21, 30), time(6, 30))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """\
            sites: [{id: s, name: S}]
            devices: [{id: p, type: sos_button, site: s, resident: ghost}]
            """,
            "device 'p' names unknown resident 'ghost'",
        ),
        (
            """\
            sites: [{id: s, name: S, rooms: [{id: "101"}]}]
            residents: [{id: wang, name: Wang, site: s, room: "999"}]
            """,
            "resident 'wang' names unknown room '999' of site 's'",
        ),
        (
            """\
            sites: [{id: s, name: S}]
            residents: [{id: wang, name: Wang, site: elsewhere}]
            """,
            "resident 'wang' names unknown site 'elsewhere'",
        ),
        (
            """\
            sites: [{id: s, name: S}]
            residents: [{id: wang, name: A, site: s}, {id: wang, name: B, site: s}]
            """,
            "duplicate id 'wang' in residents",
        ),
        (
            """\
            sites: [{id: s, name: S}, {id: s, name: T}]
            """,
            "duplicate id 's' in sites",
        ),
        (
            """\
            sites: [{id: s, name: S}]
            devices: [{id: d, type: door_sensor, site: s}, {id: d, type: sos_button, site: s}]
            """,
            "duplicate id 'd' in devices",
        ),
    ],
    ids=[
        "device-unknown-resident",
        "resident-unknown-room",
        "resident-unknown-site",
        "duplicate-resident",
        "duplicate-site",
        "duplicate-device",
    ],
)
def test_references_that_do_not_resolve_are_refused(text: str, expected: str) -> None:
    assert expected in config_error(text)


def test_a_responder_naming_an_unknown_site_is_refused() -> None:
    message = config_error(
        """\
        sites: [{id: s, name: S}]
        responders: [{id: nurse, name: Nurse, sites: [nowhere]}]
        """
    )

    assert "nowhere" in message


def test_a_password_env_naming_an_unset_variable_fails_when_the_password_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARELINE_TEST_MQTT_PASSWORD", raising=False)
    config = parse_config("broker:\n  url: mqtt://x\n  password_env: CARELINE_TEST_MQTT_PASSWORD\n")

    with pytest.raises(ConfigError, match="CARELINE_TEST_MQTT_PASSWORD"):
        config.broker.password()


def test_a_password_env_naming_a_set_variable_gives_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELINE_TEST_MQTT_PASSWORD", "s3cret")
    config = parse_config("broker:\n  url: mqtt://x\n  password_env: CARELINE_TEST_MQTT_PASSWORD\n")

    assert config.broker.password() == "s3cret"


@pytest.mark.parametrize("url", ["http://broker:1883", "https://broker", "ws://broker:9001"])
def test_a_broker_url_that_is_not_mqtt_is_refused(url: str) -> None:
    message = config_error(f"broker:\n  url: {url}\n")

    assert "<config>:2: broker.url" in message
    assert "mqtt://" in message


def test_an_mqtts_url_defaults_to_the_tls_port() -> None:
    broker = parse_config("broker:\n  url: mqtts://broker.example\n").broker

    assert broker.uses_tls
    assert broker.port == 8883


def test_a_missing_file_gives_a_clear_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError, match=re.escape(f"{missing}: cannot read")):
        load_config(missing)


def test_text_that_is_not_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("sites: [unclosed\n")


def test_a_top_level_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config("- just\n- a list\n")


def test_every_broken_reference_is_reported_at_its_own_line() -> None:
    text = (
        "sites:\n"
        "  - id: s\n"
        "    name: S\n"
        "    rooms: [{id: r1}]\n"
        "residents:\n"
        "  - id: a\n"
        "    name: A\n"
        "    site: s\n"
        "    room: r9\n"
        "devices:\n"
        "  - {id: p1, type: sos_button, site: s, resident: ghost}\n"
    )
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    message = str(error.value)
    assert "<config>:9: residents.0.room: resident 'a' names unknown room 'r9'" in message
    assert "<config>:11: devices.0.resident: device 'p1' names unknown resident 'ghost'" in message


def test_responder_phone_numbers_are_kept_in_e164_so_sms_replies_match() -> None:
    config = parse_config(
        "sites: [{id: s, name: S}]\nresponders: [{id: nurse, name: Nurse, phone: '+86 138-0000 (0001)'}]\n"
    )
    assert config.responders[0].phone == "+8613800000001"
    with pytest.raises(ConfigError, match="international number"):
        parse_config("responders: [{id: nurse, name: Nurse, phone: '138 0000 0001'}]\n")
