"""External side of the TPC-H workload tests: one Spark session (classic or Connect) with the Delta
jars, the eight TPC-H tables created outside the hooks (Parquet), then every query of the workload
written as a table inside ONE ``report_spark_writes`` block, once per variant of the ``variants``
extra (a format and a way of writing: CTAS or ``saveAsTable``), each variant's tables under its own
prefix. Each table is then read back and Spark's own row count (all tables in one job) and schema
sent as a custom message: the oracle the test compares the hooks' figures with.

One more write, of a plan the lineage reader does not read (a script transformation), checks that
such a write is still reported and that the warning names the node.

Extras: ``mechanism`` (classic / connect), ``variants`` (``[[prefix, format, style]]``), ``tmp``,
``jars`` (comma-separated).
"""

from __future__ import annotations

import faulthandler
import os
import time
import warnings
from typing import Any

from _job_exit import finish  # a sibling module (this directory is on sys.path)

from dagster_pipes_spark import open_dagster_pipes
from dagster_pipes_spark.spark import report_spark_writes
from dagster_pipes_spark.testing.tpch import WORKLOAD, create_tables

#: the write whose plan has a node no lineage rule reads (a DataFrame saved as a Parquet table: on
#: Connect, SQL writes get row counts from Delta commits only)
OPAQUE = "tpch_opaque"
OPAQUE_QUERY = "SELECT TRANSFORM(n_name, n_regionkey) USING 'cat' AS (name STRING, region STRING) FROM nation"


def session(mechanism: str, tmp: str, jars: list[str]) -> Any:
    from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF, make_spark_session
    from dagster_pipes_spark.testing.table_formats import spark_confs

    warnings.filterwarnings("ignore")
    java = f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} -Dderby.system.home={tmp}"
    delta = [j for j in jars if not os.path.basename(j).startswith("iceberg")]
    return make_spark_session(
        mechanism,
        {
            **spark_confs(delta),
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": java,
            "spark.databricks.delta.snapshotPartitions": "2",
        },
    )


def write(spark: Any, table: str, query: str, fmt: str, style: str) -> None:
    if style == "ctas":
        spark.sql(f"CREATE TABLE {table} USING {fmt} AS {query}")
    else:
        spark.sql(query).write.format(fmt).saveAsTable(table)


def main() -> None:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        # the job's bound: a hang ends the process with every thread's stack in stacks.txt (the
        # test prints it) instead of running into the test's timeout
        stacks = open(os.path.join(extras["tmp"], "stacks.txt"), "w")
        faulthandler.dump_traceback_later(int(extras.get("watchdog", 1500)), exit=True, file=stacks)
        started = time.perf_counter()
        jars = [j for j in extras.get("jars", "").split(",") if j]
        spark = session(extras["mechanism"], extras["tmp"], jars)
        if extras["mechanism"] == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        seconds = {"session": time.perf_counter() - started}
        sources = create_tables(spark)
        seconds["sources"] = time.perf_counter() - started - sum(seconds.values())
        written: list[str] = []
        with report_spark_writes(spark, pipes, timeout=120) as report:
            for prefix, fmt, style in extras["variants"]:
                for name, query in WORKLOAD.items():
                    write(spark, prefix + name, query, fmt, style)
                    written.append(prefix + name)
            write(spark, OPAQUE, OPAQUE_QUERY, "parquet", "save")
            written.append(OPAQUE)
        seconds["block"] = time.perf_counter() - started - sum(seconds.values())
        # Spark's count of every written table, in one job
        counts = spark.sql(
            " UNION ALL ".join(f"SELECT '{table}' AS t, count(*) AS n FROM {table}" for table in written)
        ).collect()
        rows = {row["t"]: row["n"] for row in counts}
        tables: dict[str, Any] = {}
        for table in written:
            schema = spark.table(table).schema
            tables[table] = {
                "rows": rows[table],
                "schema": [(f.name, f.dataType.simpleString()) for f in schema.fields],
            }
        seconds["read_back"] = time.perf_counter() - started - sum(seconds.values())
        pipes.log.info(
            "timings: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
            + f"; hooks {report.hook_seconds:.2f} s in {report.hook_calls} calls, exit {report.exit_seconds:.2f} s"
        )
        pipes.report_custom_message(
            {
                "tables": tables,
                "sources": sources,
                "mechanism": report.mechanism,
                "writes": len(report.writes),
                "seconds": seconds,
            }
        )
    faulthandler.cancel_dump_traceback_later()
    finish(spark)
    spark.stop()


if __name__ == "__main__":
    main()
