"""JSON as devices really send it: lenient enough to see an alarm, strict about everything else.

Python's json accepts `NaN` and `Infinity` (which are not JSON) and refuses a whole document over one
integer longer than its digit limit. Either way one odd reading would cost the message, and with it
the alarm it carries. Here both become an `UnreadableNumber`, a value no field check accepts, so the
bad reading is rejected on its own and the rest of the payload is still read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: 2**64 has 20 digits, epoch nanoseconds 19: no reading or device time is longer. Capping well below
#: Python's 4300-digit limit also keeps a hostile payload from buying quadratic int() conversions.
MAX_INT_DIGITS = 20


@dataclass(frozen=True, slots=True)
class UnreadableNumber:
    """A number in the payload that cannot be used as one: `NaN`, `Infinity` or an over-long integer."""

    description: str

    def __str__(self) -> str:
        return self.description


def loads(text: str) -> object:
    """Parse `text`; raises ValueError when it is not JSON and RecursionError when nested too deeply."""
    return json.loads(text, parse_constant=_constant, parse_int=_integer)


def _constant(name: str) -> UnreadableNumber:
    return UnreadableNumber(name)


def _integer(digits: str) -> int | UnreadableNumber:
    length = len(digits.lstrip("-"))
    if length > MAX_INT_DIGITS:
        return UnreadableNumber(f"a {length}-digit integer")
    return int(digits)
