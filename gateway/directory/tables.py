"""CSV files of residents or devices, for people who keep their lists in a spreadsheet.

Headers come in English or Simplified Chinese (both are read; `template` writes either), from the
catalogue (`csv.*`). Lists in a cell are separated by ";" (or "；"). Codes (risks, device types, states)
are read as the code or as its words in either language; a Chinese export writes the Chinese words.
A resident's contacts take four columns each, numbered in the order to call them
(contact1_name, contact1_relation, contact1_phones, contact1_languages, contact2_...).

A spreadsheet runs a cell starting with = + - or @ as a formula: an export puts ' before such a cell,
and an import refuses one in a free-text column (and reads a cell starting with ' as the text after it).
Every problem names its row (the header is row 1) and column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, get_args

from pydantic import BaseModel, ValidationError

from common.errors import Problem
from common.settings import LANGUAGES
from devices.model import DeviceType
from gateway.catalogue import CATALOGUE, Language
from gateway.config import RISKS, DeviceConfig, DeviceState, ResidentConfig, ResidentStatus, problems_of
from gateway.directory.changes import Incoming, Kind
from gateway.directory.transfer import DirectoryFile, decode_upload, refused
from gateway.references import problem

TableKind = Literal["residents", "devices"]
TABLE_KINDS: tuple[TableKind, ...] = ("residents", "devices")
MAX_ROWS = 20_000
MAX_CONTACTS = 10
TEMPLATE_CONTACTS = 2
Form = Literal["id", "text", "free", "int", "date", "bool", "code", "codes", "free_list", "phones", "secret"]
_FORMULA = ("=", "+", "-", "@")
#: Also neutralised on export: a leading tab or carriage return hides a formula in some spreadsheets.
_NEUTRALISE = (*_FORMULA, "\t", "\r")
_LIST = re.compile(r"[;；]")
_YES = {"yes", "y", "true", "1", "是", "有"}
_NO = {"no", "n", "false", "0", "否", "无"}


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    form: Form
    #: For codes: the catalogue prefix of their words (risk.falls) and the codes allowed.
    words: str | None = None
    codes: tuple[str, ...] = ()
    required: bool = False


_LANGUAGE = Column("languages", "codes", "language_name", LANGUAGES)
RESIDENT_COLUMNS = (
    Column("id", "id", required=True),
    Column("name", "free", required=True),
    Column("site", "id", required=True),
    Column("room", "id"),
    Column("birth_year", "int"),
    _LANGUAGE,
    Column("risks", "codes", "risk", RISKS),
    Column("conditions", "free_list"),
    Column("address", "free"),
    Column("access_notes", "free"),
    Column("notes", "free"),
    Column("check_in_consent", "bool"),
    Column("status", "code", "resident_status", get_args(ResidentStatus)),
    Column("discharged_on", "date"),
    Column("key_safe_code", "secret"),
)
CONTACT_COLUMNS = (
    Column("name", "free"),
    Column("relation", "free"),
    Column("phones", "phones"),
    _LANGUAGE,
)
DEVICE_COLUMNS = (
    Column("id", "id", required=True),
    Column("type", "code", "device_type", tuple(t.value for t in DeviceType), required=True),
    Column("profile", "code", None, ("careline", "zigbee2mqtt")),
    Column("site", "id", required=True),
    Column("room", "id"),
    Column("resident", "id"),
    Column("friendly_name", "text"),
    Column("model", "free"),
    Column("vendor", "free"),
    Column("installed_on", "date"),
    Column("state", "code", "device_state", get_args(DeviceState)),
    # Last, so device files written before hubs existed read the same.
    Column("hub", "id"),
)
COLUMNS: dict[TableKind, tuple[Column, ...]] = {"residents": RESIDENT_COLUMNS, "devices": DEVICE_COLUMNS}
MODELS: dict[TableKind, type[BaseModel]] = {"residents": ResidentConfig, "devices": DeviceConfig}

#: A header cell: the column, and for a contact column the contact's number (1 = called first).
Slot = tuple[Column, int | None]


def header(kind: TableKind, column: Column, contact: int | None, language: Language) -> str:
    if contact is None:
        return CATALOGUE.text(f"csv.{kind}.{column.key}", language)
    return CATALOGUE.text(f"csv.contact.{column.key}", language, n=contact)


def _slots(kind: TableKind, contacts: int) -> list[Slot]:
    slots: list[Slot] = [(column, None) for column in COLUMNS[kind]]
    if kind == "residents":
        slots += [(column, n) for n in range(1, contacts + 1) for column in CONTACT_COLUMNS]
    return slots


def _known_headers(kind: TableKind) -> dict[str, tuple[Slot, Language]]:
    known: dict[str, tuple[Slot, Language]] = {}
    for slot in _slots(kind, MAX_CONTACTS):
        for language in LANGUAGES:
            known.setdefault(header(kind, *slot, language).casefold(), (slot, language))
    return known


# -- reading -----------------------------------------------------------------------------------------


def parse_csv(data: bytes, source: str, kind: TableKind | None = None) -> DirectoryFile:
    """A CSV of residents or devices (`kind`, or told by its header) as an import of that whole kind."""
    records = list(_records(decode_upload(data), source))
    if not records:
        raise refused([problem((), "csv_empty")], source)
    kind = kind or _kind_of(records[0][1], source)
    slots = _header_slots(kind, records[0][1], source)
    body = [(number, cells) for number, cells in records[1:] if any(cell.strip() for cell in cells)]
    if len(body) > MAX_ROWS:
        raise refused([problem((), "csv_too_many_rows", limit=MAX_ROWS)], source)
    reader = _TableReader(kind, slots)
    entries = [reader.entry(n, number, cells) for n, (number, cells) in enumerate(body)]
    if reader.problems:
        raise refused(reader.problems, source)
    incoming = Incoming(**{kind: tuple(entries)}, carries=carried_fields(kind))
    rows: dict[Kind, list[int]] = {kind: [number for number, _ in body]}
    return DirectoryFile(incoming, source, _rows=rows, _columns=reader.column_of)


def carried_fields(kind: TableKind) -> frozenset[str]:
    """The entry's fields the table has columns for (contacts included); the others are kept as stored."""
    names = {column.key for column in COLUMNS[kind]}
    return frozenset(names | ({"contacts"} if kind == "residents" else set()))


