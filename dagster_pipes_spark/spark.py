"""Report the tables and files a Spark job writes as Dagster asset materializations.

.. code-block:: python

    from dagster_pipes_spark import open_dagster_pipes
    from dagster_pipes_spark.spark import report_spark_writes

    with open_dagster_pipes() as pipes, report_spark_writes(spark, pipes):
        orders.write.mode("overwrite").saveAsTable("main.sales.orders")   # -> asset "orders"
        spark.sql("MERGE INTO main.sales.customers c USING updates u ON ...")  # -> "customers"

Every successful batch write of ``spark`` made while the block runs (``DataFrameWriter`` ``save`` /
``saveAsTable`` / ``insertInto`` / ``parquet`` / ``json`` / ``csv`` / ``orc`` / ``text``,
``DataFrameWriterV2`` ``create`` / ``replace`` / ``createOrReplace`` / ``append`` / ``overwrite`` /
``overwritePartitions``, and SQL ``INSERT`` / CTAS / RTAS / ``MERGE`` / ``UPDATE`` / ``DELETE``) is
matched to an asset key in scope; on exit each asset gets one materialization aggregating its
writes, with ``dagster/row_count``, ``dagster/table_name`` or ``dagster/uri``,
``dagster/column_schema``, the operation, mode, number of writes, files and bytes written when Spark
knows them, the Spark application id, and, for Delta tables, ``data_version`` = the Delta version.

Classic sessions are observed with a py4j ``QueryExecutionListener``; Spark Connect sessions
(Databricks standard/shared access mode, serverless, ``SparkSession.builder.remote(...)``) by
instrumenting the Python writer classes and ``SparkSession.sql``. Importing this module does not
import pyspark.

Metadata of each reported asset (values wrapped ``{"raw_value": ..., "type": ...}``):

=========================  ============  =================================================================
key                        type          value
=========================  ============  =================================================================
``dagster/row_count``      int           rows written by the block's writes to the asset (for MERGE /
                                         UPDATE / DELETE: rows affected); only when known for every write
``dagster/table_name``     text          fully qualified table name (``dagster/uri``, ``path`` or ``url``,
                                         for path writes)
``dagster/column_schema``  table_schema  columns (name, Spark SQL type) of the last write's target
``spark/operation``        text          ``WRITE``, ``INSERT``, ``INSERT OVERWRITE``,
                                         ``CREATE TABLE AS SELECT``, ``[CREATE OR] REPLACE TABLE AS SELECT``,
                                         ``MERGE``, ``UPDATE``, ``DELETE``, ``COPY INTO`` (distinct, in order)
``spark/write_mode``       text          ``append`` / ``overwrite`` / ``errorifexists`` / ``ignore``
``spark/format``           text          provider or file format (``parquet``, ``delta``...)
``spark/num_writes``       int           successful writes aggregated into the report
``spark/files_written``,   int           from Spark's write statistics (classic) or Delta history
``spark/bytes_written``
``spark/rows_inserted``,   int           MERGE / UPDATE / DELETE breakdown (Delta)
``..._updated/_deleted``
``spark/targets``          json          all targets, when several map to one asset
``spark/application_id``   text          Spark application id
``spark/writes``           json          one summary per write (last 50)
``delta/version``          int           Delta table version after the last write (also ``data_version``)
=========================  ============  =================================================================

Where row counts come from: classic, the write node's ``numOutputRows``; Connect, a named
observation (``count(1)``) on the written DataFrame, returned with the write command; Delta (both),
``DESCRIBE HISTORY`` ``operationMetrics``. Connect SQL writes to non-Delta tables get no row count
(no cheap source: counting the table would be a second job).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._spark_common import (
    AssetsArg,
    Backend,
    HookSession,
    SparkWrite,
    SparkWriteReport,
    is_mock,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSparkSession

__all__ = [
    "AssetsArg",
    "SparkWrite",
    "SparkWriteReport",
    "report_spark_writes",
]


def _is_connect_session(spark: Any) -> bool:
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        return True
    if hasattr(spark, "_jsparkSession"):
        return False
    try:
        from pyspark.sql.utils import is_remote

        return bool(is_remote())
    except Exception:
        return False


def _make_backend(spark: Any, session: HookSession) -> Backend:
    def warn(message: str) -> None:
        session._log("warning", message)

    def debug(message: str) -> None:
        session._log("debug", message)

    if _is_connect_session(spark):
        from dagster_pipes_spark._spark_connect import ConnectBackend

        return ConnectBackend(spark, session.collector, warn, debug)
    from dagster_pipes_spark._spark_classic import ClassicBackend

    return ClassicBackend(spark, session.collector, warn, debug)


@contextmanager
def report_spark_writes(
    spark: SparkSession | ConnectSparkSession,
    pipes: Any,
    assets: AssetsArg = None,
    *,
    timeout: float = 30.0,
) -> Iterator[SparkWriteReport]:
    """Report every successful batch write ``spark`` makes inside the block as a materialization.

    Args:
        spark: a classic or Spark Connect ``SparkSession``.
        pipes: the ``PipesContext`` from ``open_dagster_pipes()`` (a no-op mock outside Dagster is
            accepted and ignored).
        assets: how a write target maps to an asset key. A dict from table name (any qualification,
            case-insensitive; the most qualified match wins) or path to asset key (a string like
            ``"a/b"``, a list of parts, or a ``dagster.AssetKey``; ``None`` to ignore the target),
            or a callable ``target -> asset key | None`` receiving the fully qualified table name or
            the path. Tables a dict does not name, and all tables when ``assets`` is ``None``, map to
            the in-scope asset key equal to their trailing name parts (``orders`` or
            ``sales/orders`` for ``main.sales.orders``). Writes that map to nothing, or to a key not
            in scope, are logged at debug level.
        timeout: seconds to wait on exit for Spark to deliver pending write events (classic).

    Yields:
        A :class:`SparkWriteReport`, filled on exit with the writes seen and what was reported.

    Several writes to one asset become one materialization (Pipes allows one per key); assets the
    job already reported itself are skipped with an info log. Failed writes are logged as warnings.
    Errors inside the hooks are logged, never raised into Spark or the job; the hooks are removed
    on exit, also when the block raises.
    """
    report = SparkWriteReport()
    if pipes is None or is_mock(pipes):
        yield report
        return
    session = HookSession(pipes, assets, report)
    backend: Backend | None = None
    if spark is None:
        session._log("warning", "[spark writes] no SparkSession given; writes will not be reported")
    else:
        try:
            candidate = _make_backend(spark, session)
            candidate.start()
            backend = candidate
            report.mechanism = candidate.mechanism
        except Exception as exc:
            session._log(
                "warning",
                f"[spark writes] cannot observe this session's writes ({type(exc).__name__}: {exc});"
                " report materializations explicitly",
            )
    try:
        yield report
    finally:
        session.finish(backend, timeout)
