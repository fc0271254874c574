"""Building blocks of every layer's settings models: ids, languages, local clock times, secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from common.errors import ConfigError

#: Ids of sites, rooms, residents, devices, responders: safe in MQTT topics, URLs and log lines.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]

#: The languages every screen and message is written in.
Language = Literal["en", "zh-CN"]
LANGUAGES: tuple[Language, ...] = ("en", "zh-CN")


class StrictModel(BaseModel):
    """Settings refuse unknown keys (a typo must not silently fall back to a default) and never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _quoted_clock_time(value: object) -> object:
    # YAML reads an unquoted 21:00 as the base-60 number 1260; refuse it instead of guessing.
    if not isinstance(value, str | time):
        raise ValueError('give local times as quoted "HH:MM" strings, e.g. "22:00"')
    return value


def _naive(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("give a local time without a UTC offset; the site's time zone applies")
    return value


#: A site-local clock time, written as a quoted "HH:MM" string.
LocalTime = Annotated[time, BeforeValidator(_quoted_clock_time), AfterValidator(_naive)]


class LocalWindow(StrictModel):
    """A daily window of site-local time; it may wrap past midnight. Equal ends mean the whole day."""

    start: LocalTime
    end: LocalTime

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def secret_from_env(env_name: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret held by environment variable `env_name`; settings name the variable, never the secret."""
    if env_name is None:
        return None
    value = (os.environ if environ is None else environ).get(env_name)
    if value is None:
        raise ConfigError(f"environment variable {env_name} is not set (it holds a secret)")
    return value
