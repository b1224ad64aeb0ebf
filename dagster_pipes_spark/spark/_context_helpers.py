"""Helpers over a Pipes context, what the Spark hooks and checks need of one: whether it is the no-op
one, logging that never raises and masks credentials (``log``, through ``_redact.redact``), whether
an asset was already materialized, and the asset key a report goes to.

Nothing here imports pyspark.
"""

from __future__ import annotations

import sys
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark._protocol import resolve_asset_key as _resolve_asset_key
from dagster_pipes_spark._redact import redact


def is_mock(obj: Any) -> bool:
    """Whether ``obj`` is a ``unittest.mock`` object (the no-op Pipes context outside Dagster)."""
    mock_module = sys.modules.get("unittest.mock")
    return mock_module is not None and isinstance(obj, mock_module.NonCallableMock)


def reports(pipes: Any) -> bool:
    """Whether reports sent to ``pipes`` reach Dagster (``None`` and the no-op mock do not)."""
    return pipes is not None and not is_mock(pipes)


def log(pipes: Any, level: str, message: str) -> None:
    """Log through the Pipes context, credentials masked (exception texts are quoted); never raises
    (a no-op for ``None``)."""
    if pipes is None:
        return
    try:
        getattr(pipes.log, level)(redact(message))
    except Exception:
        pass


def already_materialized(pipes: Any, key: str) -> bool:
    """Whether the job itself already reported ``key`` as materialized through ``pipes`` (this
    library's context, or the stock one's record of it)."""
    keys = getattr(pipes, "materialized_asset_keys", None)
    if keys is None:
        keys = getattr(pipes, "_materialized_assets", None)  # stock dagster_pipes.PipesContext
    try:
        return keys is not None and not is_mock(keys) and key in keys
    except TypeError:
        return False


def resolve_asset_key(pipes: Any, asset_key: Any, method: str) -> str:
    """The escaped asset key ``method`` reports to through ``pipes`` (this library's context or the
    stock one): the core rule (:func:`dagster_pipes_spark._protocol.resolve_asset_key`) over the
    context's assets in scope."""
    try:
        scope = [str(k) for k in pipes.asset_keys]
    except DagsterPipesError:  # the stock context when the step targets no asset
        scope = []
    return _resolve_asset_key(scope, asset_key, method)
