"""A 100-rule DQX checks file through ``report_spark_checks``, beside the same conditions written by
hand as one aggregation (the raw cost) and a plain read of the checked columns (the floor).

The rules are DQX 0.17 rules as a team keeps them in a YAML file: twenty templates (null / empty /
list / range / pattern / JSON-free string checks, an ``sql_expression``, a uniqueness, a grouped
aggregate and a foreign key) applied over the columns of ``--rows`` generated orders (default 10
million, nothing cached), 100 rules in all. Approaches, alternating within each round:

* **rules**: ``report_spark_checks(pipes, df, load_checks(rules))`` -- one Spark action for every
  rule (the grouped rules and the foreign key folded into it), reported to a stub Pipes context;
* **one pass by hand**: the same conditions as ``count_if`` aggregates of one aggregation, the
  uniqueness and the grouped aggregate as ``groupBy`` parts of the same ``unionByName``, the foreign
  key as a broadcast join -- no verdicts, no names, no reports: what the rules cost beyond it is the
  library's own;
* **read**: one plain aggregation over the checked columns (``count(1), sum(hash(...))``).

    .venv/bin/python benchmarks/bench_dqx_rules.py [--rows 10000000] [--rounds 3] [--mechanism all]

Results go to ``benchmarks/results/dqx_rules.{json,txt}``. The machine must be quiet for final
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import StubPipes, environment, save_results  # a sibling module (this directory is on sys.path)

REPO = Path(__file__).resolve().parents[1]
COLUMNS = {
    "order_id": "id",
    "customer_id": "id % 1000",
    "amount": "CAST(id % 100000 AS DOUBLE) / 100",
    "status": "element_at(array('new', 'paid', 'shipped'), CAST(id % 3 + 1 AS INT))",
    "email": "concat('u', id % 100000, '@shop.de')",
    "country": "element_at(array('DE', 'FR', 'US', 'GB'), CAST(id % 4 + 1 AS INT))",
    "code": "format_string('C-%05d', id % 100000)",
}
STRINGS = ("status", "email", "country", "code")
NUMBERS = ("order_id", "customer_id", "amount")


def rules() -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The 100 rules, and the same conditions by hand: failing-row SQL per row rule, and names."""
    out: list[dict[str, Any]] = []
    conditions: list[str] = []

    def rule(function: str, arguments: dict[str, Any], fail: str, **extra: Any) -> None:
        out.append({"criticality": "error", "check": {"function": function, "arguments": arguments}, **extra})
        conditions.append(fail)

    for c in STRINGS:
        rule("is_not_null", {"column": c}, f"{c} IS NULL")
        rule("is_not_empty", {"column": c}, f"{c} = ''")
        rule(
            "is_not_null_and_not_empty", {"column": c, "trim_strings": True}, f"{c} IS NULL OR trim({c}) = ''"
        )
        rule("is_null_or_empty", {"column": c}, f"{c} IS NOT NULL AND {c} != ''", criticality="warn")
        rule(
            "regex_match",
            {"column": c, "regex": "^[A-Za-z0-9@._-]+$"},
            f"NOT ({c} RLIKE '^[A-Za-z0-9@._-]+$')",
        )
        rule("is_not_in_list", {"column": c, "forbidden": ["'x'", "'y'"]}, f"{c} IN ('x', 'y')")
        rule(
            "has_valid_string_case", {"column": c, "case": "lower"}, f"{c} != lower({c})", criticality="warn"
        )
        rule(
            "is_in_list",
            {"column": c, "allowed": ["'new'", "'paid'", "'DE'"], "case_sensitive": False},
            f"NOT (lower({c}) IN ('new', 'paid', 'de'))",
            criticality="warn",
        )
        for n in range(4):
            rule(
                "sql_expression",
                {"expression": f"length({c}) < {20 + n}", "name": f"{c}_short_{n}"},
                f"NOT (length({c}) < {20 + n})",
            )
    for c in NUMBERS:
        rule("is_not_null", {"column": c}, f"{c} IS NULL")
        rule("is_not_less_than", {"column": c, "limit": 0}, f"{c} < 0")
        rule("is_not_greater_than", {"column": c, "limit": 100_000_000}, f"{c} > 100000000")
        rule(
            "is_in_range",
            {"column": c, "min_limit": 0, "max_limit": 100_000_000},
            f"{c} < 0 OR {c} > 100000000",
        )
        rule("is_not_in_range", {"column": c, "min_limit": -10, "max_limit": -1}, f"{c} >= -10 AND {c} <= -1")
        rule("is_equal_to", {"column": c, "value": -1, "allow_nulls": True}, f"{c} != -1", criticality="warn")
        rule("is_not_equal_to", {"column": c, "value": -1}, f"{c} = -1")
        rule(
            "has_num_decimal_places",
            {"column": c, "limit": 2},
            _decimal_places_over(c, 2),
            criticality="warn",
        )
        for n in range(6):
            rule(
                "sql_expression",
                {"expression": f"{c} + {n} >= {n}", "name": f"{c}_shifted_{n}"},
                f"NOT ({c} + {n} >= {n})",
            )
    while len(out) < 97:
        n = len(out)
        rule(
            "sql_expression",
            {"expression": f"amount * {n} >= 0", "name": f"amount_scaled_{n}"},
            f"NOT (amount * {n} >= 0)",
        )
    out.append({"check": {"function": "is_unique", "arguments": {"columns": ["order_id"]}}})
    out.append(
        {
            "check": {
                "function": "is_aggr_not_less_than",
                "arguments": {"column": "amount", "aggr_type": "sum", "limit": 0, "group_by": ["country"]},
            }
        }
    )
    out.append(
        {
            "check": {
                "function": "foreign_key",
                "arguments": {"columns": ["customer_id"], "ref_columns": ["id"], "ref_df_name": "customers"},
            }
        }
    )
    return out, conditions, [c for c in COLUMNS]


