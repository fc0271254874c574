"""Careline's exceptions, translated once at the edge.

CarelineError
 ├── ConfigError        the configuration is invalid or a secret is missing
 │    └── InvalidInputError   a directory, import file or form was refused; `problems` says where and why
 ├── StoreError         the incident store refused or lost a write
 └── BrokerError        the MQTT broker cannot be reached or refused us
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class CarelineError(Exception):
    """Base of every error Careline raises on purpose."""


class ConfigError(CarelineError):
    pass


class StoreError(CarelineError):
    pass


class BrokerError(CarelineError):
    pass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where it is, why (in English), and how to say it in another language.

    `code` is a message id of the catalogue (`problem.<code>`) filled with `params` when the check is ours;
    a validator's own error type (pydantic's, English only) otherwise.
    """

    loc: tuple[str | int, ...]
    code: str
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Where in a file: the line of a YAML file, the row and column (header) of a CSV file.
    line: int | None = None
    row: int | None = None
    column: str | None = None

    def where(self) -> str:
        if self.row is not None:
            return f"row {self.row}" + (f", column {self.column}" if self.column else "")
        return ".".join(str(part) for part in self.loc) or "(top level)"


class InvalidInputError(ConfigError):
    """Refused as a whole: nothing of it was applied. Every problem found is listed, each located."""

    def __init__(self, message: str, problems: Sequence[Problem]) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
