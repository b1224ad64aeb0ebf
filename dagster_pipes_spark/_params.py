"""Params loaders: where the bootstrap payload comes from (env vars, CLI args, widgets, a mapping)."""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from ._encoding import decode_param
from ._errors import DagsterPipesError
from ._protocol import (
    DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT,
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_CONTEXT_WIDGET_KEY,
    DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_WIDGET_KEY,
    PipesParams,
)


class PipesParamsLoader(ABC):
    """Loads the bootstrap params injected by the orchestrator's context injector and message reader."""

    @abstractmethod
    def is_dagster_pipes_process(self) -> bool:
        """Whether this process was launched by Dagster (otherwise the context is a no-op mock)."""

    @abstractmethod
    def load_context_params(self) -> PipesParams:
        """Params of the orchestrator's context injector."""

    @abstractmethod
    def load_messages_params(self) -> PipesParams:
        """Params of the orchestrator's message reader."""


def _decode(value: Any, source: str) -> PipesParams:
    decoded = decode_param(value)
    if not isinstance(decoded, Mapping):
        raise DagsterPipesError(
            f"Malformed Pipes bootstrap value from {source}: expected an encoded JSON object, got "
            f"{type(decoded).__name__}."
        )
    return decoded


class _KeyedParamsLoader(PipesParamsLoader):
    """Shared logic: fetch the raw value for each key from one source, then decode it."""

    _context_key = DAGSTER_PIPES_CONTEXT_ENV_VAR
    _messages_key = DAGSTER_PIPES_MESSAGES_ENV_VAR

    @abstractmethod
    def _raw(self, key: str) -> str | None:
        """The raw (encoded) value for ``key``, or None when absent or empty."""

    @abstractmethod
    def _missing(self, key: str) -> str:
        """Message explaining that ``key`` is missing and how to fix it."""

    def _describe(self, key: str) -> str:
        return f"`{key}`"

    def is_dagster_pipes_process(self) -> bool:
        """True when the context value is present and non-empty."""
        return self._raw(self._context_key) is not None

    def _load(self, key: str) -> PipesParams:
        value = self._raw(key)
        if value is None:
            raise DagsterPipesError(self._missing(key))
        return _decode(value, self._describe(key))

    def load_context_params(self) -> PipesParams:
        """Decode the context params."""
        return self._load(self._context_key)

    def load_messages_params(self) -> PipesParams:
        """Decode the messages params."""
        return self._load(self._messages_key)


class PipesMappingParamsLoader(_KeyedParamsLoader):
    """Reads ``DAGSTER_PIPES_CONTEXT``/``DAGSTER_PIPES_MESSAGES`` from any mapping (e.g. a Lambda event)."""

    _source = "the params mapping"

    def __init__(self, mapping: Mapping[str, str]):
        self._mapping = mapping

    def _raw(self, key: str) -> str | None:
        return self._mapping.get(key) or None

    def _describe(self, key: str) -> str:
        return f"`{key}` in {self._source}"

    def _missing(self, key: str) -> str:
        return (
            f"Missing Pipes bootstrap value `{key}` in {self._source}. Dagster sets both "
            f"{DAGSTER_PIPES_CONTEXT_ENV_VAR} and {DAGSTER_PIPES_MESSAGES_ENV_VAR}; pass both unchanged."
        )


class PipesEnvVarParamsLoader(PipesMappingParamsLoader):
    """Reads the bootstrap params from environment variables."""

    _source = "the environment"

    def __init__(self) -> None:
        super().__init__(mapping=os.environ)


def _parse_cli(argv: Sequence[str]) -> dict[str, str]:
    """Extract ``--dagster-pipes-*`` values (``--flag value`` or ``--flag=value``), ignoring other args."""
    found: dict[str, str] = {}
    flags = (DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT, DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT)
    i = 0
    while i < len(argv):
        arg = argv[i]
        for flag in flags:
            if arg == flag:
                if i + 1 < len(argv):
                    found[flag] = argv[i + 1]
                    i += 1
                break
            if arg.startswith(flag + "="):
                found[flag] = arg[len(flag) + 1 :]
                break
        i += 1
    return found


