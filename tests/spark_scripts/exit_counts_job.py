"""External side of ``tests/test_exit_round_trips.py``: what leaving ``report_spark_writes`` asks
Spark, for 1 and for 10 table targets, Parquet and Delta, on one session (classic or Spark Connect).

Each block creates each of its tables with one write (``saveAsTable``, a different query over one
source table each), all in scope as assets ``<format>_<size>_<i>``. Around the exit only, Spark Connect
requests are counted on the client (``testing.spark_calls``) and jobs on the local driver's
``DAGScheduler`` (on Connect: the server's); the counts go back as one custom message.

The Parquet blocks run with the exit's look-ups in chunks of ``PARQUET_CHUNK`` tables / plans (so 10
targets make 3 chunks: the requests grow as ceil(n / chunk)); the Delta blocks with the default chunk
(10 targets: one chunk, the same requests as 1 target).

Extras: ``mechanism`` (classic / connect), ``tmp``, ``jars`` (comma-separated Delta jars).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from _job_exit import finish  # a sibling module (this directory is on sys.path)

from dagster_pipes_spark import open_dagster_pipes
from dagster_pipes_spark.spark import _parallel, report_spark_writes
from dagster_pipes_spark.testing.spark_calls import count_connect_requests, submitted_jobs

SIZES = (1, 10)
FORMATS = ("parquet", "delta")
PARQUET_CHUNK = 4


def session(mechanism: str, tmp: str, jars: list[str]) -> Any:
    from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF, make_spark_session
    from dagster_pipes_spark.testing.table_formats import spark_confs

    warnings.filterwarnings("ignore")
    java = f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} -Dderby.system.home={tmp}"
    return make_spark_session(
        mechanism,
        {
            **spark_confs(jars),
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": java,
            "spark.sql.shuffle.partitions": "1",
        },
    )


def main() -> Any:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        connect = extras["mechanism"] == "connect"
        spark = session(extras["mechanism"], extras["tmp"], [j for j in extras["jars"].split(",") if j])
        spark.range(5).selectExpr(
            "id", "CAST(id AS STRING) AS name", "CAST(id * 0.5 AS DOUBLE) AS score"
        ).write.saveAsTable("src")
        counts: dict[str, dict[str, Any]] = {}
        default_chunk = _parallel.CHUNK
        for fmt in FORMATS:
            _parallel.CHUNK = PARQUET_CHUNK if fmt == "parquet" else default_chunk
            for size in SIZES:
                names = [f"{fmt}_{size}_{i}" for i in range(size)]
                block = report_spark_writes(spark, pipes, {n: n for n in names})
                report = block.__enter__()
                for i, name in enumerate(names):
                    frame = spark.table("src").selectExpr(
                        "id", "name", f"CAST(score * {i + 1} AS DOUBLE) AS score"
                    )
                    frame.write.format(fmt).saveAsTable(name)
                jobs = submitted_jobs()
                if connect:
                    with count_connect_requests(spark) as requests:
                        block.__exit__(None, None, None)
                    by_kind: dict[str, int] = requests.snapshot()
                else:
                    block.__exit__(None, None, None)
                    by_kind = {}
                counts[f"{fmt}/{size}"] = {
                    "jobs": submitted_jobs() - jobs,
                    "requests": by_kind,
                    "reported": len(report.materializations),
                }
        _parallel.CHUNK = default_chunk
        pipes.report_custom_message(
            {"counts": counts, "chunk": {"parquet": PARQUET_CHUNK, "delta": default_chunk}}
        )
    return spark


if __name__ == "__main__":
    finish(main())
