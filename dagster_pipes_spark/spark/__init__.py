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
``dagster/partition_``     int           in a partitioned run, rows of the partition(s) in scope, when the
``row_count``                            last write replaced exactly them (see below)
``dagster/table_name``     text          fully qualified table name, ``catalog.schema.table``
                                         (``spark_catalog`` is ``hive_metastore`` on Databricks);
                                         ``dagster/uri`` (``path`` or ``url``) for path writes
``dagster/storage_kind``   text          ``delta``, ``parquet``, ``iceberg``, ``csv``, ``json``, ``orc``,
                                         ``hive``... (the table's provider or the write's format)
``dagster/column_schema``  table_schema  columns (name, Spark SQL type) of the last write's target
``dagster/column_``        table_column  for each written column, the (asset key, column) pairs of the
``lineage``                ``_lineage``  tables and paths read whose values flow into it (see below)
``spark/operation``        text          ``WRITE``, ``INSERT``, ``INSERT OVERWRITE``,
                                         ``CREATE TABLE AS SELECT``, ``[CREATE OR] REPLACE TABLE AS SELECT``,
                                         ``MERGE``, ``UPDATE``, ``DELETE``, ``COPY INTO`` (distinct, in order)
``spark/write_mode``       text          ``append`` / ``overwrite`` / ``errorifexists`` / ``ignore``
``spark/format``           text          provider or file format (``parquet``, ``delta``...)
``spark/num_writes``       int           successful writes aggregated into the report
``spark/partitions_``      json          partitions written, ``[{"ds": "2024-01-02"}]``, when Spark names
``written``                              them (static ``PARTITION (...)`` spec; a dynamic partition
                                         overwrite whose filter pins one partition)
``spark/num_partitions_``  int           partitions written by writes to partitioned targets, when known
``written``                              for each (``numParts`` of dynamic partition writes; classic)
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
the ``operationMetrics`` of the write's own commit (the tables' commit files read in one job on exit;
``DESCRIBE HISTORY`` for a table they cannot serve). Connect SQL writes to non-Delta tables get no row count
(no cheap source: counting the table would be a second job).

Column lineage (``dagster/column_lineage``; ``column_lineage=False`` turns it off) is read from
Spark's analysed plan of each write -- no extra Spark job. Classic: the listener's
``QueryExecution`` (one py4j ``treeString`` call per write, plus a few per file relation read by
path). Spark Connect: one ``EXPLAIN EXTENDED`` per distinct written DataFrame plan or SQL statement
on exit (analysis and planning on the server; ``spark.sql.debug.maxToStringFields`` is raised for
those calls and restored). Both read the same plan, so they report the same lineage.

* Followed: projections, aliases, casts and any expression (UDFs included), joins (semi / anti
  joins keep only the left side), aggregations, ``UNION`` (by position), ``INTERSECT`` / ``EXCEPT``
  (the left side), window functions, CTEs, scalar subqueries, views, ``explode`` and other
  generators, ``ROLLUP`` / ``CUBE`` / ``GROUPING SETS`` / ``UNPIVOT``, higher-order functions.
* Direct derivation only: columns used only to filter, join, group or sort, a window's
  ``PARTITION BY`` / ``ORDER BY``, and the arguments of ``count`` / ``count_if`` /
  ``approx_count_distinct`` and of ranking functions (``rank``, ``row_number``...) are not
  dependencies; a column with no source (``count(*)``, literals, ``range``) is not listed.
* Sources: tables (V1, Hive, DataSource V2, Delta by name) and file relations read by path
  (classic: from the plan; Connect: from the physical plan's ``FileScan`` location, so a path
  abbreviated past ``spark.sql.maxMetadataStringLength``, 100 characters, or a scan that Photon
  replaced, is not known). Sources map to asset keys through ``assets`` like targets (the dict or
  callable, given the fully qualified table name or the path) but need not be in scope; a table
  ``assets`` does not name maps to the in-scope key equal to its trailing name parts, else to its
  bare table name; a path it does not name has no key. Multi-part keys travel as lists of parts.
* Left out rather than guessed: columns of rows whose origin is unknown (RDDs, checkpoints,
  ``mapInPandas`` and other plan nodes not listed above), of lateral subqueries, of plans whose
  printed text cannot be read unambiguously (e.g. a string literal with unbalanced brackets in a
  generated column name), of a path relation whose path is unknown; and the whole lineage of an
  asset when one of its writes is a ``MERGE`` / ``UPDATE`` / ``DELETE`` / ``COPY INTO`` (not
  traced) or, on Connect, could not be explained on exit (e.g. a temporary view dropped since).
  Several writes to one asset: per column, the union of their sources.

Partitions: :func:`partition_predicate` gives the SQL predicate selecting the partition(s) Dagster
asked for. In a partitioned run, a write *replaces exactly the partition(s) in scope* -- and its rows
become ``dagster/partition_row_count`` -- when it is

* an overwrite whose condition is that predicate (any order of terms, parentheses and spacing): Delta
  ``replaceWhere`` (classic and Connect), ``INSERT INTO ... REPLACE WHERE`` (Connect: from the SQL
  text), ``DataFrameWriterV2.overwrite(<condition>)`` (Connect: ``F.expr`` or column-literal
  comparisons);