def _decimal_places_over(column: str, limit: int) -> str:
    """DQX's ``has_num_decimal_places`` written by hand: the decimal places of the value's text (its
    significand's trailing zeros not counted, less the exponent), or not a number."""
    text = f"CAST({column} AS STRING)"
    number = r"'^[+-]?(?=\\.?\\d)(\\d*)(?:\\.(\\d*))?(?:[eE]([+-]?\\d+))?$'"
    integer, fraction = f"regexp_extract({text}, {number}, 1)", f"regexp_extract({text}, {number}, 2)"
    exponent = f"regexp_extract({text}, {number}, 3)"
    significand = f"regexp_replace(concat({integer}, {fraction}), '0+$', '')"
    zeros = f"length({integer}) + length({fraction}) - length({significand})"
    places = (
        f"IF({significand} = '', 0, greatest(length({fraction}) - ({zeros})"
        f" - IF({exponent} = '', 0, CAST({exponent} AS DOUBLE)), 0))"
    )
    return f"NOT ({text} RLIKE {number}) OR {places} > {limit}"


def _frame(spark: Any, rows: int) -> Any:
    return spark.range(rows).selectExpr(
        *(f"IF(id >= 0, {sql}, NULL) AS {name}" for name, sql in COLUMNS.items())
    )


def run_mechanism(mechanism: str, rows: int, rounds: int) -> dict[str, Any]:
    """Time the three approaches, alternating, in one session."""
    sys.path.insert(0, str(REPO))
    from dagster_pipes_spark.spark import load_checks, report_spark_checks
    from dagster_pipes_spark.testing._notebook import make_spark_session

    # the emulator's quick-start settings, but with the JIT and whole-stage codegen of a real cluster
    spark = make_spark_session(
        mechanism,
        {
            "spark.sql.codegen.wholeStage": "true",
            "spark.driver.extraJavaOptions": "",
            "spark.driver.memory": "2g",
            "spark.sql.shuffle.partitions": "8",
        },
    )
    df = _frame(spark, rows)
    customers = spark.range(1000).selectExpr("id")
    file_rules, conditions, columns = rules()
    checks = load_checks(file_rules, dataframes={"customers": customers})
    assert len(checks) == 100, len(checks)

    def ours() -> None:
        report_spark_checks(StubPipes(["orders"]), df, checks, asset_key="orders", sample_size=0)

    def by_hand() -> None:
        base = df.join(
            customers.selectExpr("id AS customer_id", "TRUE AS found").hint("broadcast"),
            "customer_id",
            "left",
        )
        agg = base.selectExpr(
            "count(1) AS total",
            *(f"count_if({c}) AS r{i}" for i, c in enumerate(conditions)),
            "count_if(customer_id IS NOT NULL AND found IS NULL) AS fk",
        )
        unique = (
            df.where("order_id IS NOT NULL")
            .groupBy("order_id")
            .count()
            .selectExpr("sum(IF(count > 1, count, 0)) AS dup")
        )
        grouped = (
            df.groupBy("country")
            .agg({"amount": "sum", "*": "count"})
            .toDF("country", "s", "n")
            .selectExpr("sum(IF(s < 0, n, 0)) AS low")
        )
        agg.unionByName(unique, allowMissingColumns=True).unionByName(
            grouped, allowMissingColumns=True
        ).collect()

    def read() -> None:
        df.selectExpr("count(1)", f"sum(hash({', '.join(columns)}))").collect()

    approaches: dict[str, Callable[[], None]] = {"rules": ours, "one pass by hand": by_hand, "read": read}
    for fn in approaches.values():  # warm-up: JIT, session caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in approaches}
    order = list(approaches)
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            t0 = time.perf_counter()
            approaches[name]()
            times[name].append(time.perf_counter() - t0)
    spark.stop()
    med = {name: statistics.median(t) for name, t in times.items()}
    return {
        "mechanism": mechanism,
        "rows": rows,
        "rounds": rounds,
        "rules": len(checks),
        "median_s": med,
        "rules_vs_one_pass": med["rules"] / med["one pass by hand"],
        "rules_vs_read": med["rules"] / med["read"],
        "one_pass_vs_read": med["one pass by hand"] / med["read"],
    }


def _print(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'mechanism':<10} {'rules':>8} {'by hand':>9} {'read':>8} {'rules/by hand':>14} {'rules/read':>11}",
    ]
    for r in results:
        m = r["median_s"]
        lines.append(
            f"{r['mechanism']:<10} {m['rules']:>7.2f}s {m['one pass by hand']:>8.2f}s {m['read']:>7.2f}s"
            f" {r['rules_vs_one_pass']:>13.2f}x {r['rules_vs_read']:>10.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mechanism", choices=("classic", "connect", "all"), default="all")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_mechanism(args.mechanism, args.rows, args.rounds)))
        return
    mechanisms = ("classic", "connect") if args.mechanism == "all" else (args.mechanism,)
    results = []
    for mechanism in mechanisms:  # each in its own process: one JVM / Connect server at a time
        command = [sys.executable, __file__, "--one", "--mechanism", mechanism, "--rows", str(args.rows)]
        command += ["--rounds", str(args.rounds)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=dict(os.environ))
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    text = _print(results)
    print(text)
    save_results("dqx_rules", environment(), results, text)


if __name__ == "__main__":
    main()
