"""External side of the Spark write-hook tests: opens Pipes, starts Spark (classic or Connect,
from the ``mechanism`` extra), performs many kinds of writes inside ``report_spark_writes`` and
leaves the reporting to the hooks."""

from __future__ import annotations

import os
import warnings

# The ONE switch between the stock package and ours: ours once the core exports open_dagster_pipes.
try:
    import dagster_pipes_spark as pipes_lib

    pipes_lib.open_dagster_pipes  # noqa: B018
except (ImportError, AttributeError):
    import dagster_pipes as pipes_lib  # type: ignore[no-redef]

from dagster_pipes_spark.spark import report_spark_writes


def spark_session(mechanism: str, tmp: str):
    from dagster_pipes_spark.testing._notebook import make_spark_session

    warnings.filterwarnings("ignore")  # Connect warns about static confs it cannot re-set
    # Connect: a local server on a free port (`remote("local[2]")` always binds 15002, so two such jobs
    # at once collide)
    return make_spark_session(
        mechanism,
        {
            "spark.app.name": f"pipes-spark-hooks-{mechanism}",
            "spark.sql.shuffle.partitions": "2",
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp}",
            "spark.sql.codegen.wholeStage": "true",
            # a real DataSource V2 catalog (JDBC over in-memory Derby) for DataFrameWriterV2.append
            "spark.sql.catalog.jdbc": "org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog",
            "spark.sql.catalog.jdbc.url": "jdbc:derby:memory:pipes_hooks;create=true",
        },
    )


def main() -> None:
    with pipes_lib.open_dagster_pipes() as pipes:
        mechanism = pipes.extras["mechanism"]
        tmp = pipes.extras["tmp"]
        pipes.log.info(f"pipes library: {pipes_lib.__name__}")
        spark = spark_session(mechanism, tmp)
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        rows = spark.range(10).selectExpr(
            "id", "concat('n', id) AS name", "CAST(id AS DOUBLE) * 1.5 AS amount"
        )
        few = rows.limit(5)
        out = os.path.join(tmp, "out")
        # set-up outside the hooks: nothing here may be reported
        spark.sql("CREATE TABLE sql_insert_target (id BIGINT, name STRING) USING parquet")
        few.write.parquet(os.path.join(out, "already_there"))
        pipes.report_asset_materialization(asset_key="manual", metadata={"by": "user"})

        assets = {
            os.path.join(out, "events_parquet"): "events_parquet",
            os.path.join(out, "events_json"): "events_json",
            "file:" + os.path.join(out, "events_csv") + "/": "events_csv",  # any spelling of the path
            os.path.join(out, "already_there"): "failed_target",
            "spark_catalog.default.sql_insert_target": "sql_insert",  # fully qualified key
        }
        with report_spark_writes(spark, pipes, assets) as report:
            rows.write.saveAsTable("orders")  # default rule: table name == asset key
            few.write.mode("overwrite").parquet(os.path.join(out, "events_parquet"))
            few.write.json(os.path.join(out, "events_json"))
            few.write.option("header", True).csv(os.path.join(out, "events_csv"))
            rows.write.saveAsTable("customers")  # two writes to one asset ...
            rows.limit(3).write.insertInto("customers")  # ... aggregated into one report
            spark.sql("CREATE TABLE ctas_table USING parquet AS SELECT id, name FROM orders WHERE id < 4")
            spark.sql("INSERT INTO sql_insert_target SELECT id, name FROM orders WHERE id >= 7")
            rows.writeTo("v2_created").using("parquet").create()
            rows.writeTo("jdbc.APP.V2_JDBC").create()
            rows.writeTo("jdbc.APP.V2_JDBC").append()
            try:
                few.write.mode("error").parquet(os.path.join(out, "already_there"))
            except Exception:  # noqa: BLE001 - Spark's AnalysisException class differs by mechanism
                pipes.log.info("the failing write failed, as planned")
            few.write.saveAsTable("scratch_tmp")  # not an asset of this step
            few.write.saveAsTable("manual")  # the job reported this asset itself
        pipes.log.info(
            f"hooks: mechanism={report.mechanism} writes={len(report.writes)}"
            f" failed={len(report.failed_writes)} reported={sorted(report.materializations)}"
        )
        robustness(spark, pipes, mechanism, few, out)
        spark.stop()


def hooks_installed(spark, mechanism: str) -> int:
    """Query listeners registered on the session (classic) / whether the writers are wrapped (Connect)."""
    if mechanism == "classic":
        return len(spark._jsparkSession.listenerManager().listListeners())
    from dagster_pipes_spark.spark import _connect as _spark_connect

    return int(_spark_connect.is_instrumented())


def robustness(spark, pipes, mechanism: str, few, out: str) -> None:
    """A hook that raises must not break the write; hooks go away also when the block raises."""
    from unittest import mock

    from dagster_pipes_spark.spark._classic import _backend as _classic_backend
    from dagster_pipes_spark.spark._connect import _patches as _connect_patches

    before = hooks_installed(spark, mechanism)
    # where each mechanism looks the write up: the listener's reader, the wrapped writer's reader
    target = (
        (_classic_backend, "write_from_plan") if mechanism == "classic" else (_connect_patches, "v1_write")
    )
    with (
        mock.patch.object(*target, side_effect=RuntimeError("injected hook failure")),
        report_spark_writes(spark, pipes, {os.path.join(out, "robust"): "orders"}),
    ):
        inside = hooks_installed(spark, mechanism)
        few.write.mode("overwrite").parquet(os.path.join(out, "robust"))
    written = len(spark.read.parquet(os.path.join(out, "robust")).collect())
    try:
        with report_spark_writes(spark, pipes):
            raise ValueError("the job failed")
    except ValueError:
        pass
    after = hooks_installed(spark, mechanism)
    pipes.log.info(f"cleanup: before={before} inside={inside} after={after} robust_rows={written}")


if __name__ == "__main__":
    main()
