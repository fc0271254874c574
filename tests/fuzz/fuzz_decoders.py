"""Coverage-guided fuzzing of the device decoders (atheris / libFuzzer).

Input: first byte picks a topic (`targets.TOPICS`), the rest is the MQTT payload. A crash is anything
`devices.decode.decode` raises other than `DecodeError`, or an event breaking `targets.check_event`.

    python tests/fuzz/fuzz_decoders.py -max_total_time=60 -dict=tests/fuzz/json.dict \\
        var/fuzz/decoders tests/fuzz/corpus/decoders
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["devices"]):
    from devices.decode import decode
    from devices.model import DecodeError, Lane, RawMessage

from targets import RECEIVED, REGISTRY, check_event, topic_of


def test_one_input(data: bytes) -> None:
    if not data:
        return
    message = RawMessage(topic_of(data[0]), data[1:], RECEIVED, Lane.ALARM, qos=1)
    try:
        events = decode(message, REGISTRY)
    except DecodeError:
        return
    for event in events:
        check_event(event)


def main() -> None:
    # "alarm kept despite faults" warnings, thousands a second, would only slow the run.
    logging.disable(logging.CRITICAL)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
