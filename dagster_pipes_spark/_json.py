"""JSON serialization shared by every channel: one place decides what is serializable."""

from __future__ import annotations

import json
from json import encoder as _json_encoder
from typing import Any

_encoder = json.JSONEncoder()
# The C encoder ``json.dumps`` ends in, built here with ``json.dumps``' defaults (ASCII, ", " and ": ",
# NaN allowed, keys unsorted, circular references checked with a fresh ``markers`` dict per call):
# the same text without the Python layers of ``JSONEncoder.encode``. None where the C accelerator
# is missing (then ``JSONEncoder.encode``).
_c_make_encoder: Any = getattr(_json_encoder, "c_make_encoder", None)
_ascii = _json_encoder.encode_basestring_ascii
_fail = _encoder.default


def _default(o: Any) -> Any:
    """Convert common non-JSON scalars (numpy, pandas, datetimes, Decimal, Path, sets)."""
    import datetime
    import decimal
    import pathlib

    mod = type(o).__module__
    if mod.startswith("numpy"):
        if hasattr(o, "tolist"):
            return o.tolist()
    if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):
        return o.isoformat()
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, pathlib.PurePath):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    if mod.startswith("pandas") and hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """Serialize like ``json.dumps`` with default separators, converting common scalar types."""
    try:
        if _c_make_encoder is not None and type(value) is dict:
            return "".join(_c_make_encoder({}, _fail, _ascii, None, ": ", ", ", False, False, True)(value, 0))
        return _encoder.encode(value)
    except TypeError:
        return json.dumps(value, default=_default)
