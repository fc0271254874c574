"""JSON as devices really send it: lenient enough to see an alarm, strict about everything else.

Python's json accepts `NaN` and `Infinity` (which are not JSON) and refuses a whole document over one
integer longer than its digit limit. Either way one odd reading would cost the message, and with it
the alarm it carries. Here both become an `UnreadableNumber`, a value no field check accepts, so the
bad reading is rejected on its own and the rest of the payload is still read.

Two more things a device can send that would otherwise cost the alarm further on: a leading byte-order
mark (some firmware writes one; Python's json refuses it) is skipped, and a `\ud800`-style escape of a
lone surrogate, which no database, log or UTF-8 response can hold, becomes U+FFFD in object keys and
string values (the only strings the profiles read).

`loads_payload` is the one the profiles call: almost every real payload is plain JSON, which orjson
parses several times faster than `json` with these hooks; it is used only where its answer is exactly
`loads`'s (see `_strict_is_exact`), and everything else takes the lenient path.
`tests/test_lenient_json.py` compares the two on generated documents.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import orjson

#: 2**64 has 20 digits, epoch nanoseconds 19: no reading or device time is longer. Capping well below
#: Python's 4300-digit limit also keeps a hostile payload from buying quadratic int() conversions.
MAX_INT_DIGITS = 20


@dataclass(frozen=True, slots=True)
class UnreadableNumber:
    """A number in the payload that cannot be used as one: `NaN`, `Infinity` or an over-long integer."""

    description: str

    def __str__(self) -> str:
        return self.description


_BOM = "\ufeff"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


#: A run this long can be an integer orjson reads differently (past 64 bits it gives a float).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
#: Python's parser gives up at a nesting depth near 1,000 and orjson at 1,024: deep documents go lenient.
_MAX_OPENINGS = 256


class UnreadablePayloadError(ValueError):
    """The payload's bytes are not UTF-8."""


def loads_payload(payload: bytes) -> object:
    """`loads` of the payload's UTF-8 text; raises `UnreadablePayloadError` when it is not UTF-8, and
    ValueError / RecursionError as `loads` does."""
    if _strict_is_exact(payload):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass  # NaN, a byte-order mark, a lone surrogate, bad UTF-8, or not JSON: the lenient path says
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadablePayloadError("payload is not UTF-8") from None
    return loads(text)


def _strict_is_exact(payload: bytes) -> bool:
    """Whether orjson, when it accepts `payload`, reads it exactly as `loads` does: it refuses what the
    hooks below would rewrite (NaN, Infinity, a byte-order mark, lone surrogates), and the only other
    differences are integers past 64 bits and nesting past Python's depth, both excluded here."""
    return _LONG_DIGITS.search(payload) is None and payload.count(b"[") + payload.count(b"{") <= _MAX_OPENINGS


def loads(text: str) -> object:
    """Parse `text`; raises ValueError when it is not JSON and RecursionError when nested too deeply."""
    return json.loads(
        text.removeprefix(_BOM),
        parse_constant=_constant,
        parse_int=_integer,
        object_pairs_hook=_object,
    )


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # dict() keeps the last of duplicated keys, as json does without a hook.
    return {_valid(key): _valid(value) if isinstance(value, str) else value for key, value in pairs}


def _valid(text: str) -> str:
    # Decoded from strict UTF-8, the text holds a surrogate only where an escape put one; pairs were
    # already joined by json, so what is left is lone.
    return text if text.isascii() else _LONE_SURROGATE.sub(REPLACEMENT, text)


def _constant(name: str) -> UnreadableNumber:
    return UnreadableNumber(name)


def _integer(digits: str) -> int | UnreadableNumber:
    length = len(digits.lstrip("-"))
    if length > MAX_INT_DIGITS:
        return UnreadableNumber(f"a {length}-digit integer")
    return int(digits)
