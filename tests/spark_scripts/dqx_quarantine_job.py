"""Quarantine as a DQX user does it, inside ``report_spark_writes``: ``split_spark_checks`` with DQX
rules, the valid rows written to ``orders`` and the flagged ones (with DQX's ``_errors`` /
``_warnings``) to ``orders_quarantine``; then ``apply_spark_checks`` on the same rows.

A rule calls a Python function counting the rows it evaluates (classic: an accumulator), so the test
can see the conditions evaluated once for the checks and both writes. Extras: ``mechanism``,
``tmp``. The custom message has what the tables hold, read back.
"""

from __future__ import annotations

import os
import warnings

import dagster_pipes_spark as pipes_lib
from dagster_pipes_spark.spark import apply_spark_checks, load_checks, report_spark_writes, split_spark_checks
from dagster_pipes_spark.testing._notebook import make_spark_session

ROWS = 100
RULES = [
    {"criticality": "error", "check": {"function": "is_not_null", "arguments": {"column": "email"}}},
    {
        "criticality": "warn",
        "check": {"function": "is_not_less_than", "arguments": {"column": "amount", "limit": 0}},
    },
    {
        "criticality": "error",
        "check": {"function": "is_unique", "arguments": {"columns": ["order_id"]}},
        "user_metadata": {"owner": "sales"},
    },
    {
        "criticality": "error",
        "check": {
            "function": "foreign_key",
            "arguments": {"columns": ["customer_id"], "ref_columns": ["id"], "ref_df_name": "customers"},
        },
    },
]


def main() -> None:
    warnings.filterwarnings("ignore")
    with pipes_lib.open_dagster_pipes() as pipes:
        mechanism = pipes.extras["mechanism"]
        tmp = pipes.extras["tmp"]
        spark = make_spark_session(mechanism, {"spark.sql.warehouse.dir": os.path.join(tmp, "warehouse")})
        spark.range(ROWS).selectExpr(
            "id AS row_id",
            "IF(id = 99, 98, id) AS order_id",  # order 98 twice
            "id % 12 AS customer_id",  # customers 0..9 exist: 10 and 11 do not
            "IF(id % 10 = 0, NULL, concat('u', id, '@x.com')) AS email",
            "CAST(id % 7 AS DOUBLE) - 1 AS amount",  # -1 when id % 7 = 0: a warning
        ).write.saveAsTable("raw_orders")
        orders = spark.table("raw_orders")
        customers = spark.range(10).selectExpr("id")
        rules = [dict(r) for r in RULES]
        evaluated = None
        if mechanism == "classic":
            evaluated = spark.sparkContext.accumulator(0)
            counter = evaluated

            def seen(value: object) -> bool:
                counter.add(1)
                return True

            spark.udf.register("seen", seen, "boolean")
            rules.append(
                {
                    "name": "evaluated",
                    "check": {"function": "sql_expression", "arguments": {"expression": "seen(order_id)"}},
                }
            )
        checks = load_checks(rules, dataframes={"customers": customers})
        with report_spark_writes(spark, pipes):
            valid, invalid = checked = split_spark_checks(pipes, orders, checks, asset_key="orders")
            valid.write.mode("overwrite").saveAsTable("orders")
            invalid.write.mode("overwrite").saveAsTable("orders_quarantine")
        evaluations = evaluated.value if evaluated is not None else None
        checked.unpersist()
        quarantined = spark.table("orders_quarantine")
        items = {
            str(r["row_id"]): {
                "errors": sorted(e["name"] for e in (r["_errors"] or [])),
                "warnings": sorted(w["name"] for w in (r["_warnings"] or [])),
            }
            for r in quarantined.collect()
        }
        first = quarantined.where("_errors IS NOT NULL").limit(1).collect()[0]["_errors"][0].asDict()
        annotated = apply_spark_checks(None, orders, checks)
        pipes.report_custom_message(
            {
                "orders": sorted(r[0] for r in spark.table("orders").select("row_id").collect()),
                "quarantine": items,
                "item_fields": sorted(first),
                "item": {
                    k: (v if isinstance(v, (str, int, bool, list, dict)) or v is None else str(v))
                    for k, v in first.items()
                },
                "quarantine_columns": quarantined.columns,
                "annotated_columns": annotated.columns,
                "annotated_rows": annotated.count(),
                "evaluations": evaluations,
            }
        )
        spark.stop()


if __name__ == "__main__":
    main()
