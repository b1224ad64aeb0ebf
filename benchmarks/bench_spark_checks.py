"""``report_spark_checks`` against the hand-written loop and the data-reading floor, side by side.

Twenty checks of every kind over ``--rows`` rows (default 10 million) generated with ``spark.range``
(nothing cached; every approach recomputes the data from scratch, as it would re-read a table):

* **checks**: one ``report_spark_checks`` call (one Spark action: a single aggregation, the two
  ``relationships`` joining their reference keys into it; all checks pass, so no second action for
  failing rows), reporting to a stub Pipes context;
* **loop**: what is written by hand today -- one Spark action per check (``filter(...).count()``,
  an anti join and ``count()`` per relationship, a ``collect()`` per aggregate condition, a
  ``groupBy`` for uniqueness), the schema for the contract -- and the same twenty reports;
* **one pass**: the raw cost of these checks -- the same failing conditions, reference joins and
  aggregates written by hand as one aggregation (no verdicts, no reports): what ``checks`` costs
  beyond it is the library's own;
* **read**: the floor -- one plain aggregation reading the checked columns (``count(1),
  sum(hash(...))``): what any single pass over them costs; **read+distinct** adds the exact
  ``count(DISTINCT order_id)`` that a ``unique`` check cannot do without;
* **count** (for reference): a single ``df.count()``, which reads no column at all (Spark prunes
  them), so it is no floor for checks that must read them.

Two sets: ``all kinds`` (expect, not_null, unique, accepted_values, in_range, matches,
relationships, expect_aggregate, row_count, fresh, has_columns; ``where=`` and thresholds on some)
and ``all but unique`` (the exact distinct count over 10 million keys replaced by a ``not_null``:
that count dominates every approach that has one). The approaches alternate within each round
(rotating the order); medians and ratios are reported.

    .venv/bin/python benchmarks/bench_spark_checks.py [--rows 10000000] [--rounds 3] [--mechanism classic]

``--mechanism connect`` runs the same on Spark Connect (a local server on a free port), ``all`` both,
each in its own process. ``--source parquet`` first writes the generated rows to a Parquet table
(not timed) and checks that, not cached: every pass pays a real scan, as on a cluster;
``--source joined`` checks the generated orders joined to a 1,000-row customer dimension, the
DataFrame a job checks before writing it (each hand-written action recomputes the join); ``all``
runs the three. Results go to ``benchmarks/results/spark_checks.{json,txt}``; ``--set "all but
unique"`` (or ``"all kinds"``) times one set only and saves nothing. The machine must be quiet for
final figures: other load easily swamps the differences.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _common import StubPipes, environment, save_results  # a sibling module (this directory is on sys.path)

REPO = Path(__file__).resolve().parents[1]
GOAL_VS_LOOP = 3.0  # report_spark_checks at least this many times faster than the loop
GOAL_VS_READ = 1.2  # and within this factor of one plain aggregation over the checked columns
SOURCES = ("range", "parquet", "joined")


def _frame(spark: Any, rows: int, now: int) -> Any:
    """Orders; every column nullable, as every column read from files is (``spark.range`` alone
    would let Spark drop ``IS NULL`` filters on its non-nullable ``id`` without reading a row)."""
    columns = {
        "order_id": "id",
        "customer_id": "id % 1000",
        "amount": "CAST(id % 100000 AS DOUBLE) / 100",
        "status": "element_at(array('new', 'paid', 'shipped'), CAST(id % 3 + 1 AS INT))",
        "updated_at": f"timestamp_seconds({now} - id % 86400)",
        "email": "concat('u', id % 100000, '@shop.de')",
        "country": "element_at(array('DE', 'FR', 'US', 'GB'), CAST(id % 4 + 1 AS INT))",
    }
    return spark.range(rows).selectExpr(
        *(f"IF(id >= 0, {sql}, NULL) AS {name}" for name, sql in columns.items())
    )


CHECKED = "order_id, customer_id, amount, status, updated_at, email, country"
EMAIL = r"^[^@\s]+@[^@\s]+\.[a-z]+$"


class CheckSet:
    """One set of checks three ways: for ``report_spark_checks``, the hand-written loop (name ->
    function of the DataFrame returning ``passed``, one Spark action each) and the same conditions
    by hand as one aggregation (``one_pass``: the raw cost of computing these checks)."""

    def __init__(
        self,
        checks: dict[str, Any],
        loop: dict[str, Callable[[Any], bool]],
        one_pass: Callable[[Any], list[Any]],
    ) -> None:
        self.checks, self.loop, self.one_pass = checks, loop, one_pass


def _check_sets(spark: Any) -> dict[str, CheckSet]:
    """The two sets, each written the three ways."""
    from dagster_pipes_spark.spark import (
        accepted_values,
        expect,
        expect_aggregate,
        fresh,
        has_columns,
        in_range,
        matches,
        not_null,
        relationships,
        row_count,
        unique,
    )

    # the references are what a job's `to` is: a table (here generated) and a small literal relation
    # (a VALUES list: what `createDataFrame` sends over Spark Connect, and no Python worker on classic)
    customers = spark.range(1000).selectExpr("id")
    countries = spark.sql("SELECT * FROM VALUES ('DE'), ('FR'), ('US'), ('GB'), ('IT') AS t(code)")
    day = timedelta(days=2)
    since = datetime.now(timezone.utc) - timedelta(days=3)
    checks: dict[str, Any] = {
        "amount_non_negative": "amount >= 0",
        "amount_bounded": expect("amount < 1000", where="status <> 'new'"),
        "order_id_not_null": not_null("order_id"),
        "customer_not_null": not_null("customer_id", max_failed_rows=10),
        "email_not_null": not_null("email", where="country <> 'US'"),
        "status_known": accepted_values("status", ["new", "paid", "shipped"]),
        "country_known": accepted_values("country", ["DE", "FR", "US", "GB"], where="status = 'paid'"),
        "amount_in_range": in_range("amount", min=0, max=1000),
        "customer_in_range": in_range("customer_id", min=0, max=999, max_failed_fraction=0.001),
        "updated_recently": in_range("updated_at", min=since),
        "email_valid": matches("email", EMAIL),
        "status_lower_de": matches("status", "^[a-z]+$", where="country = 'DE'"),
        "customer_exists": relationships("customer_id", to=customers, field="id"),
        "country_exists": relationships("country", to=countries, field="code"),
        "revenue_positive": expect_aggregate("sum(amount) > 0"),
        "paid_share": expect_aggregate("count_if(status = 'paid') >= 0.2 * count(*)"),
        "order_id_unique": unique("order_id"),
        "enough_rows": row_count(min=1000),
        "fresh": fresh("updated_at", max_age=day),
        "contract": has_columns({"order_id": "bigint", "amount": "double", "status": "string"}),
    }
    # the failing-row condition of each row-level check, as a user writes it by hand
    failing = {
        "amount_non_negative": "amount < 0 OR amount IS NULL",
        "amount_bounded": "status <> 'new' AND (amount >= 1000 OR amount IS NULL)",
        "order_id_not_null": "order_id IS NULL",
        "customer_not_null": "customer_id IS NULL",
        "email_not_null": "country <> 'US' AND email IS NULL",
        "status_known": "status IS NULL OR status NOT IN ('new', 'paid', 'shipped')",
        "country_known": "status = 'paid' AND (country IS NULL OR country NOT IN ('DE', 'FR', 'US', 'GB'))",
        "amount_in_range": "amount < 0 OR amount > 1000",
        "customer_in_range": "customer_id < 0 OR customer_id > 999",
        "updated_recently": f"updated_at < timestamp_seconds({int(since.timestamp())})",
        "email_valid": f"NOT (email RLIKE '{EMAIL.replace(chr(92), chr(92) * 2)}')",
        "status_lower_de": "country = 'DE' AND NOT (status RLIKE '^[a-z]+$')",
        "status_not_null": "status IS NULL",
    }

    def none(name: str) -> Callable[[Any], bool]:
        return lambda df: df.filter(failing[name]).count() == 0

    def missing(column: str, ref: Any, field: str) -> Callable[[Any], bool]:
        return lambda df: (
            df.where(f"{column} IS NOT NULL").join(ref, df[column] == ref[field], "left_anti").count() == 0
        )

    loop: dict[str, Callable[[Any], bool]] = {
        **{name: none(name) for name in failing if name in checks},
        "customer_not_null": lambda df: df.filter(failing["customer_not_null"]).count() <= 10,
        "customer_in_range": lambda df: df.filter(failing["customer_in_range"]).count() <= 0.001 * df.count(),
        "customer_exists": missing("customer_id", customers, "id"),
        "country_exists": missing("country", countries, "code"),
        "revenue_positive": lambda df: df.selectExpr("sum(amount) > 0").collect()[0][0] is True,
        "paid_share": lambda df: (
            df.selectExpr("count_if(status = 'paid') >= 0.2 * count(*)").collect()[0][0] is True
        ),
        "order_id_unique": lambda df: (
            df.where("order_id IS NOT NULL").groupBy("order_id").count().where("`count` > 1").count() == 0
        ),
        "enough_rows": lambda df: df.count() >= 1000,
        "fresh": lambda df: (
            time.time() - df.selectExpr("max(updated_at)").collect()[0][0].timestamp() <= day.total_seconds()
        ),
        "contract": lambda df: {"order_id", "amount", "status"} <= set(df.columns),
    }

    def one_pass(names: list[str]) -> Callable[[Any], list[Any]]:
        """Every figure of the set in one aggregation written by hand: a ``count_if`` per failing
        condition, the references' distinct keys left-joined (broadcast), the aggregates read."""

        def run(df: Any) -> list[Any]:
            found = [
                ("customer_id", customers.selectExpr("id AS customer_id")),
                ("country", countries.selectExpr("code AS country")),
            ]
            for column, keys in found:
                keys = (
                    keys.where(f"{column} IS NOT NULL").distinct().selectExpr("*", f"TRUE AS {column}_found")
                )
                df = df.join(keys.hint("broadcast"), column, "left")
            exprs = ["count(1)", *(f"count_if({failing[n]})" for n in names if n in failing)]
            exprs += [f"count_if({c} IS NOT NULL AND {c}_found IS NULL)" for c, _ in found]
            exprs += ["sum(amount)", "count_if(status = 'paid')", "max(updated_at)"]
            if "order_id_unique" in names:
                exprs.append("count(order_id) - count(DISTINCT order_id)")
            return list(df.selectExpr(*exprs).collect()[0])

        return run

    # the same kinds without the exact distinct count over 10 million keys, which dominates any pass
    no_unique = {k: v for k, v in checks.items() if k != "order_id_unique"}
    no_unique["status_not_null"] = not_null("status")
    loop_no_unique = {k: v for k, v in loop.items() if k != "order_id_unique"}
    loop_no_unique["status_not_null"] = none("status_not_null")
    return {
        "all kinds": CheckSet(checks, loop, one_pass(list(checks))),
        "all but unique": CheckSet(no_unique, loop_no_unique, one_pass(list(no_unique))),
    }