def _records(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    try:
        yield from enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
    except csv.Error as exc:
        raise refused([problem((), "csv_invalid", reason=str(exc))], source) from None


def _kind_of(cells: Sequence[str], source: str) -> TableKind:
    named = {cell.strip().casefold() for cell in cells if cell.strip()}
    fitting = [kind for kind in TABLE_KINDS if named <= _known_headers(kind).keys()]
    if len(fitting) != 1:
        raise refused([problem((), "csv_kind_unknown")], source)
    return fitting[0]


def _header_slots(kind: TableKind, cells: Sequence[str], source: str) -> list[tuple[Slot, str] | None]:
    known = _known_headers(kind)
    slots: list[tuple[Slot, str] | None] = []
    problems: list[Problem] = []
    seen: set[tuple[str, int | None]] = set()
    for cell in cells:
        name = cell.strip()
        found = known.get(name.casefold())
        if not name:
            slots.append(None)
            continue
        if found is None:
            problems.append(_at(problem((), "csv_unknown_column", column=repr(name)), 1, name))
            slots.append(None)
            continue
        (column, contact), _ = found
        if (column.key, contact) in seen:
            problems.append(_at(problem((), "csv_repeated_column", column=repr(name)), 1, name))
        seen.add((column.key, contact))
        slots.append(((column, contact), name))
    for column in COLUMNS[kind]:
        if column.required and (column.key, None) not in seen:
            missing = header(kind, column, None, "en")
            problems.append(_at(problem((), "csv_missing_column", column=repr(missing)), 1, None))
    if problems:
        raise refused(problems, source)
    return slots


def _at(found: Problem, row: int, column: str | None) -> Problem:
    return Problem(found.loc, found.code, found.message, found.params, row=row, column=column)


class _TableReader:
    """Turns rows into entries, collecting every problem (each with its row and column)."""

    def __init__(self, kind: TableKind, slots: list[tuple[Slot, str] | None]) -> None:
        self.kind = kind
        self.slots = slots
        self.problems: list[Problem] = []
        self._headers = {(slot[0].key, slot[1]): name for item in slots if item for slot, name in [item]}
        #: Per entry, the contact numbers its contacts came from (contact 2 is the first when 1 is empty).
        self._contacts: dict[int, list[int]] = {}

    def entry(self, n: int, row: int, cells: Sequence[str]) -> Any:
        if len(cells) > len(self.slots) and any(cell.strip() for cell in cells[len(self.slots) :]):
            self.problems.append(
                _at(problem((), "csv_too_many_cells", cells=len(cells), columns=len(self.slots)), row, None)
            )
            return None
        fields: dict[str, Any] = {}
        contacts: dict[int, dict[str, Any]] = {}
        unread: set[str | None] = set()
        for item, cell in zip(self.slots, cells, strict=False):
            if item is None:
                continue
            (column, contact), name = item
            before = len(self.problems)
            value = self._value(column, cell, row, name)
            if len(self.problems) > before:
                unread.add(name)
            if value is None:
                continue
            (contacts.setdefault(contact, {}) if contact is not None else fields)[column.key] = value
        if self.kind == "residents":
            fields["contacts"] = self._contact_list(n, row, contacts)
        try:
            return MODELS[self.kind].model_validate(fields)
        except ValidationError as exc:
            for found in problems_of(exc, (self.kind, n)):
                header_name = self.column_of(found.loc)
                if header_name not in unread:  # one reason per cell: the first is the one to fix
                    self.problems.append(_at(found, row, header_name))
                    unread.add(header_name)
            return None

    def _contact_list(self, n: int, row: int, contacts: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        numbers = sorted(contacts)
        for number in numbers:
            if "name" not in contacts[number]:
                name = self._headers.get(("name", number)) or header(
                    self.kind, CONTACT_COLUMNS[0], number, "en"
                )
                self.problems.append(_at(problem((), "csv_contact_incomplete", n=number), row, name))
        self._contacts[n] = numbers
        return [contacts[number] for number in numbers]

    def _value(self, column: Column, raw: str, row: int, name: str) -> Any:
        cell = raw.strip()
        if cell[:1] == "'" and cell[1:2] in _FORMULA:
            cell = cell[1:]
        elif cell[:1] in _FORMULA and column.form in ("free", "free_list"):
            self.problems.append(_at(problem((), "csv_formula"), row, name))
            return None
        if not cell:
            return None
        try:
            return _READERS[column.form](column, cell)
        except _CellError as exc:
            self.problems.append(_at(exc.problem, row, name))
            return None

    def column_of(self, loc: Sequence[str | int]) -> str | None:
        """The header (as the file spells it) of the cell behind a model location (kind, n, field ...)."""
        if len(loc) < 3 or not isinstance(loc[1], int):
            return None
        n, tail = loc[1], loc[2:]
        if tail[0] == "contacts" and len(tail) >= 3 and isinstance(tail[1], int):
            numbers = self._contacts.get(n, [])
            number = numbers[tail[1]] if tail[1] < len(numbers) else tail[1] + 1
            return self._headers.get((str(tail[2]), number))
        key = str(tail[0])
        return self._headers.get((key, None)) or _catalogue_header(self.kind, key)


def _catalogue_header(kind: TableKind, key: str) -> str | None:
    msgid = f"csv.{kind}.{key}"
    return CATALOGUE.text(msgid, "en") if msgid in CATALOGUE else None


class _CellError(Exception):
    def __init__(self, found: Problem) -> None:
        self.problem = found


def _words(column: Column) -> dict[str, str]:
    """Every way to write each code of the column: the code itself and its words in each language."""
    ways: dict[str, str] = {}
    for code in column.codes:
        ways[code.casefold()] = code
        entry = CATALOGUE.entries.get(f"{column.words}.{code}") if column.words else None
        for language in LANGUAGES if entry else ():
            assert entry is not None
            ways.setdefault(entry[language].casefold(), code)
    return ways


def _code(column: Column, cell: str) -> str:
    code = _words(column).get(cell.casefold())
    if code is None:
        allowed = ", ".join(column.codes)
        raise _CellError(problem((), "csv_unknown_value", value=repr(cell), allowed=allowed))
    return code


def _int(column: Column, cell: str) -> int:
    if not re.fullmatch(r"\d{1,6}", cell):
        raise _CellError(problem((), "csv_not_a_number", value=repr(cell)))
    return int(cell)


def _date(column: Column, cell: str) -> date:
    try:
        return date.fromisoformat(cell.replace("/", "-"))
    except ValueError:
        raise _CellError(problem((), "csv_not_a_date", value=repr(cell))) from None


def _bool(column: Column, cell: str) -> bool:
    word = cell.casefold()
    if word in _YES or word in _NO:
        return word in _YES
    raise _CellError(problem((), "csv_not_yes_no", value=repr(cell)))


def _split(cell: str) -> list[str]:
    return [part.strip() for part in _LIST.split(cell) if part.strip()]


_READERS: dict[Form, Callable[[Column, str], Any]] = {
    "id": lambda column, cell: cell,
    "text": lambda column, cell: cell,
    "free": lambda column, cell: cell,
    "secret": lambda column, cell: cell,
    "int": _int,
    "date": _date,
    "bool": _bool,
    "code": _code,
    "codes": lambda column, cell: [_code(column, part) for part in _split(cell)],
    "free_list": lambda column, cell: _split(cell),
    "phones": lambda column, cell: _split(cell),
}


# -- writing -----------------------------------------------------------------------------------------


def export_csv(kind: TableKind, bodies: Sequence[Mapping[str, Any]], language: Language) -> bytes:
    """Entries as CSV (UTF-8 with a byte-order mark, which spreadsheets need to read Chinese), headers
    and code words in `language`; it imports back to the same entries."""
    contacts = max([len(body.get("contacts", ())) for body in bodies] + [1]) if kind == "residents" else 0
    slots = _slots(kind, contacts)
    rows = [[header(kind, *slot, language) for slot in slots]]
    rows += [[_neutralised(_cell(slot, body, language)) for slot in slots] for body in bodies]
    return _csv_bytes(rows)


def template(kind: TableKind, language: Language) -> bytes:
    """An empty file with the headers, to fill in a spreadsheet."""
    return _csv_bytes([[header(kind, *slot, language) for slot in _slots(kind, TEMPLATE_CONTACTS)]])


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(slot: Slot, body: Mapping[str, Any], language: Language) -> str:
    column, contact = slot
    if contact is not None:
        listed = body.get("contacts", ())
        body = listed[contact - 1] if contact <= len(listed) else {}
    value = body.get(column.key)
    if value is None or value == [] or value == ():
        return ""
    if isinstance(value, bool):
        return ("是" if value else "否") if language == "zh-CN" else ("yes" if value else "no")
    if isinstance(value, list | tuple):
        return ";".join(_word(column, str(part), language) for part in value)
    return _word(column, str(value), language)


def _word(column: Column, value: str, language: Language) -> str:
    # English files keep the codes (stable for scripts); Chinese ones read as words.
    if language == "en" or column.words is None or column.form not in ("code", "codes"):
        return value
    entry = CATALOGUE.entries.get(f"{column.words}.{value}")
    return entry[language] if entry else value


def _neutralised(cell: str) -> str:
    return "'" + cell if cell.startswith(_NEUTRALISE) else cell
