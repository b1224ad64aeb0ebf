"""Bootstrap encoding: JSON, then zlib, then base64 (what the orchestrator's injectors send)."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from ._errors import DagsterPipesError
from ._json import dumps


def encode_param(value: Any) -> str:
    """Encode a JSON-serializable value as ``base64(zlib(json(value)))``."""
    try:
        serialized = dumps(value)
    except (TypeError, ValueError) as e:
        raise DagsterPipesError(
            f"Invalid type for parameter `value` of `encode_param`: {type(value).__name__} is not "
            f"JSON-serializable ({e}). Pass plain dicts, lists, strings and numbers."
        ) from e
    return base64.b64encode(zlib.compress(serialized.encode("utf-8"))).decode("ascii")


def decode_param(value: str) -> Any:
    """Decode a bootstrap value produced by ``encode_param`` (the inverse transformation).

    Raises ``DagsterPipesError`` naming the failing step when the value is malformed. A value that
    is already plain JSON (an object) is accepted as-is, which helps when passing params by hand.
    """
    if not isinstance(value, (str, bytes)):
        raise DagsterPipesError(
            f"Malformed Pipes bootstrap value: expected an encoded string, got {type(value).__name__}."
        )
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise DagsterPipesError(f"Malformed Pipes bootstrap value: invalid JSON ({e}).") from e
    preview = text if len(text) <= 40 else text[:37] + "..."
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise DagsterPipesError(
            f"Malformed Pipes bootstrap value {preview!r}: not base64 ({e}). It must be the value "
            "Dagster injected (DAGSTER_PIPES_CONTEXT / DAGSTER_PIPES_MESSAGES), passed unchanged."
        ) from e
    try:
        inflated = zlib.decompress(raw)
    except zlib.error as e:
        raise DagsterPipesError(
            f"Malformed Pipes bootstrap value {preview!r}: base64 decodes but is not zlib data ({e}). "
            "It must be the value Dagster injected, passed unchanged."
        ) from e
    try:
        return json.loads(inflated.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DagsterPipesError(
            f"Malformed Pipes bootstrap value {preview!r}: decompressed payload is not JSON ({e})."
        ) from e


#: Deprecated aliases kept for compatibility with ``dagster_pipes``.
encode_env_var = encode_param
decode_env_var = decode_param
