"""What the Spark helpers need from a Pipes context: whether it is the no-op one, logging that never
raises, and the asset key a report goes to.

Nothing here imports pyspark.
"""

from __future__ import annotations

import sys
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark._protocol import coerce_asset_key


def is_mock(obj: Any) -> bool:
    """Whether ``obj`` is a ``unittest.mock`` object (the no-op Pipes context outside Dagster)."""
    mock_module = sys.modules.get("unittest.mock")
    return mock_module is not None and isinstance(obj, mock_module.NonCallableMock)


def reports(pipes: Any) -> bool:
    """Whether reports sent to ``pipes`` reach Dagster (``None`` and the no-op mock do not)."""
    return pipes is not None and not is_mock(pipes)


def log(pipes: Any, level: str, message: str) -> None:
    """Log through the Pipes context; never raises (a no-op for ``None``)."""
    if pipes is None:
        return
    try:
        getattr(pipes.log, level)(message)
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
    """The escaped asset key ``method`` reports to: ``asset_key`` (a string, a list of parts or a
    ``dagster.AssetKey``) when it is in scope, else the one asset in scope."""
    try:
        given = coerce_asset_key(asset_key)
    except TypeError as exc:
        raise DagsterPipesError(
            f"Invalid `asset_key` of `{method}`: {exc}. Pass a string such as 'orders' or 'sales/orders',"
            " a list of key parts, or a dagster.AssetKey."
        ) from None
    try:
        scope = [str(k) for k in pipes.asset_keys]
    except DagsterPipesError as exc:
        raise DagsterPipesError(
            f"`{method}` reports asset checks, but the current step targets no asset ({exc})."
        ) from None
    if given is None:
        if len(scope) != 1:
            raise DagsterPipesError(
                f"`{method}` needs `asset_key=`: {len(scope)} assets are in scope ({scope})."
            )
        return scope[0]
    if given not in scope:
        raise DagsterPipesError(f"Invalid `asset_key` of `{method}`: {given!r} is not in scope {scope}.")
    return given
