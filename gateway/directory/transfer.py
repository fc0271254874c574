"""Directory files: reading an import (YAML of the configuration's directory sections), writing an export
that imports back to the same state, and saying what is wrong with a file where it is wrong.

Uploads are bounded (`MAX_IMPORT_BYTES`) and must be UTF-8 (a byte-order mark is fine): a file saved as
GBK/GB18030, as Excel on a Chinese Windows does by default, gets an error that says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from common.errors import InvalidInputError, Problem
from common.settings import StrictModel
from gateway.catalogue import CATALOGUE, Language, placeholders
from gateway.config import (
    DeviceConfig,
    ResidentConfig,
    ResponderConfig,
    SiteConfig,
    line_of,
    problems_of,
    yaml_error_line,
)
from gateway.directory.changes import Incoming, Kind
from gateway.escalation.config import Policy
from gateway.references import problem

MAX_IMPORT_BYTES = 5 * 1024 * 1024
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BOM = b"\xef\xbb\xbf"
_SECTIONS = ("sites", "residents", "devices", "responders", "escalation")
_MODELS: dict[Kind, type[BaseModel]] = {
    "sites": SiteConfig,
    "residents": ResidentConfig,
    "devices": DeviceConfig,
    "responders": ResponderConfig,
    "policies": Policy,
}


def decode_upload(data: bytes) -> str:
    """The text of an uploaded file, or `InvalidInputError` saying why it cannot be read."""
    if len(data) > MAX_IMPORT_BYTES:
        raise refused([problem((), "file_too_large", size=len(data), limit=MAX_IMPORT_BYTES)])
    body = data.removeprefix(_BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if _is_gb18030(body):
            raise refused([problem((), "file_is_gbk")]) from None
        raise refused([problem((), "file_not_utf8", offset=exc.start + 1)]) from None


def _is_gb18030(body: bytes) -> bool:
    # GB18030 decodes almost any bytes; call it that only when it yields Chinese text.
    try:
        decoded = body.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return any("\u4e00" <= c <= "\u9fff" for c in decoded)


def refused(problems: Sequence[Problem], source: str | None = None) -> InvalidInputError:
    head = f"{source}: refused, nothing was applied:" if source else "refused, nothing was applied:"
    return InvalidInputError(head + "\n" + "\n".join(f"  {describe(p)}" for p in problems), problems)


def describe(found: Problem, language: Language = "en") -> str:
    """A problem as one line: where (line, or row and column) and what, in `language`."""
    if found.line is not None:
        return f"line {found.line}: {found.where()}: {localized(found, language)}"
    if found.row is None and not found.loc:
        return localized(found, language)
    return f"{found.where()}: {localized(found, language)}"


def localized(found: Problem, language: Language) -> str:
    """The problem's text in `language` when it is one of ours; a validator's own text (English)
    otherwise."""
    entry = CATALOGUE.entries.get(f"problem.{found.code}")
    if entry is None or placeholders(entry["en"]) != set(found.params):
        return found.message
    return CATALOGUE.text(f"problem.{found.code}", language, **found.params)


def problem_json(found: Problem, language: Language) -> dict[str, Any]:
    return {
        "loc": list(found.loc),
        "line": found.line,
        "row": found.row,
        "column": found.column,
        "code": found.code,
        "message": localized(found, language),
    }


# -- YAML --------------------------------------------------------------------------------------------


class _Escalation(StrictModel):
    policies: tuple[Policy, ...] = ()


class _Document(StrictModel):
    sites: tuple[SiteConfig, ...] | None = None
    residents: tuple[ResidentConfig, ...] | None = None
    devices: tuple[DeviceConfig, ...] | None = None
    responders: tuple[ResponderConfig, ...] | None = None
    escalation: _Escalation | None = None


@dataclass(frozen=True)
class DirectoryFile:
    """An import read and checked entry by entry; the whole directory is checked when it is planned."""

    incoming: Incoming
    source: str
    #: A YAML file's text, to find the lines of problems found later (composed only then).
    _text: str | None = None
    _rows: Mapping[Kind, Sequence[int]] | None = None
    _columns: Any = None

    def locate(self, problems: Sequence[Problem]) -> list[Problem]:
        """Problems found in the whole directory, placed in this file: the YAML line, or the CSV row and
        column, of the entry at fault (entries the file does not list keep their section and place)."""
        if self._rows is not None:
            return [self._in_table(found) for found in problems]
        return [self._in_yaml(found) for found in problems]

    def _in_yaml(self, found: Problem) -> Problem:
        if self._text is None or not found.loc or found.loc[0] not in _listed_sections(self.incoming):
            return found
        return replace(found, line=line_of(yaml.compose(self._text, Loader=_Loader), found.loc))

    def _in_table(self, found: Problem) -> Problem:
        rows: Mapping[Any, Sequence[int]] = self._rows or {}
        kind = found.loc[0] if found.loc else None
        if kind not in rows or len(found.loc) < 2 or not isinstance(found.loc[1], int):
            return found
        numbers = rows[kind]
        if found.loc[1] >= len(numbers):
            return found
        return replace(found, row=numbers[found.loc[1]], column=self._columns(found.loc))


def _listed_sections(incoming: Incoming) -> set[str]:
    listed: set[str] = {str(kind) for kind in incoming.kinds()}
    return listed | ({"escalation"} if incoming.policies is not None else set())


def parse_yaml(text: str, source: str) -> DirectoryFile:
    try:
        # libyaml's parser where it is built in: a district's directory is half a megabyte.
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        invalid = replace(problem((), "yaml_invalid", reason=str(exc)), line=yaml_error_line(exc, text))
        raise refused([invalid], source) from None
    if not isinstance(data, dict):
        raise refused([problem((), "yaml_not_mapping")], source)
    strays = [key for key in data if key not in _SECTIONS]
    escalation = data.get("escalation")
    if isinstance(escalation, dict):  # anything else is refused, with its line, by the model below
        strays += [f"escalation.{key}" for key in escalation if key != "policies"]
    if strays:
        raise refused(
            [problem((str(key),), "not_a_directory_section", key=str(key)) for key in strays], source
        )
    try:
        document = _Document.model_validate(data)
    except ValidationError as exc:
        root = yaml.compose(text, Loader=_Loader)
        located = [replace(p, line=line_of(root, p.loc)) for p in problems_of(exc)]
        raise refused(located, source) from None
    incoming = Incoming(
        sites=document.sites,
        residents=document.residents,
        devices=document.devices,
        responders=document.responders,
        policies=document.escalation.policies if document.escalation else None,
    )
    return DirectoryFile(incoming, source, _text=text)


def export_yaml(rows: Mapping[Kind, Sequence[dict[str, Any]]], *, exported_by: str, at: datetime) -> str:
    """The directory as a file `careline directory import` takes back: defaults left out, key-safe codes
    sealed (`enc:`), retired devices and discharged residents kept (leaving them out would retire them)."""
    document: dict[str, Any] = {}
    for kind, bodies in rows.items():
        entries = [_compact(kind, body) for body in bodies]
        if kind == "policies":
            document["escalation"] = {"policies": entries}
        else:
            document[kind] = entries
    head = (
        f"# Careline directory, exported {at.isoformat(timespec='seconds')} by {exported_by}.\n"
        "# Import it with: careline directory import FILE --config CONFIG (add --yes to apply).\n"
        "# Key-safe codes are sealed with the directory key (enc:...): they import only where that key is.\n"
    )
    return head + yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=110)


def _compact(kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    sealed = body.pop("key_safe_code", None)
    compact = _MODELS[kind].model_validate(body).model_dump(mode="json", exclude_defaults=True)
    if sealed is not None:
        compact["key_safe_code"] = sealed
    return compact
