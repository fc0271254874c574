"""Hostile files (issue 10): directory imports (CSV and YAML, zh-CN / en headers) and the configuration
file. Any bytes give a plan or the module's own error with every problem located; spreadsheet formulas
never pass through; the configuration's errors always name a line."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest
import yaml
from hostile import BOUNDED
from hypothesis import example, given
from hypothesis import strategies as st

from common.errors import ConfigError, InvalidInputError, Problem
from gateway.catalogue import LANGUAGES
from gateway.config import CarelineConfig, parse_config
from gateway.directory.tables import (
    COLUMNS,
    CONTACT_COLUMNS,
    MAX_ROWS,
    TABLE_KINDS,
    TableKind,
    export_csv,
    header,
    parse_csv,
)
from gateway.directory.transfer import MAX_IMPORT_BYTES, DirectoryFile, decode_upload, parse_yaml

#: Problems about the file as a whole: there is no row or line to point at.
FILE_LEVEL = {
    "file_too_large",
    "file_is_gbk",
    "file_not_utf8",
    "csv_empty",
    "csv_kind_unknown",
    "csv_invalid",
    "csv_too_many_rows",
    "yaml_not_mapping",
}
FORMULA_STARTS = ("=", "+", "-", "@")
FREE_TEXT = {
    kind: [column for column in COLUMNS[kind] if column.form in ("free", "free_list")] for kind in TABLE_KINDS
}


def read_csv(data: bytes, kind: TableKind | None = None) -> DirectoryFile | InvalidInputError:
    """A plan or the module's refusal; anything else fails the test."""
    try:
        return parse_csv(data, "upload.csv", kind)
    except InvalidInputError as exc:
        refused = exc
    assert refused.problems, "a refusal says why"
    for found in refused.problems:
        assert_csv_located(found)
    return refused


def assert_csv_located(found: Problem) -> None:
    assert found.code in FILE_LEVEL or (found.row is not None and found.row >= 1), found
    assert found.message


def read_yaml(data: bytes) -> DirectoryFile | InvalidInputError:
    try:
        return parse_yaml(decode_upload(data), "upload.yaml")
    except InvalidInputError as exc:
        refused = exc
    assert refused.problems
    for found in refused.problems:
        # Where: a line, or the setting it names (a section that is not the directory's).
        assert found.code in FILE_LEVEL or found.line is not None or found.loc, found
    return refused


# --- CSV: any bytes, any table -------------------------------------------------------------------


@BOUNDED
@given(data=st.binary(max_size=400), kind=st.sampled_from([None, *TABLE_KINDS]))
def test_any_bytes_as_a_csv_give_a_plan_or_a_located_refusal(data: bytes, kind: TableKind | None) -> None:
    read_csv(data, kind)


def _headers(kind: TableKind) -> list[str]:
    names = [header(kind, column, None, language) for column in COLUMNS[kind] for language in LANGUAGES]
    if kind == "residents":
        names += [header(kind, c, n, lang) for c in CONTACT_COLUMNS for n in (1, 2, 11) for lang in LANGUAGES]
    return names


_CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "sunrise",
            "r-1",
            "Wang",
            "王秀英",
            "1930",
            "yes",
            "否",
            "falls;跌倒",
            "+8613800000001",
            "2025-13-40",
        ]
    ),
    st.sampled_from(FORMULA_STARTS).flatmap(lambda start: st.text(max_size=8).map(lambda rest: start + rest)),
    st.sampled_from(["'=1+1", "\t=cmd|' /C calc'!A0", '"quoted, with comma"', "a\nb", "x" * 300]),
)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[TableKind, bytes]:
    """A table with real headers (either language, some made up or repeated) and random rows."""
    kind = draw(st.sampled_from(TABLE_KINDS))
    names = draw(st.lists(st.one_of(st.sampled_from(_headers(kind)), st.text(max_size=6)), max_size=12))
    rows = draw(st.lists(st.lists(_CELLS, max_size=len(names) + 2), max_size=6))
    out = io.StringIO()
    csv.writer(out).writerows([names, *rows])
    prefix = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return kind, prefix + out.getvalue().encode()


@BOUNDED
@given(table=csv_files(), told=st.booleans())
def test_csv_tables_with_real_headers_give_a_plan_or_a_located_refusal(
    table: tuple[TableKind, bytes], told: bool
) -> None:
    kind, data = table
    read = read_csv(data, kind if told else None)
    if isinstance(read, DirectoryFile):
        for entry in getattr(read.incoming, kind) or ():
            for column in FREE_TEXT[kind]:
                for text in _texts(getattr(entry, column.key, None)):
                    # Only a quoted formula is ever kept: the quote is how its author said "text".
                    assert not text.startswith(FORMULA_STARTS) or _quoted(data, text), (column.key, text)


