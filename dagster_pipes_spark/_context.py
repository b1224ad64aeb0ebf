"""``PipesContext`` and ``open_dagster_pipes``: the external side of a Pipes session."""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, ClassVar, Final

from . import _lifecycle
from ._channels import LineChannel, serialize_message
from ._context_loaders import PipesContextLoader, PipesDefaultContextLoader
from ._errors import DagsterPipesError, DagsterPipesMessageLossError, DagsterPipesWarning
from ._metadata import find_unserializable_key, normalize_metadata
from ._params import PipesAutoParamsLoader, PipesParamsLoader
from ._protocol import (
    Method,
    PipesContextData,
    PipesDataProvenance,
    PipesException,
    PipesExtras,
    PipesMessage,
    PipesPartitionKeyRange,
    PipesTimeWindow,
    make_message,
    pipes_exception_from_tb,
    resolve_asset_key,
)
from ._writers import PipesDefaultMessageWriter, PipesMessageWriter

if TYPE_CHECKING:
    import logging
    from unittest.mock import MagicMock

    from ._channels import PipesMessageWriterChannel

_NOT_LAUNCHED_WARNING = (
    "This process was not launched by a Dagster orchestration process. All calls to the "
    "`dagster-pipes` context or attempts to initialize `dagster-pipes` abstractions are no-ops."
)


def _check_type(value: Any, expected: type | tuple[type, ...], method: str, param: str) -> Any:
    if not isinstance(value, expected):
        raise DagsterPipesError(
            f"Invalid type for parameter `{param}` of `{method}`. Expected `{expected}`, got `{type(value)}`."
        )
    return value


