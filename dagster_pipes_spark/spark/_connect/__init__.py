"""Spark Connect (Databricks standard/shared access mode, serverless, ``builder.remote(...)``): no
listener API is reachable, so the Python writer classes are instrumented instead.

* ``DataFrameWriter.save`` / ``insertInto`` / ``saveAsTable`` (``parquet``, ``json``, ``csv``,
  ``orc``, ``text``, ``jdbc``... all go through ``save``), ``DataFrameWriterV2.create`` /
  ``replace`` / ``createOrReplace`` / ``append`` / ``overwrite`` / ``overwritePartitions``,
  ``MergeIntoWriter.merge`` and ``SparkSession.sql`` (statement parsed for INSERT / CTAS / RTAS /
  MERGE / UPDATE / DELETE / COPY INTO) are wrapped at class level while at least one
  :func:`report_spark_writes` block is open on a Connect session, and restored afterwards.
* Row counts of DataFrame writes come from a string-named observation (``count(1)`` in a
  ``CollectMetrics`` node on top of the written plan) whose value the server returns with the write
  command's ExecutionInfo (Spark 4 clients; Spark 3.5 clients drop it, so their client's fetch is
  instrumented to keep it): no second job, no wait (an ``Observation`` object would wait for the
  server's listener bus, ~0.1 s per write). A server that sends no observed metrics of commands
  (before Spark 4) gives no row count, and a debug log says why. SQL writes get
  theirs from their Delta commits only, read on exit (``_delta``).
* On exit, table names are qualified and schemas read with one ``DESCRIBE TABLE EXTENDED`` per
  table; path writes take the written DataFrame's schema.
* Column lineage: the written DataFrame's plan (when it reads anything but local data) or the SQL
  statement is kept, and explained on exit (``EXPLAIN EXTENDED``: analysis and planning on the
  server, no job), once per distinct plan, concurrently; the analysed plan is read by ``_lineage``.
  A SQL ``MERGE`` is explained with its source (``SELECT * FROM <source>``): Delta's analysed
  ``MergeIntoCommand`` prints its actions but not its source plan.

One concept per module: ``_registry`` (the open blocks' backends), ``_patches`` (wrapping the classes),
``_writers`` / ``_sql`` (the write a call performs), ``_observation`` (row counts), ``_facts`` (the
plan-facts adapter over client plans), ``_partitions``, ``_backend`` (what is read on exit).
"""

from dagster_pipes_spark.spark._connect._backend import ConnectBackend
from dagster_pipes_spark.spark._connect._patches import is_instrumented

__all__ = ["ConnectBackend", "is_instrumented"]