def _texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list | tuple) else []


def _quoted(data: bytes, text: str) -> bool:
    return ("'" + text).encode() in data or ("'" + text.split(";")[0]).encode() in data


# --- CSV: formulas --------------------------------------------------------------------------------

_FORMULAS = st.tuples(
    st.sampled_from(FORMULA_STARTS),
    st.text(st.characters(min_codepoint=0x21, blacklist_categories=["Cs"]), max_size=20),
)


@BOUNDED
@given(
    kind=st.sampled_from(TABLE_KINDS),
    language=st.sampled_from(LANGUAGES),
    formula=_FORMULAS,
    spaces=st.sampled_from(["", " ", "\t", "  "]),
    data=st.data(),
)
def test_a_formula_in_a_free_text_cell_is_refused_at_its_row_and_column(
    kind: TableKind, language: str, formula: tuple[str, str], spaces: str, data: st.DataObject
) -> None:
    column = data.draw(st.sampled_from(FREE_TEXT[kind]))
    row = _minimal_row(kind) | {column.key: spaces + "".join(formula)}
    refused = read_csv(_table(kind, language, row))
    assert isinstance(refused, InvalidInputError)
    name = header(kind, column, None, language)  # type: ignore[arg-type]
    assert [(p.code, p.row, p.column) for p in refused.problems] == [("csv_formula", 2, name)]


@BOUNDED
@given(kind=st.sampled_from(TABLE_KINDS), formula=_FORMULAS, lead=st.sampled_from(["", "\t", "\r"]))
def test_an_export_neutralises_formulas_and_a_quoted_formula_imports_as_text(
    kind: TableKind, formula: tuple[str, str], lead: str
) -> None:
    text = lead + "".join(formula).strip()
    body = _minimal_row(kind) | {FREE_TEXT[kind][-1].key: text}
    exported = export_csv(kind, [body], "en")
    [_, cells] = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))
    for cell in cells:
        assert not cell.startswith((*FORMULA_STARTS, "\t", "\r")), cell
    if not lead:
        read = read_csv(exported)
        assert isinstance(read, DirectoryFile)
        [entry] = getattr(read.incoming, kind)
        assert getattr(entry, FREE_TEXT[kind][-1].key) == text


def _minimal_row(kind: TableKind) -> dict[str, str]:
    if kind == "residents":
        return {"id": "r-1", "name": "Wang", "site": "sunrise"}
    return {"id": "d-1", "type": "sos_button", "site": "sunrise"}


def _table(kind: TableKind, language: str, row: dict[str, str]) -> bytes:
    columns = [column for column in COLUMNS[kind] if column.key in row]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([header(kind, column, None, language) for column in columns])  # type: ignore[arg-type]
    writer.writerow([row[column.key] for column in columns])
    return out.getvalue().encode()


# --- CSV and YAML: sizes and encodings -------------------------------------------------------------


def test_a_file_above_the_upload_limit_is_refused_before_it_is_read() -> None:
    started = time.perf_counter()
    for read in (read_csv, read_yaml):
        refused = read(b"id,name,site\n" + b"x" * MAX_IMPORT_BYTES)
        assert isinstance(refused, InvalidInputError)
        assert [p.code for p in refused.problems] == ["file_too_large"]
    assert time.perf_counter() - started < 0.5


def test_a_table_of_the_most_rows_allowed_is_read_and_one_more_is_refused() -> None:
    rows = "".join(f"r-{n},Resident {n},sunrise\n" for n in range(MAX_ROWS))
    started = time.perf_counter()
    read = read_csv(("id,name,site\n" + rows).encode())
    elapsed = time.perf_counter() - started
    assert isinstance(read, DirectoryFile)
    assert len(read.incoming.residents or ()) == MAX_ROWS
    assert elapsed < 20, f"{MAX_ROWS} rows took {elapsed:.1f}s"
    refused = read_csv(("id,name,site\n" + rows + "r-x,One more,sunrise\n").encode())
    assert isinstance(refused, InvalidInputError)
    assert [p.code for p in refused.problems] == ["csv_too_many_rows"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("编号,姓名,站点\nr-1,王秀英,sunrise\n".encode("gbk"), "file_is_gbk"),
        (b"id,name,site\nr-1,W\xffng,sunrise\n", "file_not_utf8"),
        (b"id,name,site\nr-1,W\xed\xa0\x80ng,sunrise\n", "file_not_utf8"),
        (b'id,name,site\nr-1,"' + b"x" * 140_000 + b'",sunrise\n', "csv_invalid"),
        (b"\xef\xbb\xbf", "csv_empty"),
        (b"", "csv_empty"),
    ],
    ids=["gbk", "latin-1", "encoded-surrogate", "field-over-csv-limit", "bom-only", "nothing"],
)
def test_files_that_cannot_be_read_are_refused_saying_why(data: bytes, code: str) -> None:
    refused = read_csv(data)
    assert isinstance(refused, InvalidInputError)
    assert code in [p.code for p in refused.problems]


