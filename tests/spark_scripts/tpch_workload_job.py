"""External side of the TPC-H workload tests: one Spark session (classic or Connect, Parquet or
Delta), the eight TPC-H tables created outside the hooks, then every query of the workload written
as a table inside ONE ``report_spark_writes`` block, by CTAS or ``saveAsTable``. Each table is then
read back and its true row count and schema sent as a custom message: the oracle the test compares
the hooks' figures with.

Extras: ``mechanism`` (classic / connect), ``fmt`` (parquet / delta), ``style`` (ctas / save),
``tmp``, ``jars`` (comma-separated; Delta only). One more write, of a plan the lineage reader does not
read, checks that such a write is still reported and the warning names the node.
"""

from __future__ import annotations

import faulthandler
import os
import warnings
from typing import Any

from _job_exit import finish  # a sibling module (this directory is on sys.path)

from dagster_pipes_spark import open_dagster_pipes
from dagster_pipes_spark.spark import report_spark_writes
from dagster_pipes_spark.testing.tpch import WORKLOAD, create_tables

PREFIX = "tpch_"
#: one more write in the block, whose plan the lineage reader cannot read (no rule for a script
#: transformation): still reported (rows, schema), its lineage left out with a warning naming the node
OPAQUE = "opaque"
OPAQUE_QUERY = "SELECT TRANSFORM(n_name, n_regionkey) USING 'cat' AS (name STRING, region STRING) FROM nation"


def session(mechanism: str, fmt: str, tmp: str, jars: list[str]) -> Any:
    from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF, make_spark_session
    from dagster_pipes_spark.testing.table_formats import spark_confs

    warnings.filterwarnings("ignore")
    java = f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} -Dderby.system.home={tmp}"
    delta = [j for j in jars if not os.path.basename(j).startswith("iceberg")]
    confs = spark_confs(delta) if fmt == "delta" else {}
    return make_spark_session(
        mechanism,
        {
            **confs,
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": java,
            "spark.databricks.delta.snapshotPartitions": "2",
        },
    )


def write(spark: Any, name: str, query: str, fmt: str, style: str) -> None:
    if style == "ctas":
        spark.sql(f"CREATE TABLE {PREFIX}{name} USING {fmt} AS {query}")
    else:
        spark.sql(query).write.format(fmt).saveAsTable(f"{PREFIX}{name}")


def main() -> None:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        # the job's bound: a hang ends the process with every thread's stack in stacks.txt (the
        # test prints it) instead of running into the test's timeout
        stacks = open(os.path.join(extras["tmp"], "stacks.txt"), "w")
        faulthandler.dump_traceback_later(int(extras.get("watchdog", 600)), exit=True, file=stacks)
        fmt, style = extras["fmt"], extras["style"]
        jars = [j for j in extras.get("jars", "").split(",") if j]
        spark = session(extras["mechanism"], fmt, extras["tmp"], jars)
        if extras["mechanism"] == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        sources = create_tables(spark, fmt=fmt)
        with report_spark_writes(spark, pipes, timeout=120) as report:
            for name, query in WORKLOAD.items():
                write(spark, name, query, fmt, style)
            write(spark, OPAQUE, OPAQUE_QUERY, fmt, style)
        tables: dict[str, Any] = {}
        for name in [*WORKLOAD, OPAQUE]:
            frame = spark.table(f"{PREFIX}{name}")
            tables[name] = {
                "rows": frame.count(),
                "schema": [(f.name, f.dataType.simpleString()) for f in frame.schema.fields],
            }
        pipes.report_custom_message(
            {
                "tables": tables,
                "sources": sources,
                "mechanism": report.mechanism,
                "writes": len(report.writes),
            }
        )
    faulthandler.cancel_dump_traceback_later()
    finish(spark)
    spark.stop()


if __name__ == "__main__":
    main()
