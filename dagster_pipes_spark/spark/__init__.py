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

from dagster_pipes_spark.spark._record import SparkWrite, SparkWriteReport
from dagster_pipes_spark.spark._session import report_spark_writes
from dagster_pipes_spark.spark._targets import AssetsArg

__all__ = [
    "AssetsArg",
    "SparkWrite",
    "SparkWriteReport",
    "report_spark_writes",
]