class PipesCliArgsParamsLoader(_KeyedParamsLoader):
    """Reads ``--dagster-pipes-context``/``--dagster-pipes-messages`` from the command line.

    Both ``--flag value`` and ``--flag=value`` work, and unrelated arguments (spark-submit
    application args, wheel-task parameters) are ignored.
    """

    _context_key = DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT
    _messages_key = DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT

    def __init__(self, argv: Sequence[str] | None = None) -> None:
        self._argv = argv

    def _raw(self, key: str) -> str | None:
        return _parse_cli(list(self._argv) if self._argv is not None else sys.argv[1:]).get(key) or None

    def _describe(self, key: str) -> str:
        return f"argument `{key}`"

    def _missing(self, key: str) -> str:
        return (
            f"Missing command-line argument `{key}`. Dagster appends both {DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT} and "
            f"{DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT} to the task parameters; keep them in sys.argv."
        )


class PipesDatabricksNotebookWidgetsParamsLoader(_KeyedParamsLoader):
    """Reads the bootstrap params from Databricks notebook widgets / job parameters.

    A notebook run outside Dagster (widget undefined, or a job parameter with an empty default)
    is reported as "not a Pipes process", so ``open_dagster_pipes`` warns and returns a no-op.
    """

    _context_key = DAGSTER_PIPES_CONTEXT_WIDGET_KEY
    _messages_key = DAGSTER_PIPES_MESSAGES_WIDGET_KEY

    def __init__(self, widgets: Any):
        self.widgets = widgets

    def _raw(self, key: str) -> str | None:
        try:
            value = self.widgets.get(key)
        except Exception:  # noqa: BLE001 - InputWidgetNotDefined (py4j), KeyError (SDK stub), ...
            return None
        if value is None:
            return None
        value = str(value)
        return value if value.strip() else None

    def _describe(self, key: str) -> str:
        return f"widget `{key}`"

    def _missing(self, key: str) -> str:
        return (
            f"Notebook widget / job parameter `{key}` is undefined or empty. Dagster passes it in "
            "`base_parameters`; for an existing job, define it as a job parameter."
        )


def is_remote_dbutils(value: Any) -> bool:
    """Whether ``value`` is databricks-sdk's ``RemoteDbUtils``: what ``WorkspaceClient().dbutils`` is off
    a Databricks runtime, and what ``databricks.sdk.runtime`` falls back to on Spark Connect compute.
    Its ``fs`` is the SDK over REST, its other attributes proxies that run commands on a cluster: it is
    not a notebook's ``dbutils`` (no widgets of the run). Judged by its class, never by an attribute
    (an unknown one would build such a proxy)."""
    cls = type(value)
    return cls.__name__ == "RemoteDbUtils" and cls.__module__.startswith("databricks.sdk")


def _in_databricks_runtime_python() -> bool:
    """Whether the Databricks runtime's own modules (``dbruntime``) are importable here."""
    try:
        from importlib.util import find_spec

        return find_spec("dbruntime") is not None
    except (ImportError, ValueError):
        return False


