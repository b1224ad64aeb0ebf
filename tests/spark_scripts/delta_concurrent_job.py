"""External side of the concurrent-writers test: writers commit to ONE path-based Delta table in lock
step (a turn counter in a shared file), each inside its own ``report_spark_writes`` block.

Extras: ``tmp`` (this run's), ``shared`` (the directory both runs share: the table and the turn
file), ``jars``, ``writers``: ``[[asset, rows per commit, turn index], ...]`` — the first writer runs
on the main thread, the others on threads, each with its own ``spark.newSession()``; ``turns``: how
many writers take turns in total (across both processes); ``commits`` per writer.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import Any

from dagster_pipes_spark import open_dagster_pipes
from dagster_pipes_spark.spark import report_spark_writes


def _turn(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except FileNotFoundError:
        return 0


def _advance(path: str) -> None:
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        value = _turn(path) + 1
        with open(path + ".tmp", "w") as f:
            f.write(str(value))
        os.replace(path + ".tmp", path)


def writer(
    spark: Any,
    pipes: Any,
    table: str,
    turn_file: str,
    asset: str,
    rows: int,
    index: int,
    turns: int,
    commits: int,
) -> None:
    with report_spark_writes(spark, pipes, {table: asset}):
        for n in range(commits):
            deadline = time.monotonic() + 180
            while _turn(turn_file) != n * turns + index:  # wait for this writer's turn
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{asset}: turn {n * turns + index} never came")
                time.sleep(0.05)
            spark.range(rows).selectExpr("id", f"'{asset}' AS writer").write.format("delta").mode(
                "append"
            ).save(table)
            _advance(turn_file)


def main() -> None:
    from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF, make_spark_session
    from dagster_pipes_spark.testing.table_formats import spark_confs

    with open_dagster_pipes() as pipes:
        tmp, shared = pipes.extras["tmp"], pipes.extras["shared"]
        jars = [j for j in pipes.extras["jars"].split(",") if "iceberg" not in os.path.basename(j)]
        java = f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} -Dderby.system.home={tmp}"
        spark = make_spark_session(
            "classic",
            {
                **spark_confs(jars),
                "spark.sql.warehouse.dir": os.path.join(tmp, "wh"),
                "spark.driver.extraJavaOptions": java,
            },
        )
        spark.sparkContext.setLogLevel("ERROR")
        table = os.path.join(shared, "table")
        turn_file = os.path.join(shared, "turn")
        turns, commits = int(pipes.extras["turns"]), int(pipes.extras["commits"])
        errors: list[BaseException] = []

        def run(session: Any, spec: list[Any]) -> None:
            try:
                writer(session, pipes, table, turn_file, spec[0], int(spec[1]), int(spec[2]), turns, commits)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                errors.append(exc)

        first, *others = pipes.extras["writers"]
        threads = [threading.Thread(target=run, args=(spark.newSession(), spec)) for spec in others]
        for thread in threads:
            thread.start()
        run(spark, first)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        if pipes.extras.get("report_history"):
            while _turn(turn_file) < turns * commits:  # the other process's last commits
                time.sleep(0.1)
            history = [
                {
                    "version": int(r["version"]),
                    "rows": int(r["operationMetrics"]["numOutputRows"]),
                    "tag": r["userMetadata"],
                }
                for r in spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
                if r["operation"] == "WRITE"
            ]
            pipes.report_custom_message({"history": history})
        spark.stop()


if __name__ == "__main__":
    main()
