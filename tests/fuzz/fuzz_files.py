"""Coverage-guided fuzzing of the directory files and the configuration file (atheris / libFuzzer).

Input: first byte picks the reader (0: CSV told by its header, 1: CSV of residents, 2: CSV of devices,
3: YAML directory import, 4 and above: the configuration file), the rest is the file. A crash is any
exception other than the module's own error (`InvalidInputError` / `ConfigError`), or a refusal whose
problems are not located.

    python tests/fuzz/fuzz_files.py -max_total_time=60 var/fuzz/files tests/fuzz/corpus/files
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["gateway.directory", "gateway.config", "gateway.references"]):
    from common.errors import ConfigError, InvalidInputError
    from gateway.config import parse_config
    from gateway.directory.tables import parse_csv
    from gateway.directory.transfer import decode_upload, parse_yaml

#: Problems about a file as a whole: no row or line to point at.
_FILE_LEVEL = {
    "file_too_large",
    "file_is_gbk",
    "file_not_utf8",
    "csv_empty",
    "csv_kind_unknown",
    "csv_invalid",
    "csv_too_many_rows",
    "yaml_not_mapping",
}
_KINDS = (None, "residents", "devices")
_PROBLEM_LINE = re.compile(r"^  <config>:\d+: ")
_ERROR_LINE = re.compile(r"^<config>:\d+: ")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    reader, body = data[0], data[1:]
    try:
        if reader < 3:
            parse_csv(body, "fuzz.csv", _KINDS[reader])  # type: ignore[arg-type]
        elif reader == 3:
            parse_yaml(decode_upload(body), "fuzz.yaml")
        else:
            parse_config(body.decode("utf-8", "replace"))
    except InvalidInputError as refused:
        for found in refused.problems:
            if found.code not in _FILE_LEVEL and found.row is None and found.line is None and not found.loc:
                raise AssertionError(f"problem not located: {found!r}") from None
    except ConfigError as refused:
        if reader >= 4 and not _names_lines(str(refused)):
            raise AssertionError(f"config error without a line: {refused}") from None


def _names_lines(message: str) -> bool:
    lines = message.splitlines()
    if lines[0] == "invalid configuration:":
        return len(lines) > 1 and all(_PROBLEM_LINE.match(line) for line in lines[1:])
    return _ERROR_LINE.match(lines[0]) is not None


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