def find_notebook_dbutils() -> Any | None:
    """The notebook's ``dbutils`` if this runs inside a Databricks (or IPython) session, else None.

    A ``dbutils`` of the IPython user namespace or of ``__main__`` is returned as it is (it may be the
    SDK's :func:`remote <is_remote_dbutils>` one: callers tell). ``databricks.sdk.runtime`` is asked
    only in a Databricks runtime's Python (``DATABRICKS_RUNTIME_VERSION`` set and ``dbruntime``
    importable): elsewhere importing it builds a ``RemoteDbUtils()`` from the environment (a network
    probe of the host) and tries to open a Spark Connect session through databricks-connect. What it
    falls back to on Spark Connect compute is the SDK's remote dbutils, not the notebook's: None then.
    """
    try:
        ipython_mod = sys.modules.get("IPython")
        if ipython_mod is not None:
            shell = ipython_mod.get_ipython()
            if shell is not None and "dbutils" in shell.user_ns:
                return shell.user_ns["dbutils"]
    except Exception:  # noqa: BLE001
        pass
    namespace = getattr(sys.modules.get("__main__"), "__dict__", None) or {}
    if "dbutils" in namespace:
        return namespace["dbutils"]
    if os.environ.get("DATABRICKS_RUNTIME_VERSION") and _in_databricks_runtime_python():
        try:
            from databricks.sdk.runtime import dbutils
        except Exception:  # noqa: BLE001
            return None
        return None if is_remote_dbutils(dbutils) else dbutils
    return None


class PipesAutoParamsLoader(PipesParamsLoader):
    """Tries environment variables, then CLI arguments, then notebook widgets, and uses the first hit.

    One script thus runs unchanged as a new-cluster task (env vars), a spark_python/wheel task on an
    existing cluster or serverless (CLI args) and a notebook task (widgets). ``widgets`` defaults to
    the notebook's ``dbutils.widgets`` when one is found.
    """

    def __init__(self, widgets: Any | None = None, argv: Sequence[str] | None = None) -> None:
        self._widgets = widgets
        self._argv = argv
        self._chosen: PipesParamsLoader | None = None

    def candidates(self) -> list[tuple[str, PipesParamsLoader]]:
        """The loaders tried, in order, with a short name each."""
        found: list[tuple[str, PipesParamsLoader]] = [
            ("env", PipesEnvVarParamsLoader()),
            ("cli", PipesCliArgsParamsLoader(self._argv)),
        ]
        widgets = self._widgets
        if widgets is None:
            dbutils = find_notebook_dbutils()
            notebook = dbutils is not None and not is_remote_dbutils(dbutils)  # the SDK's: no run widgets
            widgets = getattr(dbutils, "widgets", None) if notebook else None
        if widgets is not None:
            found.append(("widgets", PipesDatabricksNotebookWidgetsParamsLoader(widgets)))
        return found

    @property
    def source(self) -> str | None:
        """Which source provided the params (``env``, ``cli`` or ``widgets``), or None."""
        for name, loader in self.candidates():
            if loader.is_dagster_pipes_process():
                return name
        return None

    def _loader(self) -> PipesParamsLoader:
        if self._chosen is None:
            for _, loader in self.candidates():
                if loader.is_dagster_pipes_process():
                    self._chosen = loader
                    break
            else:
                raise DagsterPipesError(
                    "No Pipes bootstrap params found in environment variables, command-line arguments or "
                    "notebook widgets. Was this process launched by Dagster?"
                )
        return self._chosen

    def is_dagster_pipes_process(self) -> bool:
        """True when any source carries the params."""
        try:
            self._loader()
        except DagsterPipesError:
            return False
        return True

    def load_context_params(self) -> PipesParams:
        """Context params from the chosen source."""
        return self._loader().load_context_params()

    def load_messages_params(self) -> PipesParams:
        """Messages params from the chosen source."""
        return self._loader().load_messages_params()


def _build_cli_parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser(description="Dagster Pipes CLI interface")
    parser.add_argument(DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT, type=str, help="base64 encoded context params")
    parser.add_argument(DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT, type=str, help="base64 encoded messages params")
    return parser


_cli_parser: Any = None


def __getattr__(name: str) -> Any:
    global _cli_parser
    if name == "DAGSTER_PIPES_CLI_PARSER":  # built lazily: argparse is not needed on the hot path
        if _cli_parser is None:
            _cli_parser = _build_cli_parser()
        return _cli_parser
    raise AttributeError(name)
