"""Each coverage-guided fuzz target (tests/fuzz/) runs for a bounded time from its committed seed corpus;
a crash fails the test with the crashing input's path and the Python traceback atheris printed.

`CARELINE_FUZZ_SECONDS` sets the time per target (default 20, as in CI); `make fuzz` runs longer.
New corpus entries and crashes go to pytest's temporary directory, never into the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
SECONDS = int(os.environ.get("CARELINE_FUZZ_SECONDS", "20"))
#: (target script, seed corpus, dictionary)
TARGETS = {
    "decoders": ("fuzz_decoders.py", FUZZ / "corpus" / "decoders", FUZZ / "json.dict"),
    "files": ("fuzz_files.py", FUZZ / "corpus" / "files", None),
}
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)
_COVERAGE = re.compile(r"cov: (\d+) ft: (\d+)")


def fuzz(target: str, workdir: Path, seconds: int) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    script, seeds, dictionary = TARGETS[target]
    corpus = workdir / "corpus"
    corpus.mkdir()
    command = [
        sys.executable,
        str(FUZZ / script),
        f"-max_total_time={seconds}",
        "-rss_limit_mb=2048",
        "-timeout=10",  # per input: a decoder that hangs on one message is a crash
        "-print_final_stats=1",
        f"-artifact_prefix={workdir}/",
        *([f"-dict={dictionary}"] if dictionary else []),
        str(corpus),  # new inputs are written to the first directory only
        str(seeds),
    ]
    # atheris prints the Python traceback on stdout, libFuzzer its statistics on stderr: one stream.
    run = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    stats = {name: int(value) for name, value in _STAT.findall(run.stdout)}
    coverage = _COVERAGE.findall(run.stdout)
    if coverage:
        stats["coverage_edges"], stats["features"] = map(int, coverage[-1])
    return run, stats


def crash_report(run: subprocess.CompletedProcess[str], workdir: Path) -> str:
    crashes = sorted(str(path) for path in workdir.glob("*-*") if path.is_file())
    output = run.stdout
    start = output.find("=== Uncaught Python exception: ===")
    traceback = output[start : start + 4000] if start >= 0 else output[-4000:]
    return f"fuzz target exited {run.returncode}; inputs: {crashes}\n{traceback}"


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_fuzz_target_finds_no_crash_in_its_time(
    target: str, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    run, stats = fuzz(target, tmp_path, SECONDS)
    assert run.returncode == 0, crash_report(run, tmp_path)
    for name, value in stats.items():
        record_property(name, value)
    print(f"\n{target}: {stats}")
    # The run really fuzzed: it executed inputs beyond its seeds and reached code.
    assert stats["number_of_executed_units"] > len(list(TARGETS[target][1].iterdir()))
    assert stats["coverage_edges"] > 0


def test_a_crashing_input_is_reported_with_its_path_and_traceback(tmp_path: Path) -> None:
    # The harness must not hide a crash: a target that raises on its first input fails visibly.
    target = tmp_path / "crashes.py"
    target.write_text(
        "import sys, atheris\n"
        "def one(data):\n"
        "    raise ValueError('decoder bug')\n"
        "atheris.Setup(sys.argv, one)\n"
        "atheris.Fuzz()\n"
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "one").write_bytes(b"{}")
    workdir = tmp_path / "run"
    workdir.mkdir()
    TARGETS["crashes"] = (str(target), seeds, None)
    try:
        run, _ = fuzz("crashes", workdir, 5)
    finally:
        del TARGETS["crashes"]
    assert run.returncode != 0
    report = crash_report(run, workdir)
    assert "ValueError: decoder bug" in report
    assert str(workdir / "crash-") in report
