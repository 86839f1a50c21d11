"""Values a decoded record can hold but a database cannot: finding them, and a copy without them.

orjson refuses a body holding a bare ``NaN``/``Infinity``/``-Infinity``, an overflowing number
(``1e999``) or a lone surrogate escape (``"\\ud800"``); the standard decoder the client falls back
to reads them as a float that is not finite and as text UTF-8 cannot encode. Postgres refuses
both in ``json``/``jsonb`` (the driver cannot even send the text), and orjson writes such a
float as ``null``: one of them left in a record would cost its whole page, its dead letter too.
Pure helpers, no I/O; reasons name the field and the kind of value, never the value.
"""

from __future__ import annotations

import math
import re
from typing import Any

# In a str every surrogate code point is a lone one: a valid pair decodes to one code point.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class Storable(list):  # type: ignore[type-arg]
    """Records read by the strict decoder (orjson), which refuses every value
    :func:`find_unstorable` looks for: the mappers need not look again (a list like any other;
    a copy or a filtered list is a plain list again, and is looked at)."""


def non_finite_name(number: float) -> str:
    """``"NaN"``, ``"Infinity"`` or ``"-Infinity"``: the number as the API spelled it."""
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def is_non_finite(value: Any) -> bool:
    """Whether ``value`` is a number JSON cannot hold."""
    return isinstance(value, float) and not math.isfinite(value)


def find_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """``(field, reason)`` for the first value in a decoded record a database cannot hold.

    ``field`` is the key path (``copay``, ``patient.balance``, ``appointmentnotes[0].id``). Keys
    are searched too (a key is text the database must hold as well). Runs for every appointment
    of every sync, so the common values (ASCII text, whole numbers, booleans, null) and ASCII
    keys are passed over first.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not (type(key) is str and key.isascii()) and LONE_SURROGATE.search(str(key)):
                where = f"{path}.(a key)" if path else "(a key)"
                return where, f"{where} holds a lone surrogate, text UTF-8 cannot encode"
            kind = type(item)
            if (kind is str and item.isascii()) or kind is int or kind is bool or item is None:
                continue
            found = find_unstorable(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = find_unstorable(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    field = path or "value"
    if is_non_finite(value):
        return field, f"{field} is {non_finite_name(value)}, a number JSON cannot hold"
    if isinstance(value, str) and LONE_SURROGATE.search(value) is not None:
        return field, f"{field} holds a lone surrogate, text UTF-8 cannot encode"
    return None


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite number spelled as text (``"NaN"``) and every lone
    surrogate made U+FFFD; the very same object when it holds none (the common case)."""
    if find_unstorable(value) is None:
        return value
    return _replaced(value)


def _replaced(value: Any) -> Any:
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    if isinstance(value, str):
        return LONE_SURROGATE.sub(REPLACEMENT, value)
    return non_finite_name(value) if is_non_finite(value) else value
