"""Wire-level names of the Pipes protocol: constants, TypedDicts and message construction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict

from ._redact import redact

PIPES_PROTOCOL_VERSION: Final = "0.1"
PIPES_PROTOCOL_VERSION_FIELD: Final = "__dagster_pipes_version"
PIPES_METADATA_TYPE_INFER: Final = "__infer__"

DAGSTER_PIPES_CONTEXT_ENV_VAR: Final = "DAGSTER_PIPES_CONTEXT"
DAGSTER_PIPES_MESSAGES_ENV_VAR: Final = "DAGSTER_PIPES_MESSAGES"
DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT: Final = "--dagster-pipes-context"
DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT: Final = "--dagster-pipes-messages"
DAGSTER_PIPES_CONTEXT_WIDGET_KEY: Final = DAGSTER_PIPES_CONTEXT_ENV_VAR
DAGSTER_PIPES_MESSAGES_WIDGET_KEY: Final = DAGSTER_PIPES_MESSAGES_ENV_VAR

ESCAPE_CHARACTER: Final = "\\"

PipesExtras = Mapping[str, Any]
PipesParams = Mapping[str, Any]

Method = Literal[
    "opened",
    "closed",
    "log",
    "report_asset_materialization",
    "report_asset_check",
    "report_custom_message",
    "log_external_stream",
]

PipesAssetCheckSeverity = Literal["WARN", "ERROR"]

PipesMetadataRawValue = int | float | str | Mapping[str, Any] | Sequence[Any] | bool | None

PipesMetadataType = Literal[
    "__infer__",
    "text",
    "url",
    "path",
    "notebook",
    "json",
    "md",
    "float",
    "int",
    "bool",
    "dagster_run",
    "asset",
    "null",
    "table",
    "table_schema",
    "table_column_lineage",
    "timestamp",
]
if TYPE_CHECKING:
    from traceback import TracebackException


class PipesMessage(TypedDict):
    """A message sent from the external process to the orchestrator."""

    __dagster_pipes_version: str
    method: str
    params: Mapping[str, Any] | None


class PipesOpenedData(TypedDict):
    """Payload of the ``opened`` message."""

    extras: Mapping[str, Any]


class PipesLogWriterOpenedData(TypedDict):
    """Payload a log writer contributes to ``opened``."""

    extras: PipesExtras


class PipesPartitionKeyRange(TypedDict):
    """A range of partition keys (inclusive)."""

    start: str
    end: str


class PipesTimeWindow(TypedDict):
    """A partition time window as ISO-8601 timestamps."""

    start: str
    end: str


class PipesDataProvenance(TypedDict):
    """Provenance of the latest materialization of an asset."""

    code_version: str
    input_data_versions: Mapping[str, str]
    is_user_provided: bool


class PipesContextData(TypedDict):
    """The context payload injected by the orchestrator."""

    asset_keys: Sequence[str] | None
    code_version_by_asset_key: Mapping[str, str | None] | None
    provenance_by_asset_key: Mapping[str, PipesDataProvenance | None] | None
    partition_key: str | None
    partition_key_range: PipesPartitionKeyRange | None
    partition_time_window: PipesTimeWindow | None
    run_id: str
    job_name: str | None
    retry_number: int
    extras: Mapping[str, Any]


class PipesMetadataValue(TypedDict):
    """A typed metadata value as sent on the wire."""

    type: PipesMetadataType
    raw_value: PipesMetadataRawValue


class PipesException(TypedDict):
    """A serialized exception carried by ``closed``."""

    message: str
    stack: Sequence[str]
    name: str | None
    cause: PipesException | None
    context: PipesException | None


def make_message(method: Method, params: Mapping[str, Any] | None) -> PipesMessage:
    """Build a protocol message envelope (key order: version, method, params)."""
    return {
        PIPES_PROTOCOL_VERSION_FIELD: PIPES_PROTOCOL_VERSION,
        "method": method,
        "params": params,
    }


def pipes_exception_from_tb(tb: TracebackException) -> PipesException:
    """Serialize a ``TracebackException`` (with cause and context) as the ``closed`` payload expects."""
    exc_type = getattr(tb, "exc_type", None)
    if exc_type is not None:
        name: str | None = exc_type.__name__
    else:  # Python 3.13+
        type_str = getattr(tb, "exc_type_str", None)
        name = type_str.split(".")[-1] if type_str else None
    return {
        "message": redact("".join(tb.format_exception_only())),
        "stack": [redact(line) for line in tb.stack.format()],
        "name": name,
        "cause": pipes_exception_from_tb(tb.__cause__) if tb.__cause__ else None,
        "context": pipes_exception_from_tb(tb.__context__) if tb.__context__ else None,
    }


def to_asset_key_path(asset_key: str) -> list[str]:
    """Split an escaped asset-key string on unescaped ``/`` into its parts (``\\X`` means ``X``)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in asset_key:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == ESCAPE_CHARACTER:
            escaped = True
        elif ch == "/":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return parts


def escape_asset_key_path(path: Sequence[str]) -> str:
    """Render asset-key parts as the escaped string the orchestrator sends and expects back."""
    return "/".join(part.replace("\\", "\\\\").replace("/", "\\/") for part in path)


def coerce_asset_key(value: Any) -> str | None:
    """The escaped key string of an asset key given as a string (taken as escaped already), a sequence
    of parts, or a ``dagster.AssetKey``; ``None`` for ``None`` or an empty key; ``TypeError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    path = getattr(value, "path", None)  # dagster.AssetKey (which is not iterable)
    if isinstance(path, (list, tuple)) and all(isinstance(p, str) for p in path):
        return escape_asset_key_path(path) or None
    if isinstance(value, Sequence) and all(isinstance(p, str) for p in value):
        return escape_asset_key_path(list(value)) or None
    raise TypeError(f"not an asset key: {value!r}")


def resolve_asset_key(scope: Sequence[str] | None, asset_key: Any, method: str) -> str:
    """The escaped asset key a report of ``method`` goes to: ``asset_key`` (a string, a list of parts
    or a ``dagster.AssetKey``), which must be one of the step's assets ``scope`` when it has any; when
    omitted, the step's only asset. The stock library's rule and first sentences, with the fix added."""
    from ._errors import DagsterPipesError

    try:
        given = coerce_asset_key(asset_key)
    except TypeError:
        raise DagsterPipesError(
            f"Invalid type for parameter `asset_key` of `{method}`. Expected a string such as 'orders' or "
            f"'sales/orders', a list of key parts or a dagster.AssetKey, got `{type(asset_key)}`."
        ) from None
    keys = [str(key) for key in scope or ()]
    if given is not None:
        if keys and given not in keys:
            raise DagsterPipesError(
                f"Invalid asset key. Expected one of `{keys}`, got `{given}`. Pass one of the step's "
                f"assets as `asset_key=` of `{method}`."
            )
        return given
    if len(keys) == 1:
        return keys[0]
    if keys:
        raise DagsterPipesError(
            f"Calling `{method}` without passing an asset key is undefined. Current step targets multiple"
            f" assets. Pass `asset_key=`, one of `{keys}`."
        )
    raise DagsterPipesError(
        f"Calling `{method}` without passing an asset key is undefined. Current step does not target a "
        "specific asset. Pass `asset_key=`."
    )
