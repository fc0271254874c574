"""The directory as one value: taken from a configuration and put back, validated as a whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from gateway.config import DeviceConfig, load_config
from gateway.directory.sections import DirectorySections

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_a_configuration_keeps_its_directory_when_it_is_put_back() -> None:
    config = load_config(EXAMPLES / "care-home.yaml")
    assert DirectorySections.of(config).applied_to(config) == config


def test_a_device_added_to_the_directory_is_in_the_new_configuration() -> None:
    config = load_config(EXAMPLES / "care-home.yaml")
    sections = DirectorySections.of(config)
    pendant = DeviceConfig(id="pendant-new", type="sos_button", site=config.sites[0].id)
    updated = sections.model_copy(update={"devices": (*sections.devices, pendant)}).applied_to(config)
    assert updated.devices[-1] == pendant
    assert updated.broker == config.broker


def test_a_directory_with_a_broken_reference_is_refused_with_every_problem_located() -> None:
    config = load_config(EXAMPLES / "care-home.yaml")
    sections = DirectorySections.of(config)
    strays = (
        DeviceConfig(id="stray-1", type="sos_button", site="nowhere"),
        DeviceConfig(id="stray-2", type="sos_button", site=config.sites[0].id, resident="nobody"),
    )
    with pytest.raises(ConfigError) as refused:
        sections.model_copy(update={"devices": (*sections.devices, *strays)}).applied_to(config)
    message = str(refused.value)
    assert "names unknown site 'nowhere'" in message
    assert "names unknown resident 'nobody'" in message
    assert f"devices.{len(sections.devices)}.site" in message