* ``INSERT OVERWRITE ... PARTITION (<spec>)`` whose spec is the partition (``col = '<key>'`` per
  dimension; Connect needs every partition column in the spec);
* a dynamic partition overwrite (``partitionOverwriteMode=dynamic``; ``insertInto`` / ``save`` with
  ``partitionBy`` / ``overwritePartitions``) of data filtered with the predicate, when the filter
  pins every partition column of the target and the write wrote every partition of the scope
  (classic: Spark's ``numParts``; Connect: a scope of one partition and at least one row written).
  The filter is read from the analysed plan (classic) or the client's plan (Connect: ``where``
  with SQL text or column-literal comparisons), through projections that keep the column.

Anything else (appends, whole-table overwrites, filters after a join or an aggregation, an
unparseable condition) gets no ``dagster/partition_row_count``.

Asset checks: :func:`report_spark_checks` evaluates every check of an asset in one pass over the
data (one Spark action: a single aggregation, ``unique`` included; classic or Connect; nothing
cached) and reports each with ``report_asset_check``:

.. code-block:: python

    from dagster_pipes_spark.spark import (
        report_spark_checks, expect, not_null, unique, accepted_values, in_range, matches,
        relationships, expect_aggregate, row_count, fresh, has_columns, load_checks,
    )

    report_spark_checks(pipes, spark.table("main.sales.orders"), {
        "amount_non_negative": "amount >= 0",                  # same as expect("amount >= 0")
        "order_id_not_null":   not_null("order_id"),
        "order_id_unique":     unique("order_id"),
        "status_known":        accepted_values("status", ["new", "paid", "shipped"], severity="WARN"),
        "amount_in_range":     in_range("amount", min=0, max=10_000, max_failed_fraction=0.001),
        "email_valid":         matches("email", r"^[^@\\s]+@[^@\\s]+\\.[a-z]+$", where="country = 'DE'"),
        "customer_exists":     relationships("customer_id", to="main.sales.customers", field="id"),
        "revenue_positive":    expect_aggregate("sum(amount) > 0"),
        "enough_rows":         row_count(min=1000),
        "fresh":               fresh("updated_at", max_age=timedelta(days=1)),
        "contract":            has_columns({"order_id": "bigint", "amount": "decimal(10,2)"}),
    }, asset_key="orders")

or ``report_spark_writes(spark, pipes, checks={"orders": {...}})`` to run them on each asset's
written table on exit. Metadata of each check: ``definition`` (text), ``total_rows`` (int);
row-level checks add ``failed_rows`` (int), ``failed_fraction`` (float) and, when they fail,
``failed_rows_sample`` (table: up to ``sample_size`` failing rows, the columns the check reads
first; fetched with one more action for all failed checks); ``unique`` adds ``distinct_keys``;
``fresh`` adds ``newest`` (timestamp), ``age_seconds``, ``max_age_seconds``; ``has_columns`` adds
``missing_columns`` / ``mismatched_types`` (json); ``expect_aggregate`` adds ``value`` and
``aggregates`` (json: each aggregate it reads); a check that could not be evaluated has ``error``.
Every row-level check takes ``where=`` (only rows where the SQL predicate is TRUE are checked and
counted in ``total_rows``) and ``max_failed_rows=`` / ``max_failed_fraction=`` (it passes when
``failed_rows`` is within every one given; reported with ``where`` in the metadata).
``load_checks`` reads checks from YAML / JSON files, ours or DQX's. Bad input raises
``DagsterPipesError`` naming the check before any Spark job runs.
"""

from __future__ import annotations

from dagster_pipes_spark.spark._checks._evaluation import (
    CheckedSplit,
    apply_spark_checks,
    report_spark_checks,
    split_spark_checks,
)
from dagster_pipes_spark.spark._checks._files import load_checks
from dagster_pipes_spark.spark._checks._key_checks import relationships, unique
from dagster_pipes_spark.spark._checks._model import SparkCheck
from dagster_pipes_spark.spark._checks._results import SparkCheckResult
from dagster_pipes_spark.spark._checks._row_conditions import (
    accepted_values,
    expect,
    in_range,
    matches,
    not_null,
)
from dagster_pipes_spark.spark._checks._table_checks import expect_aggregate, fresh, has_columns, row_count
from dagster_pipes_spark.spark._partitions import partition_predicate
from dagster_pipes_spark.spark._session import report_spark_writes
from dagster_pipes_spark.spark._targets import AssetsArg
from dagster_pipes_spark.spark._write_record import SparkWrite
from dagster_pipes_spark.spark._write_report import SparkWriteReport

__all__ = [
    "AssetsArg",
    "CheckedSplit",
    "SparkCheck",
    "SparkCheckResult",
    "SparkWrite",
    "SparkWriteReport",
    "accepted_values",
    "apply_spark_checks",
    "expect",
    "expect_aggregate",
    "fresh",
    "has_columns",
    "in_range",
    "load_checks",
    "matches",
    "not_null",
    "partition_predicate",
    "relationships",
    "report_spark_checks",
    "report_spark_writes",
    "row_count",
    "split_spark_checks",
    "unique",
]
