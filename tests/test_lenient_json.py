"""`loads_payload` (orjson where it is exact) reads every payload exactly as the lenient `loads` does.

The fast path must never change what a device said: not a type (72 vs 72.0), not a key's value when keys
repeat, not an odd number (NaN, 10**30), not a byte-order mark or a lone surrogate. Hypothesis writes
documents and then spoils some of them the ways devices do.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.lenient_json import UnreadablePayloadError, loads, loads_payload

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
#: What devices send that is not JSON, or JSON Python reads its own way.
spoilers = st.sampled_from(
    ["", "\ufeff", "NaN", "Infinity", "-Infinity", '"\\ud800"', "1e400", "99999999999999999999999", "{"]
)


def _read(read: object, payload: bytes) -> str:
    assert callable(read)
    try:
        return repr(read(payload))
    except UnreadablePayloadError:
        return "not UTF-8"
    except (ValueError, RecursionError) as exc:
        return f"refused: {type(exc).__name__}"


def _lenient(payload: bytes) -> object:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadablePayloadError("payload is not UTF-8") from None
    return loads(text)


@settings(max_examples=500, deadline=None)
@given(documents, st.booleans(), spoilers, st.integers(0, 40))
def test_the_fast_path_reads_what_the_lenient_path_reads(
    document: object, ascii_only: bool, spoiler: str, where: int
) -> None:
    text = json.dumps(document, ensure_ascii=ascii_only)
    spoiled = text[:where] + spoiler + text[where:] if spoiler else text
    for payload in (text.encode(), spoiled.encode("utf-8", "surrogatepass")):
        assert _read(loads_payload, payload) == _read(_lenient, payload)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"battery": 87, "battery": 12}',
        b'{"n": 18446744073709551616}',
        b'{"n": -9223372036854775809}',
        b'{"t": NaN}',
        b"\xef\xbb\xbf" + b'{"a": 1}',
        b'{"a": "\\ud800"}',
        b'{"a": 1e400}',
        b"[" * 1100 + b"]" * 1100,
        b"\xff\xfe",
        b'{"a": 72, "b": 72.0, "c": -0}',
    ],
)
def test_the_cases_where_the_two_parsers_differ_go_the_lenient_way(payload: bytes) -> None:
    assert _read(loads_payload, payload) == _read(_lenient, payload)