def test_a_yaml_import_that_is_not_valid_yaml_names_its_line_even_for_a_control_character() -> None:
    refused = read_yaml(b"residents:\n  - id: r-1\n    name: W\x00ng\n")
    assert isinstance(refused, InvalidInputError)
    [found] = refused.problems
    assert (found.code, found.line) == ("yaml_invalid", 3)


# --- YAML imports ------------------------------------------------------------------------------------

_SECTIONS = st.sampled_from(["sites", "residents", "devices", "responders", "escalation", "storage", "x"])
_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.dates(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "name", "site", "type", "room", "policies", "tiers", "x"]), inner
        )
    ),
    max_leaves=10,
)


@BOUNDED
@given(document=st.dictionaries(_SECTIONS, _YAML_VALUES, max_size=4))
def test_yaml_documents_of_directory_sections_give_a_plan_or_a_located_refusal(
    document: dict[str, object],
) -> None:
    read_yaml(yaml.safe_dump(document, allow_unicode=True).encode())


@BOUNDED
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
@example(data=b"a: &a [*a]")
@example(data=b"residents: !!python/object/apply:os.system [echo]")
@example(data=b"residents:\n- &r {id: r-1, name: n, site: s}\n- *r\n- *r\n")
@example(data=b"{? [a]: 1}")
def test_any_bytes_as_a_yaml_import_give_a_plan_or_a_located_refusal(data: bytes) -> None:
    read_yaml(data)


def test_nested_aliases_do_not_expand_into_a_billion_entries() -> None:
    lines = [
        "residents:",
        "  - id: r-1",
        "    name: Wang",
        "    site: sunrise",
        "    conditions: &l0 [a, a, a, a, a]",
    ]
    for level in range(1, 9):
        lines.append(f"    notes: &l{level} [{', '.join([f'*l{level - 1}'] * 5)}]")
    started = time.perf_counter()
    refused = read_yaml("\n".join(lines).encode())
    assert isinstance(refused, InvalidInputError)
    assert time.perf_counter() - started < 2


# --- the configuration file --------------------------------------------------------------------------

_LINE = re.compile(r"^  ?\S*:\d+: |^<config>:\d+: ")
_CONFIG_KEYS = st.sampled_from(
    ["broker", "storage", "http", "sites", "residents", "devices", "escalation", "telemetry", "rules", "x"]
)
_SETTINGS = st.dictionaries(
    st.sampled_from(["url", "port", "path", "id", "dead_letters_max", "telemetry_queue_max", "x"]),
    st.none() | st.integers() | st.floats() | st.text(max_size=8) | st.lists(st.integers(), max_size=2),
    max_size=3,
)


def assert_config_error_names_lines(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as refused:
        lines = str(refused).splitlines()
        if lines[0] == "invalid configuration:":
            problems = lines[1:]
            assert problems
            assert all(re.match(r"^  <config>:\d+: ", line) for line in problems), lines
        else:
            assert re.match(r"^<config>:\d+: ", lines[0]), lines
    except Exception as other:  # pragma: no cover - what the test exists to catch
        raise AssertionError(f"parse_config raised {type(other).__name__}, not ConfigError") from other


@BOUNDED
@given(text=st.text(max_size=200))
@example(text="http:\n  port: 8080\n\x00")
@example(text="a: 1\n\x7f")
@example(text="a: [1\n")
@example(text="- 1")
@example(text="?")
def test_any_text_as_the_configuration_gives_a_config_error_with_a_line_number(text: str) -> None:
    assert_config_error_names_lines(text)


@BOUNDED
@given(document=st.dictionaries(_CONFIG_KEYS, _SETTINGS | _YAML_VALUES, max_size=5))
def test_any_settings_document_gives_a_config_or_a_config_error_with_line_numbers(
    document: dict[str, object],
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    try:
        assert isinstance(parse_config(text), CarelineConfig)
    except ConfigError:
        assert_config_error_names_lines(text)


@pytest.mark.parametrize("escalation", ["true", "5", "abc", "[policies]", "null"])
def test_an_escalation_section_that_is_not_a_mapping_is_refused_at_its_line(escalation: str) -> None:
    # Regression: `escalation: true` raised TypeError (a 500 from the upload endpoint).
    read = read_yaml(f"sites: []\nescalation: {escalation}\n".encode())
    if escalation == "null":
        assert isinstance(read, DirectoryFile)
        return
    assert isinstance(read, InvalidInputError)
    assert [(p.loc[0], p.line) for p in read.problems] == [("escalation", 2)]