def _as_bool(value: Any, method: str, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if type(value).__module__.startswith("numpy") and type(value).__name__.startswith("bool"):
        return bool(value)
    return _check_type(value, bool, method, param)


class PipesContext:
    """The context of a Dagster Pipes process: what Dagster asked for, and how to report back.

    Build it with :func:`open_dagster_pipes` (it is a singleton; :meth:`get` returns it). Reporting
    methods validate their input eagerly and raise ``DagsterPipesError`` at the call site, so
    nothing the orchestrator would reject is ever sent.
    """

    _instance: ClassVar[PipesContext | MagicMock | None] = None

    @classmethod
    def is_initialized(cls) -> bool:
        """Whether the singleton has been set."""
        return cls._instance is not None

    @classmethod
    def set(cls, context: PipesContext | MagicMock) -> None:
        """Set the singleton."""
        cls._instance = context

    @classmethod
    def get(cls) -> PipesContext:
        """The singleton; raises if ``open_dagster_pipes`` was not called."""
        if cls._instance is None:
            raise Exception("PipesContext has not been initialized. You must call `open_dagster_pipes()`.")
        return cls._instance

    def __init__(
        self,
        params_loader: PipesParamsLoader,
        context_loader: PipesContextLoader,
        message_writer: PipesMessageWriter[Any],
    ) -> None:
        self._closed = False
        self._closing = False
        self._lock = threading.RLock()
        self._materialized_assets: set[str] = set()
        self._reported_checks: set[tuple[str, str]] = set()
        context_params = params_loader.load_context_params()
        messages_params = params_loader.load_messages_params()
        self._io_stack = ExitStack()
        try:
            try:
                self._data: PipesContextData = self._io_stack.enter_context(
                    context_loader.load_context(context_params)
                )
            except BaseException as load_error:
                # Tell Dagster why, if a channel can be opened at all; then re-raise.
                self._report_startup_failure(message_writer, messages_params, load_error)
                raise
            self._message_channel: PipesMessageWriterChannel = self._io_stack.enter_context(
                message_writer.open(messages_params)
            )
            channel = self._message_channel
            self._lines: LineChannel | None = channel if isinstance(channel, LineChannel) else None
            self._write_message("opened", message_writer.get_opened_payload())
        except BaseException:
            self._closed = True
            self._io_stack.close()
            raise
        self._logger: logging.Logger | None = (
            None  # built on first use (`log`): `logging` is not needed to open
        )
        _lifecycle.install(self)

    def _report_startup_failure(
        self,
        message_writer: PipesMessageWriter[Any],
        messages_params: Mapping[str, Any],
        error: BaseException,
    ) -> None:
        from traceback import TracebackException

        try:
            with message_writer.open(messages_params) as channel:
                channel.write_message(make_message("opened", {"extras": {}}))
                exc = pipes_exception_from_tb(TracebackException.from_exception(error))
                channel.write_message(make_message("closed", {"exception": exc}))
        except BaseException:  # noqa: BLE001 - the original error is what matters
            pass

    # ----------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> PipesContext:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        if exc_type is not None and exc_value is not None:
            from traceback import TracebackException

            try:
                self.close(pipes_exception_from_tb(TracebackException(exc_type, exc_value, traceback)))
            except DagsterPipesMessageLossError:
                pass  # the block's own error propagates (the job fails); the loss is on stderr
        else:
            self.close()

    def close(self, exc: PipesException | None = None) -> None:
        """Send ``closed`` (with ``exc`` if given), flush every buffered message and close the channel.

        Idempotent: only the first call has an effect. Stdio capture is stopped first, so captured
        output is sent before ``closed`` (the orchestrator stops reading at ``closed``).
        """
        with self._lock:
            if self._closed or self._closing:
                return
            self._closing = True
        try:
            if self._lines is not None:
                try:
                    self._lines.stop_capture()
                except Exception as e:  # noqa: BLE001 - never lose `closed` over log capture
                    sys.stderr.write(f"[dagster-pipes] stopping stdio capture failed: {e!r}\n")
            self._write_message("closed", {"exception": exc} if exc else {})
        finally:
            try:
                self._io_stack.close()
            finally:
                self._closed = True
                self._closing = False
                _lifecycle.uninstall(self)

    @property
    def is_closed(self) -> bool:
        """Whether the context has been closed."""
        return self._closed

    @property
    def is_closing(self) -> bool:
        """Whether :meth:`close` is under way (sending ``closed`` and flushing)."""
        return self._closing

    def _write_message(self, method: Method, params: Mapping[str, Any] | None = None) -> None:
        if self._closed:
            raise DagsterPipesError("Cannot send message after pipes context is closed.")
        message = make_message(method, params)
        if self._lines is not None:
            self._lines.write_line(self._serialize(method, message))
            return
        if method != "opened":  # the writer's own payload is the writer's business, as in stock
            self._serialize(method, message)  # a payload no wire can carry fails at the call site
        self._message_channel.write_message(message)

    @staticmethod
    def _serialize(method: Method, message: PipesMessage) -> str:
        try:
            return serialize_message(message)
        except DagsterPipesError as e:
            params = message.get("params") or {}
            key = find_unserializable_key(params.get("metadata")) if isinstance(params, Mapping) else None
            if key is None:
                raise
            raise DagsterPipesError(
                f"Invalid metadata value for key `{key}` in `{method}`: it is not JSON-serializable ({e.__cause__}). "
                "Convert it to dicts, lists, strings, numbers, bools or None."
            ) from e

    # ----------------------------------------------------------------------------- context data

    def _assets(self, prop: str) -> Sequence[str]:
        keys = self._data["asset_keys"]
        if keys is None:
            raise DagsterPipesError(
                f"Missing required property: `{prop}` is undefined. Current step does not target an asset."
            )
        return keys

    def _single_asset(self, prop: str) -> str:
        keys = self._assets(prop)
        if len(keys) != 1:
            raise DagsterPipesError(f"`{prop}` is undefined. Current step targets multiple assets.")
        return keys[0]

    @property
    def is_asset_step(self) -> bool:
        """Whether the current step targets assets."""
        return self._data["asset_keys"] is not None

    @property
    def asset_key(self) -> str:
        """The (escaped) asset key in scope; raises unless exactly one asset is in scope."""
        return self._single_asset("asset_key")

    @property
    def asset_keys(self) -> Sequence[str]:
        """The (escaped) asset keys in scope; raises if the step targets no asset."""
        return self._assets("asset_keys")

    @property
    def provenance(self) -> PipesDataProvenance | None:
        """Provenance of the single asset in scope."""
        key = self._single_asset("provenance")
        return (self._data.get("provenance_by_asset_key") or {}).get(key)

    @property
    def provenance_by_asset_key(self) -> Mapping[str, PipesDataProvenance | None]:
        """Provenance per asset key in scope."""
        value = self._data.get("provenance_by_asset_key")
        if value is None:
            raise DagsterPipesError(
                "Missing required property: `provenance_by_asset_key` is undefined. Current step does not target an asset."
            )
        return value

    @property
    def code_version(self) -> str | None:
        """Code version of the single asset in scope."""
        key = self._single_asset("code_version")
        return (self._data.get("code_version_by_asset_key") or {}).get(key)

    @property
    def code_version_by_asset_key(self) -> Mapping[str, str | None]:
        """Code version per asset key in scope."""
        value = self._data.get("code_version_by_asset_key")
        if value is None:
            raise DagsterPipesError(
                "Missing required property: `code_version_by_asset_key` is undefined. Current step does not target an asset."
            )
        return value

    @property
    def is_partition_step(self) -> bool:
        """Whether the current step is scoped to one or more partitions."""
        return self._data.get("partition_key_range") is not None

    @property
    def partition_key(self) -> str:
        """The partition key in scope; raises if none or several are in scope."""
        key = self._data.get("partition_key")
        if key is None:
            rng = self._data.get("partition_key_range")
            if rng is not None and rng["start"] != rng["end"]:
                raise DagsterPipesError(
                    "`partition_key` is undefined. Current step targets multiple partitions."
                )
            raise DagsterPipesError(
                "Missing required property: `partition_key` is undefined. Current step does not target any partitions."
            )
        return key

    def _partitions(self, prop: str) -> PipesPartitionKeyRange:
        rng = self._data.get("partition_key_range")
        if rng is None:
            raise DagsterPipesError(
                f"Missing required property: `{prop}` is undefined. Current step does not target any partitions."
            )
        return rng

    @property
    def partition_key_range(self) -> PipesPartitionKeyRange:
        """The partition key range in scope; raises if the step is not partitioned."""
        return self._partitions("partition_key_range")

    @property
    def partition_time_window(self) -> PipesTimeWindow | None:
        """The partition time window (None for non-temporal partitions); raises if not partitioned."""
        self._partitions("partition_time_window")
        return self._data.get("partition_time_window")

    @property
    def run_id(self) -> str:
        """The Dagster run id."""
        return self._data["run_id"]

    @property
    def job_name(self) -> str | None:
        """The job name, or None outside a job."""
        return self._data.get("job_name")

    @property
    def retry_number(self) -> int:
        """The retry number of the run."""
        return self._data.get("retry_number") or 0

    @property
    def extras(self) -> Mapping[str, Any]:
        """Every extra the user passed to the Pipes client."""
        return self._data.get("extras") or {}

    def get_extra(self, key: str) -> Any:
        """One extra; raises ``DagsterPipesError`` if it was not provided."""
        extras = self.extras
        if key not in extras:
            raise DagsterPipesError(f"Extra `{key}` is undefined. Extras must be provided by user.")
        return extras[key]

    @property
    def log(self) -> logging.Logger:
        """A logger whose records stream back to Dagster with their level."""
        logger = self._logger
        if logger is None:
            with self._lock:
                if self._logger is None:
                    from ._logger import PipesLogger

                    self._logger = PipesLogger(self._write_message)
                logger = self._logger
        return logger

    # ----------------------------------------------------------------------------- reporting

    def _resolve_asset_key(self, asset_key: Any, method: str) -> str:
        return resolve_asset_key(self._data["asset_keys"], asset_key, method)

    def report_asset_materialization(
        self,
        metadata: Mapping[str, Any] | None = None,
        data_version: str | None = None,
        asset_key: str | None = None,
    ) -> None:
        """Report that an asset was materialized (at most once per asset key), with metadata.

        Metadata values may be plain (their type is inferred) or ``{"raw_value": ..., "type": ...}``.
        """
        method: Final = "report_asset_materialization"
        key = self._resolve_asset_key(asset_key, method)
        if data_version is not None:
            _check_type(data_version, str, method, "data_version")
        normalized = normalize_metadata(metadata, method)
        with self._lock:
            if key in self._materialized_assets:
                raise DagsterPipesError(
                    f"Calling `{method}` with asset key `{key}` is undefined. Asset has already been materialized, "
                    "so no additional data can be reported for it. Report all metadata in one call."
                )
            self._write_message(
                method, {"asset_key": key, "data_version": data_version, "metadata": normalized}
            )
            self._materialized_assets.add(key)

    @property
    def materialized_asset_keys(self) -> frozenset[str]:
        """Asset keys already reported as materialized in this session."""
        return frozenset(self._materialized_assets)

    def report_asset_check(
        self,
        check_name: str,
        passed: bool,
        severity: str = "ERROR",
        metadata: Mapping[str, Any] | None = None,
        asset_key: str | None = None,
    ) -> None:
        """Report the result of an asset check (``severity`` is ``"WARN"`` or ``"ERROR"``)."""
        method: Final = "report_asset_check"
        _check_type(check_name, str, method, "check_name")
        passed = _as_bool(passed, method, "passed")
        if not isinstance(severity, str) or severity.upper() not in ("WARN", "ERROR"):
            raise DagsterPipesError(
                f'Invalid value for parameter `severity` of `{method}`: {severity!r}. Use "WARN" or "ERROR".'
            )
        severity = severity.upper()
        key = self._resolve_asset_key(asset_key, method)
        normalized = normalize_metadata(metadata, method)
        with self._lock:
            if (key, check_name) in self._reported_checks:
                raise DagsterPipesError(
                    f"Check `{check_name}` on asset `{key}` was already reported; Dagster accepts each check once."
                )
            self._write_message(
                method,
                {
                    "asset_key": key,
                    "check_name": check_name,
                    "passed": passed,
                    "metadata": normalized,
                    "severity": severity,
                },
            )
            self._reported_checks.add((key, check_name))

    def report_custom_message(self, payload: Any) -> None:
        """Send any JSON-serializable payload; Dagster exposes it via ``get_custom_messages()``."""
        self._write_message("report_custom_message", {"payload": payload})

    def log_external_stream(self, stream: str, text: str, extras: PipesExtras | None = None) -> None:
        """Forward text as if written to the external process's ``stdout`` or ``stderr``."""
        if stream not in ("stdout", "stderr"):
            raise DagsterPipesError(
                f'Invalid stream {stream!r} for `log_external_stream`: use "stdout" or "stderr".'
            )
        _check_type(text, str, "log_external_stream", "text")
        self._write_message(
            "log_external_stream", {"stream": stream, "text": text, "extras": dict(extras or {})}
        )


def _get_mock() -> MagicMock:
    from unittest.mock import MagicMock

    return MagicMock()


def open_dagster_pipes(
    *,
    context_loader: PipesContextLoader | None = None,
    message_writer: PipesMessageWriter[Any] | None = None,
    params_loader: PipesParamsLoader | None = None,
) -> PipesContext:
    """Initialize the Pipes context from what Dagster injected, and start streaming messages back.

    Call it near the entry point, preferably as ``with open_dagster_pipes(...) as pipes:``. Outside
    Dagster it warns (``DagsterPipesWarning``) and returns a ``MagicMock`` so every call is a no-op.
    The default params loader tries env vars, then CLI args, then notebook widgets. A closed context
    (for example from an earlier notebook cell) is replaced by a new one.
    """
    loader = params_loader or PipesAutoParamsLoader()
    existing = PipesContext._instance
    if existing is not None and not (isinstance(existing, PipesContext) and existing.is_closed):
        if isinstance(existing, PipesContext):
            return existing
        # the no-op mock: keep it unless this process has become a Pipes process
        if not loader.is_dagster_pipes_process():
            return existing
    if not loader.is_dagster_pipes_process():
        warnings.warn(_NOT_LAUNCHED_WARNING, DagsterPipesWarning, stacklevel=2)
        mock = _get_mock()
        PipesContext.set(mock)
        return mock
    context = PipesContext(
        params_loader=loader,
        context_loader=context_loader or PipesDefaultContextLoader(),
        message_writer=message_writer or PipesDefaultMessageWriter(),
    )
    PipesContext.set(context)
    return context