def run_mechanism(mechanism: str, rows: int, rounds: int, source: str, only: str = "") -> dict[str, Any]:
    """Time the approaches for both check sets (or the one named ``only``) in one session."""
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(REPO))
    from dagster_pipes_spark.spark import report_spark_checks
    from dagster_pipes_spark.testing._notebook import make_spark_session

    # the emulator's quick-start settings, but with the JIT and whole-stage codegen of a real cluster
    spark = make_spark_session(
        mechanism,
        {
            "spark.sql.codegen.wholeStage": "true",
            "spark.driver.extraJavaOptions": "",
            "spark.driver.memory": "2g",
        },
    )
    df = _frame(spark, rows, int(time.time()))
    tmp = tempfile.mkdtemp(prefix="bench-spark-checks-")
    if source == "parquet":  # written once, read (not cached) by every approach
        df.write.parquet(os.path.join(tmp, "orders"))
        df = spark.read.parquet(os.path.join(tmp, "orders"))
    elif source == "joined":  # a transformed DataFrame, checked before it is written
        customers = spark.range(1000).selectExpr("id AS customer_id", "concat('c', id) AS customer_name")
        df = df.join(customers, "customer_id")
    out: dict[str, Any] = {
        "mechanism": mechanism,
        "source": source,
        "rows": rows,
        "rounds": rounds,
        "sets": {},
    }
    for label, check_set in _check_sets(spark).items():
        if only and label != only:
            continue

        def ours(checks: dict[str, Any] = check_set.checks) -> None:
            pipes = StubPipes(["orders"])
            results = report_spark_checks(pipes, df, checks, asset_key="orders")
            assert all(r.passed for r in results.values()) and len(pipes.reports) == len(checks)

        def hand_written(loop: dict[str, Callable[[Any], bool]] = check_set.loop) -> None:
            pipes = StubPipes(["orders"])
            for name, check in loop.items():
                passed = check(df)
                assert passed, name
                pipes.report_asset_check(name, passed=passed, metadata={"checked": True}, asset_key="orders")

        def by_hand(one_pass: Callable[[Any], list[Any]] = check_set.one_pass) -> None:
            figures = one_pass(df)
            assert figures[0] == rows

        def count() -> None:
            assert df.count() == rows

        def read() -> None:
            assert df.selectExpr("count(1)", f"sum(hash({CHECKED}))").collect()[0][0] == rows

        def read_distinct() -> None:  # the floor plus the one exact distinct count a unique check needs
            exprs = ["count(1)", f"sum(hash({CHECKED}))", "count(DISTINCT order_id)"]
            assert df.selectExpr(*exprs).collect()[0][0] == rows

        approaches: dict[str, Callable[[], None]] = {
            "checks": ours,
            "loop": hand_written,
            "one pass": by_hand,
            "count": count,
            "read": read,
        }
        if "order_id_unique" in check_set.checks:
            approaches["read+distinct"] = read_distinct
        for fn in approaches.values():  # warm-up: JIT, codegen caches
            fn()
        times: dict[str, list[float]] = {name: [] for name in approaches}
        names = list(approaches)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                started = time.perf_counter()
                approaches[name]()
                times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(values) for name, values in times.items()}
        out["sets"][label] = {
            "checks": len(check_set.checks),
            "median_seconds": medians,
            "seconds": times,
            "loop_over_checks": medians["loop"] / medians["checks"],
            "checks_over_count": medians["checks"] / medians["count"],
            "checks_over_read": medians["checks"] / medians["read"],
            "checks_over_one_pass": medians["checks"] / medians["one pass"],
            "one_pass_over_read": medians["one pass"] / medians["read"],
            "checks_over_read_distinct": (
                medians["checks"] / medians["read+distinct"] if "read+distinct" in medians else None
            ),
        }
    spark.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def _print(results: list[dict[str, Any]]) -> str:
    lines = []
    header = (
        "mechanism",
        "source",
        "set",
        "checks (s)",
        "loop (s)",
        "one pass (s)",
        "count (s)",
        "read (s)",
        "read+distinct (s)",
        "loop/checks",
        "checks/count",
        "checks/read",
        "checks/read+distinct",
        "checks/one pass",
        "one pass/read",
    )
    rows = []
    for result in results:
        for label, s in result["sets"].items():
            m = s["median_seconds"]
            rows.append(
                (
                    result["mechanism"],
                    result["source"],
                    label,
                    f"{m['checks']:.2f}",
                    f"{m['loop']:.2f}",
                    f"{m['one pass']:.2f}",
                    f"{m['count']:.2f}",
                    f"{m['read']:.2f}",
                    f"{m['read+distinct']:.2f}" if "read+distinct" in m else "-",
                    f"{s['loop_over_checks']:.1f}x",
                    f"{s['checks_over_count']:.2f}x",
                    f"{s['checks_over_read']:.2f}x",
                    f"{s['checks_over_read_distinct']:.2f}x" if s.get("checks_over_read_distinct") else "-",
                    f"{s['checks_over_one_pass']:.2f}x",
                    f"{s['one_pass_over_read']:.2f}x",
                )
            )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines.append(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    first = results[0]
    lines.append(
        f"\n{first['rows']:,} rows, 20 checks per set, {first['rounds']} rounds (medians). Goals: loop/checks"
        f" >= {GOAL_VS_LOOP:g}x, checks/read <= {GOAL_VS_READ:g}x (read: one plain aggregation over the"
        f" checked columns; read+distinct adds the exact count(DISTINCT order_id) a unique check needs;"
        f" one pass: the same conditions and joins written by hand as one aggregation, the raw cost of"
        f" computing these checks)."
    )
    text = "\n".join(lines)
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mechanism", choices=("classic", "connect", "all"), default="classic")
    parser.add_argument("--source", choices=(*SOURCES, "all"), default="range")
    parser.add_argument(
        "--set", choices=("", "all kinds", "all but unique"), default="", help="only this set"
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_mechanism(args.mechanism, args.rows, args.rounds, args.source, args.set)))
        return
    mechanisms = ("classic", "connect") if args.mechanism == "all" else (args.mechanism,)
    sources = SOURCES if args.source == "all" else (args.source,)
    results = []
    for mechanism in mechanisms:  # one process each: a JVM per session kind and source
        for source in sources:
            child = ["--one", "--mechanism", mechanism, "--source", source]
            child += ["--rows", str(args.rows), "--rounds", str(args.rounds), "--set", args.set]
            proc = subprocess.run(
                [sys.executable, __file__, *child], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"{mechanism} / {source} run failed")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    head = environment()
    print(head)
    text = _print(results)
    if not args.set:  # a partial run while developing does not replace the figures
        save_results("spark_checks", head, results, text)


if __name__ == "__main__":
    main()
