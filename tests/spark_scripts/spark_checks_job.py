"""External side of the Spark checks tests: opens Pipes, starts Spark (classic or Connect, from the
``mechanism`` extra), builds data with known numbers of NULLs, duplicates, out-of-range and unknown
values, and reports checks with ``report_spark_checks`` and ``report_spark_writes(checks=...)``.

On classic Spark it also counts the jobs each call starts (a job group and ``statusTracker``, with
adaptive execution off so that one action is one job) and sends the counts as a custom message.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from typing import Any
from unittest import mock

import dagster_pipes_spark as pipes_lib
from dagster_pipes_spark import DagsterPipesError
from dagster_pipes_spark.spark import (
    accepted_values,
    expect,
    expect_aggregate,
    fresh,
    has_columns,
    in_range,
    load_checks,
    matches,
    not_null,
    relationships,
    report_spark_checks,
    report_spark_writes,
    row_count,
    unique,
)
from dagster_pipes_spark.testing._notebook import make_spark_session

# order_id, customer, amount, status, hours before `now` of updated_at (None: NULL)
ORDERS: list[tuple[Any, ...]] = [
    (1, "a", "10.50", "new", 1),
    (1, "a", "11.00", "paid", 2),  # order 1 three times: two rows beyond the first
    (1, "b", "-3.00", "paid", 3),  # negative amount
    (2, "c", "5.00", "shipped", 4),
    (2, "c", "6.00", "lost", 5),  # order 2 twice; unknown status
    (3, "d", None, "new", 6),  # NULL amount
    (4, "e", "7.25", "returned", None),  # unknown status
    (5, "f", "-0.01", "new", 8),  # negative amount
    (6, "g", "1.00", None, 9),  # NULL status
    (7, "h", "2.00", "paid", 10),
    (8, "i", "3.00", "shipped", 11),
    (9, "j", "4.00", "new", None),
    (10, "k", "5.00", None, 13),  # NULL status
    (11, "l", "6.00", "paid", 14),
    (12, "m", "7.00", "shipped", 15),
    (13, "n", "8.00", "new", 16),
    (14, None, "9.00", "paid", 17),  # NULL customer: not counted by unique(order_id, customer)
    (None, "o", "1.00", "new", 18),  # three NULL order ids
    (None, "p", "2.00", "paid", 19),
    (None, "q", "3.00", "shipped", 20),
]

ORDER_CHECKS: dict[str, Any] = {
    "amount_non_negative": "amount >= 0",
    "order_id_not_null": not_null("order_id"),
    "order_id_unique": unique("order_id"),
    "order_customer_unique": unique("order_id", "customer", severity="WARN"),
    "status_known": accepted_values("status", ["new", "paid", "shipped"], severity="WARN"),
    "enough_rows": row_count(min=1000),
    "not_too_many_rows": row_count(max=100),
    "fresh_day": fresh("updated_at", max_age=timedelta(days=1)),
    "fresh_minute": fresh("updated_at", max_age=60),
    "contract": has_columns({"order_id": "bigint", "amount": "decimal(10,2)"}),
    "contract_strict": has_columns({"order_id": "int", "missing_col": None, "status": "STRING"}),
    "small_amounts": expect("amount < 100", severity="WARN", description="no order above 100"),
}


def _sql(value: Any) -> str:
    return "NULL" if value is None else (repr(value) if isinstance(value, str) else str(value))


def orders_frame(spark: Any, now: int) -> Any:
    rows = ", ".join(
        "(" + ", ".join(_sql(v) for v in (*row[:4], None if row[4] is None else now - 3600 * row[4])) + ")"
        for row in ORDERS
    )
    return spark.sql(f"SELECT * FROM VALUES {rows} AS t(order_id, customer, amount, status, ts)").selectExpr(
        "CAST(order_id AS BIGINT) AS order_id",
        "customer",
        "CAST(amount AS DECIMAL(10,2)) AS amount",
        "status",
        "timestamp_seconds(ts) AS updated_at",
    )


def sparse_frame(spark: Any) -> Any:
    """10 rows; ``note`` NULL in 9, ``score`` NULL in 8 (and -1 once), ``code`` NULL in all."""
    return spark.range(1, 11).selectExpr(
        "id",
        "IF(id = 1, 'only', NULL) AS note",
        "CASE id WHEN 1 THEN 5 WHEN 2 THEN -1 END AS score",
        "CAST(NULL AS STRING) AS code",
    )


class JobCounter:
    """Spark jobs started inside a block (classic): a job group and the status tracker."""

    def __init__(self, spark: Any, label: str) -> None:
        self.sc = spark.sparkContext
        self.label = label
        self.jobs = -1

    def __enter__(self) -> JobCounter:
        self.sc.setJobGroup(self.label, self.label)
        return self

    def __exit__(self, *exc: object) -> None:
        self.jobs = len(self.sc.statusTracker().getJobIdsForGroup(self.label))
        self.sc.setLocalProperty("spark.jobGroup.id", None)


def count_jobs(spark: Any, pipes: Any, orders: Any) -> dict[str, int]:
    """Jobs per call on classic Spark, adaptive execution off (with it on, every shuffle stage of
    an action runs as a job of its own)."""
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    clean = clean_frame(spark, 0)
    counts: dict[str, int] = {}
    try:
        with JobCounter(spark, "checks_all_pass") as counter:
            report_spark_checks(mock.MagicMock(), clean, CLEAN_CHECKS)
        counts["all_pass"] = counter.jobs
        with JobCounter(spark, "hand_written_loop") as counter:
            for condition in ("id < 0", "id IS NULL", "bucket NOT IN (0, 1, 2, 3, 4, 5, 6)", "label IS NULL"):
                clean.filter(condition).count()
        counts["loop_of_4"] = counter.jobs
        with JobCounter(spark, "failing_row_checks") as counter:
            report_spark_checks(
                mock.MagicMock(), orders, {"neg": "amount >= 0", "status": accepted_values("status", ["new"])}
            )
        counts["failing_with_sample"] = counter.jobs
        with JobCounter(spark, "failing_no_sample") as counter:
            report_spark_checks(mock.MagicMock(), orders, {"neg": "amount >= 0"}, sample_size=0)
        counts["failing_sample_size_0"] = counter.jobs
        with JobCounter(spark, "schema_only") as counter:
            report_spark_checks(mock.MagicMock(), orders, {"contract": has_columns(["order_id"])})
        counts["schema_only"] = counter.jobs
        # every kind at once, relationships to a table and to a DataFrame included; broadcast joins
        # off, so that the distinct keys of `to` are read inside the one job, not in broadcast jobs
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
        with JobCounter(spark, "every_kind") as counter:
            results = report_spark_checks(
                mock.MagicMock(), sales_frame(spark), sales_checks(spark), sample_size=0
            )
        counts["every_kind_sample_size_0"] = counter.jobs
        counts["every_kind_failed"] = sum(not r.passed for r in results.values())
        with JobCounter(spark, "relationships_and_aggregate") as counter:
            report_spark_checks(
                mock.MagicMock(),
                sales_frame(spark),
                {
                    "customer": relationships("customer_id", to="customers", field="id", max_failed_rows=4),
                    "revenue": expect_aggregate("sum(amount) > 0"),
                },
            )
        counts["relationships_and_aggregate"] = counter.jobs
        with JobCounter(spark, "unique_with_others") as counter:
            report_spark_checks(mock.MagicMock(), orders, mixed_checks(spark), sample_size=0)
        counts["unique_with_others"] = counter.jobs
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", "true")
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    return counts


EMAIL = r"^[^@\s]+@[^@\s]+\.[a-z]+$"


def mixed_checks(spark: Any) -> dict[str, Any]:
    """``unique`` checks (each counted by a grouping of its own, in the one action) among row-level
    checks, a string ``relationships`` (joined on the keys' hash) whose ``to`` repeats keys."""
    statuses = spark.createDataFrame([("new",), ("paid",), ("paid",), (None,), ("shipped",)], "code string")
    return {
        "order_unique": unique("order_id"),
        "order_customer_unique": unique("order_id", "customer"),
        "order_unique_paid": unique("order_id", where="status = 'paid' OR amount < 0"),
        "customer_status_unique": unique("customer", "status", where="order_id > 1"),
        "status_exists": relationships("status", to=statuses, field="code"),
        "status_exists_paid": relationships("status", to=statuses, field="code", where="amount > 5"),
        "customer_not_null": not_null("customer"),
        "customer_lower": matches("customer", "^[a-z]$"),
    }


def unique_against_distinct(spark: Any, orders: Any) -> dict[str, list[int]]:
    """Per check of :func:`mixed_checks`: ``[failed_rows, reference]``, the reference computed by hand
    (``unique``: rows in scope with a complete key minus ``count(DISTINCT key)``; ``relationships``:
    a left anti join), plus ``distinct_keys`` against ``count(DISTINCT key)``."""
    results = report_spark_checks(mock.MagicMock(), orders, mixed_checks(spark), sample_size=0)
    keys = {
        "order_unique": (["order_id"], "true"),
        "order_customer_unique": (["order_id", "customer"], "true"),
        "order_unique_paid": (["order_id"], "status = 'paid' OR amount < 0"),
        "customer_status_unique": (["customer", "status"], "order_id > 1"),
    }
    out: dict[str, list[int]] = {}
    for name, (columns, where) in keys.items():
        scoped = orders.where(f"coalesce(({where}), false)")
        complete = " AND ".join(f"{c} IS NOT NULL" for c in columns)
        keyed, distinct = scoped.selectExpr(
            f"count_if({complete})", f"count(DISTINCT {', '.join(columns)})"
        ).collect()[0]
        r = results[name]
        ours = [r.failed_rows or 0, r.metadata["distinct_keys"]["raw_value"]]
        out[name] = [ours[0], keyed - distinct, ours[1], distinct]
    codes = spark.createDataFrame([("new",), ("paid",), ("shipped",)], "code string")
    for name, where in (("status_exists", "true"), ("status_exists_paid", "amount > 5")):
        scoped = orders.where(f"coalesce(({where}), false) AND status IS NOT NULL")
        missing = scoped.join(codes, scoped["status"] == codes["code"], "left_anti").count()
        out[name] = [results[name].failed_rows or 0, missing]
    return out


def sales_frame(spark: Any) -> Any:
    """20 sales (``i`` = 1..20; odd ``i`` in DE, even in FR). Amount ``100 * i`` except -5 (i=3),
    20000 (i=8) and NULL (i=9); email ``u<i>@shop.de`` except 'bad-email' (i=1), 'x@y' (i=2), NULL
    (i=5), 'u13@shop.DE' (i=13); customer ``i % 6 + 1`` (6 is unknown: i=5, 11, 17) except 99
    (i=12) and NULL (i=18); sale id ``i`` except 19 twice (i=19, 20)."""
    return spark.range(1, 21).selectExpr(
        "IF(id = 20, 19, id) AS sale_id",
        "CASE id WHEN 12 THEN 99 WHEN 18 THEN NULL ELSE id % 6 + 1 END AS customer_id",
        "CASE id WHEN 3 THEN -5.0 WHEN 8 THEN 20000.0 WHEN 9 THEN NULL ELSE id * 100.0 END AS amount",
        "CASE id WHEN 1 THEN 'bad-email' WHEN 2 THEN 'x@y' WHEN 5 THEN NULL WHEN 13 THEN 'u13@shop.DE'"
        " ELSE concat('u', id, '@shop.de') END AS email",
        "IF(id % 2 = 1, 'DE', 'FR') AS country",
    )


def sales_checks(spark: Any) -> dict[str, Any]:
    known = spark.range(1, 7).selectExpr("id AS customer_id")  # a DataFrame with the same column name
    de = "country = 'DE'"
    return {
        "amount_in_range": in_range("amount", min=0, max=10_000),
        "amount_in_range_tolerant": in_range("amount", min=0, max=10_000, max_failed_fraction=0.1),
        "amount_in_range_rows": in_range("amount", min=0, max=10_000, max_failed_rows=1),
        "amount_in_range_de": in_range("amount", min=0, max=10_000, where=de),
        "email_valid": matches("email", EMAIL),
        "email_valid_de": matches("email", EMAIL, where=de),
        "email_valid_de_warn": matches("email", EMAIL, where=de, max_failed_rows=2, severity="WARN"),
        "customer_exists": relationships("customer_id", to="customers", field="id"),
        "customer_exists_de": relationships("customer_id", to="customers", field="id", where=de),
        "customer_known": relationships("customer_id", to=known),
        "sale_id_unique": unique("sale_id"),
        "sale_id_unique_fr": unique("sale_id", where="country = 'FR'"),
        "email_present": not_null("email", max_failed_rows=10, severity="WARN"),
        "big_sales_de": accepted_values("country", ["DE"], where="amount > 1000"),
        "fr_mostly_large": expect("amount >= 1000", where="country = 'FR'", max_failed_fraction=0.5),
        "revenue_positive": expect_aggregate("sum(amount) > 0"),
        "no_huge_sale": expect_aggregate("count_if(amount > 10000) = 0 AND max(amount) <= 10000"),
        "average_small": expect_aggregate("avg(amount) < 100", severity="WARN"),
    }


CLEAN_CHECKS: dict[str, Any] = {
    "id_non_negative": "id >= 0",
    "id_not_null": not_null("id"),
    "id_unique": unique("id"),
    "bucket_label_unique": unique("bucket", "label"),
    "bucket_known": accepted_values("bucket", [0, 1, 2, 3, 4, 5, 6]),
    "exact_rows": row_count(min=1000, max=1000),
    "fresh": fresh("ts", max_age=timedelta(hours=1)),
    "contract": has_columns(["id", "bucket", "label", "ts"]),
}


def clean_frame(spark: Any, now: int) -> Any:
    return spark.range(1000).selectExpr(
        "id", "id % 7 AS bucket", "CAST(id AS STRING) AS label", f"timestamp_seconds({now} - id) AS ts"
    )


def bad_inputs(spark: Any, pipes: Any, orders: Any) -> dict[str, str]:
    """Each bad call's DagsterPipesError message (nothing may run on Spark, nothing be reported)."""
    cases: dict[str, tuple[Any, Any]] = {
        "does_not_parse": (orders, {"broken": "amount >= "}),
        "unknown_column": (orders, {"typo": "amountt >= 0", "fine": not_null("order_id")}),
        "not_boolean": (orders, {"sum": "amount + 1"}),
        "unknown_severity": (orders, {"sev": not_null("order_id", severity="FATAL")}),
        "empty_mapping": (orders, {}),
        "not_a_check": (orders, {"answer": 42}),
        "fresh_not_a_time": (orders, {"stale": fresh("status", max_age=60)}),
        "missing_table": ("no_such_table", {"rows": row_count(min=1)}),
        "unknown_asset": (orders, {"rows": row_count(min=1)}),
        "no_asset_key": (orders, {"rows": row_count(min=1)}),
        "negative_threshold": (orders, {"neg": not_null("order_id", max_failed_rows=-1)}),
        "fraction_above_one": (orders, {"frac": in_range("amount", min=0, max_failed_fraction=1.5)}),
        "where_does_not_parse": (orders, {"scoped": not_null("order_id", where="status = ")}),
        "where_not_boolean": (orders, {"scoped": unique("order_id", where="amount")}),
        "not_an_aggregate": (orders, {"agg": expect_aggregate("amount > 0")}),
        "aggregate_not_boolean": (orders, {"agg": expect_aggregate("sum(amount)")}),
        "unknown_to_table": (orders, {"fk": relationships("customer", to="no_such_customers")}),
        "unknown_to_column": (orders, {"fk": relationships("customer", to="customers", field="nope")}),
        "unknown_fk_column": (orders, {"fk": relationships("customerr", to="customers", field="name")}),
    }
    out: dict[str, str] = {}
    for case, (data, checks) in cases.items():
        key = {"unknown_asset": "not_an_asset", "no_asset_key": None}.get(case, "orders")
        try:
            report_spark_checks(pipes, data, checks, asset_key=key, spark=spark)
        except DagsterPipesError as exc:
            out[case] = str(exc)
        else:
            out[case] = "no error"
    return out


def main() -> None:
    warnings.filterwarnings("ignore")
    with pipes_lib.open_dagster_pipes() as pipes:
        mechanism = pipes.extras["mechanism"]
        tmp = pipes.extras["tmp"]
        now = int(pipes.extras["now"])
        spark = make_spark_session(mechanism, {"spark.sql.warehouse.dir": os.path.join(tmp, "warehouse")})
        orders = orders_frame(spark, now)
        spark.sql("CREATE TABLE empty_src (id BIGINT, status STRING, updated_at TIMESTAMP) USING parquet")
        customers = spark.range(1, 6).selectExpr("CAST(id AS INT) AS id", "concat('c', id) AS name")
        customers.write.saveAsTable("customers")  # INT ids; the sales' customer_id is BIGINT

        jobs: dict[str, int] = {}
        if mechanism == "classic":
            with JobCounter(spark, "bad_inputs") as counter:
                bad = bad_inputs(spark, pipes, orders)
            jobs["bad_inputs"] = counter.jobs
            jobs.update(count_jobs(spark, pipes, orders))
        else:
            bad = bad_inputs(spark, pipes, orders)

        uniques = unique_against_distinct(spark, orders)
        results = report_spark_checks(pipes, orders, ORDER_CHECKS, asset_key="orders")
        pipes.log.info("orders: " + ", ".join(f"{n}={r.passed}" for n, r in results.items()))
        report_spark_checks(
            pipes,
            "empty_src",
            {
                "id_not_null": not_null("id"),
                "id_unique": unique("id"),
                "id_positive": "id > 0",
                "status_known": accepted_values("status", ["new"]),
                "has_rows": row_count(min=1),
                "fresh": fresh("updated_at", max_age=timedelta(days=1)),
            },
            asset_key="empty",
            spark=spark,
        )
        report_spark_checks(
            pipes,
            sparse_frame(spark),
            {
                "note_not_null": not_null("note"),
                "note_unique": unique("note"),
                "id_note_not_null": not_null("id", "note"),
                "id_note_unique": unique("id", "note"),
                "score_positive": "score > 0",
                "code_known": accepted_values("code", ["x", "y"]),
            },
            asset_key="sparse",
        )
        report_spark_checks(
            pipes,
            spark.sql("SELECT * FROM VALUES ('1'), ('2'), ('x'), ('4') AS t(code)"),
            {
                "code_not_null": not_null("code"),
                "code_positive": "CAST(code AS INT) > 0",  # analyzes, then fails on 'x' (ANSI cast)
                "four_rows": row_count(min=4, max=4),
            },
            asset_key="risky",
        )
        report_spark_checks(pipes, clean_frame(spark, now), CLEAN_CHECKS, asset_key="clean")
        sales = report_spark_checks(pipes, sales_frame(spark), sales_checks(spark), asset_key="sales")
        rules = load_checks(os.path.join(tmp, "dqx_rules.yml"))
        report_spark_checks(pipes, sales_frame(spark), rules, asset_key="sales_rules")
        report_spark_checks(
            pipes, sales_frame(spark), load_checks(os.path.join(tmp, "checks.json")), asset_key="sales_json"
        )
        unreadable = spark.range(3).selectExpr("IF(id >= 0, raise_error('source unreadable'), id) AS n")
        try:  # no check needing the data can run: the schema check is reported, then the call raises
            report_spark_checks(
                pipes,
                unreadable,
                {"n_not_null": not_null("n"), "n_positive": "n > 0", "n_column": has_columns(["n"])},
                asset_key="broken",
            )
        except DagsterPipesError as exc:
            bad["nothing_evaluable"] = str(exc)

        written_checks = {
            "written": {"rows": row_count(min=5), "ids": unique("id"), "bad_column": expect("nope > 0")},
            "unwritten": {"rows": row_count(min=1)},
        }
        with report_spark_writes(spark, pipes, checks=written_checks) as report:
            spark.range(6).selectExpr("id", "id * 2 AS twice").write.saveAsTable("written")
        pipes.report_custom_message(
            {
                "bad": bad,
                "jobs": jobs,
                "uniques": uniques,
                "report_checks": {key: sorted(checks) for key, checks in report.checks.items()},
                "orders_results": {
                    name: [r.passed, r.failed_rows, r.total_rows, len(r.sample)]
                    for name, r in results.items()
                },
                "sales_samples": {name: r.sample for name, r in sales.items() if r.sample},
                "rules": {name: check.definition for name, check in rules.items()},
            }
        )
        spark.stop()


if __name__ == "__main__":
    main()
