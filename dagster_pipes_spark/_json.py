"""JSON serialization shared by every channel: one place decides what is serializable."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder()


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
        return _encoder.encode(value)
    except TypeError:
        return json.dumps(value, default=_default)
