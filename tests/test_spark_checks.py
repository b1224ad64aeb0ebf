"""``report_spark_checks`` end to end: a Dagster ``multi_asset`` with ``AssetCheckSpec``s launches an
external PySpark job (``spark_scripts/spark_checks_job.py``) through ``PipesSubprocessClient``; the
job checks data built with known numbers of NULLs, duplicates, out-of-range and unknown values, an
empty table and NULL-heavy columns, and we assert the exact figures Dagster recorded. One run on
classic Spark (where a failing blocking check stops the downstream asset, and Spark jobs are
counted) and one on Spark Connect (where the blocking check passes and the downstream runs). The
shipped notebook using the checks runs through the emulator's Jobs API. The definition-level
validation is unit-tested without Spark at the end."""

import datetime as dt
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import pytest
from _helpers import external_env

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
    row_count,
    unique,
)
from dagster_pipes_spark.spark._checks._basic import sql_literal
from dagster_pipes_spark.spark._checks._kinds import aggregate_calls
from dagster_pipes_spark.spark._checks._model import Columns, normalize_type
from dagster_pipes_spark.spark._checks._results import coerce_checks

pytest.importorskip("pyspark")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "spark_scripts" / "spark_checks_job.py"
NOW = int(time.time())

# (asset, check) -> (passed, failed_rows, total_rows, severity); None: the figure is not reported
EXPECTED: dict[tuple[str, str], tuple[bool, int | None, int | None, str]] = {
    ("orders", "amount_non_negative"): (False, 3, 20, "ERROR"),  # -3.00, -0.01 and one NULL
    ("orders", "order_id_not_null"): (False, 3, 20, "ERROR"),
    ("orders", "order_id_unique"): (False, 3, 20, "ERROR"),  # 17 keyed rows, 14 distinct ids
    ("orders", "order_customer_unique"): (False, 2, 20, "WARN"),  # 16 keyed rows, 14 distinct pairs
    ("orders", "status_known"): (False, 4, 20, "WARN"),  # 'lost', 'returned' and two NULLs
    ("orders", "enough_rows"): (False, None, 20, "ERROR"),
    ("orders", "not_too_many_rows"): (True, None, 20, "ERROR"),
    ("orders", "fresh_day"): (True, None, 20, "ERROR"),
    ("orders", "fresh_minute"): (False, None, 20, "ERROR"),
    ("orders", "contract"): (True, None, 20, "ERROR"),
    ("orders", "contract_strict"): (False, None, 20, "ERROR"),
    ("orders", "small_amounts"): (False, 1, 20, "WARN"),  # the NULL amount is not < 100
    ("empty", "id_not_null"): (True, 0, 0, "ERROR"),
    ("empty", "id_unique"): (True, 0, 0, "ERROR"),
    ("empty", "id_positive"): (True, 0, 0, "ERROR"),
    ("empty", "status_known"): (True, 0, 0, "ERROR"),
    ("empty", "has_rows"): (False, None, 0, "ERROR"),
    ("empty", "fresh"): (False, None, 0, "ERROR"),
    ("sparse", "note_not_null"): (False, 9, 10, "ERROR"),
    ("sparse", "note_unique"): (True, 0, 10, "ERROR"),  # one non-NULL note
    ("sparse", "id_note_not_null"): (False, 9, 10, "ERROR"),
    ("sparse", "id_note_unique"): (True, 0, 10, "ERROR"),
    ("sparse", "score_positive"): (False, 9, 10, "ERROR"),  # 8 NULLs and -1
    ("sparse", "code_known"): (False, 10, 10, "ERROR"),  # NULL everywhere
    ("risky", "code_not_null"): (True, 0, 4, "ERROR"),
    ("risky", "code_positive"): (False, None, None, "ERROR"),  # fails at run time: reported with error
    ("risky", "four_rows"): (True, None, 4, "ERROR"),
    ("clean", "id_non_negative"): (True, 0, 1000, "ERROR"),
    ("clean", "id_not_null"): (True, 0, 1000, "ERROR"),
    ("clean", "id_unique"): (True, 0, 1000, "ERROR"),
    ("clean", "bucket_label_unique"): (True, 0, 1000, "ERROR"),
    ("clean", "bucket_known"): (True, 0, 1000, "ERROR"),
    ("clean", "exact_rows"): (True, None, 1000, "ERROR"),
    ("clean", "fresh"): (True, None, 1000, "ERROR"),
    ("clean", "contract"): (True, None, 1000, "ERROR"),
    ("written", "rows"): (True, None, 6, "ERROR"),
    ("written", "ids"): (True, 0, 6, "ERROR"),
    ("written", "bad_column"): (False, None, None, "ERROR"),  # reads a column the table lacks
    ("unwritten", "rows"): (False, None, None, "ERROR"),  # nothing written in the block
    # the data cannot be computed: only the schema check is reported, then the call raises
    ("broken", "n_column"): (True, None, None, "ERROR"),
    # the newer kinds, `where=` and thresholds (see `sales_frame` in the job for the 20 rows)
    ("sales", "amount_in_range"): (False, 2, 20, "ERROR"),  # -5 and 20000; NULL does not fail
    ("sales", "amount_in_range_tolerant"): (True, 2, 20, "ERROR"),  # 2/20 <= max_failed_fraction 0.1
    ("sales", "amount_in_range_rows"): (False, 2, 20, "ERROR"),  # 2 > max_failed_rows 1
    ("sales", "amount_in_range_de"): (False, 1, 10, "ERROR"),  # only the 10 DE rows; -5 is one
    ("sales", "email_valid"): (False, 3, 20, "ERROR"),  # 'bad-email', 'x@y', 'u13@shop.DE'
    ("sales", "email_valid_de"): (False, 2, 10, "ERROR"),
    ("sales", "email_valid_de_warn"): (True, 2, 10, "WARN"),  # within max_failed_rows=2
    ("sales", "customer_exists"): (False, 4, 20, "ERROR"),  # 6 three times, 99; NULL does not fail
    ("sales", "customer_exists_de"): (False, 3, 10, "ERROR"),
    ("sales", "customer_known"): (False, 1, 20, "ERROR"),  # `to` a DataFrame with ids 1..6
    ("sales", "sale_id_unique"): (False, 1, 20, "ERROR"),
    ("sales", "sale_id_unique_fr"): (True, 0, 10, "ERROR"),  # the two 19s: one DE, one FR
    ("sales", "email_present"): (True, 1, 20, "WARN"),
    ("sales", "big_sales_de"): (False, 6, 11, "ERROR"),  # 11 rows above 1000, 6 of them FR
    ("sales", "fr_mostly_large"): (True, 3, 10, "ERROR"),  # 0.3 <= 0.5
    ("sales", "revenue_positive"): (True, None, 20, "ERROR"),
    ("sales", "no_huge_sale"): (False, None, 20, "ERROR"),
    ("sales", "average_small"): (False, None, 20, "WARN"),
    # the same data, checks from a DQX-format YAML file (DQX_RULES)
    # (names as DQX names rules; DQX's meaning: every row of a duplicated key is flagged)
    ("sales_rules", "email_is_null"): (False, 1, 20, "ERROR"),
    ("sales_rules", "email_not_matching_regex"): (False, 2, 10, "WARN"),  # filter: country = 'DE'
    ("sales_rules", "amount_range"): (False, 2, 20, "ERROR"),
    ("sales_rules", "country_is_not_in_the_list"): (False, 10, 20, "WARN"),
    ("sales_rules", "sale_id_is_not_unique"): (False, 2, 20, "ERROR"),  # both rows of sale 19
    ("sales_rules", "customer_id_not_exists_in_ref_id"): (False, 4, 20, "ERROR"),
    ("sales_rules", "big_amounts_rare"): (False, 1, 20, "WARN"),  # DQX: a NULL result passes
    ("sales_rules", "sales_count"): (True, 0, 20, "ERROR"),
    ("sales_rules", "sale_id_is_null"): (True, 0, 20, "ERROR"),  # for_each_column
    ("sales_rules", "country_is_null"): (True, 0, 20, "ERROR"),
    # and from a JSON file in the project's own format (OWN_CHECKS)
    ("sales_json", "amount_ok"): (True, 2, 20, "ERROR"),
    ("sales_json", "email_de"): (False, 2, 10, "ERROR"),
    ("sales_json", "positive"): (False, 2, 20, "ERROR"),  # -5 and NULL
    ("sales_json", "revenue"): (True, None, 20, "ERROR"),
    ("sales_json", "has_rows"): (True, None, 20, "ERROR"),
    ("sales_json", "email_warn"): (False, 1, 20, "WARN"),
}
DQX_RULES = r"""
- criticality: error
  check:
    function: is_not_null
    arguments:
      column: email
- criticality: warn
  filter: country = 'DE'
  check:
    function: regex_match
    arguments:
      column: email
      regex: '^[^@\s]+@[^@\s]+\.[a-z]+$'
- name: amount_range
  criticality: error
  check:
    function: is_in_range
    arguments: {column: amount, min_limit: 0, max_limit: 10000}
- criticality: warn
  check:
    function: is_in_list
    arguments: {column: country, allowed: ["'DE'"]}
- criticality: error
  check:
    function: is_unique
    arguments: {columns: [sale_id]}
- criticality: error
  check:
    function: foreign_key
    arguments: {columns: [customer_id], ref_columns: [id], ref_table: customers}
- name: big_amounts_rare
  criticality: warn
  check:
    function: sql_expression
    arguments: {expression: "amount <= 10000"}
- name: sales_count
  criticality: error
  check:
    function: is_aggr_not_less_than
    arguments: {column: "*", aggr_type: count, limit: 20}
- criticality: error
  check:
    function: is_not_null
    for_each_column: [sale_id, country]
"""
OWN_CHECKS = {
    "amount_ok": {"kind": "in_range", "column": "amount", "min": 0, "max": 10000, "max_failed_rows": 2},
    "email_de": {
        "kind": "matches",
        "column": "email",
        "pattern": r"^[^@\s]+@[^@\s]+\.[a-z]+$",
        "where": "country = 'DE'",
    },
    "positive": "amount > 0",
    "revenue": {"kind": "expect_aggregate", "sql": "sum(amount) > 1000"},
    "has_rows": {"kind": "row_count", "min": 1},
    "email_warn": {"kind": "not_null", "column": "email", "severity": "WARN"},
}
ASSETS = sorted({asset for asset, _ in EXPECTED})
#: the blocking check of each run: fails on classic (stopping the downstream), passes on Connect
BLOCKING = {"classic": ("orders", "amount_non_negative"), "connect": ("clean", "id_non_negative")}


@dataclass
class Run:
    mechanism: str
    success: bool
    failure: str | None
    checks: dict[tuple[str, str], Any]  # AssetCheckEvaluation
    materialized: list[str]  # asset keys, in event order
    event_order: list[str]  # "mat:<asset>" / "check:<asset>/<name>", in event order
    message: dict[str, Any]  # the job's custom message
    logs: list[str]


def _run(mechanism: str) -> Run:
    tmp = tempfile.mkdtemp(prefix=f"pipes-spark-checks-{mechanism}-")
    (Path(tmp) / "dqx_rules.yml").write_text(DQX_RULES)
    (Path(tmp) / "checks.json").write_text(json.dumps(OWN_CHECKS))
    custom: list[Any] = []
    specs = [
        dg.AssetCheckSpec(name, asset=asset, blocking=(asset, name) == BLOCKING[mechanism])
        for asset, name in EXPECTED
    ]

    @dg.multi_asset(specs=[dg.AssetSpec(a) for a in ASSETS], check_specs=specs, name=f"checks_{mechanism}")
    def checked(context: dg.AssetExecutionContext):  # no return annotation: dagster reads it
        invocation = dg.PipesSubprocessClient(cwd=tmp).run(
            command=[sys.executable, str(SCRIPT)],
            context=context,
            extras={"mechanism": mechanism, "tmp": tmp, "now": NOW},
            env=external_env(),
        )
        custom.extend(invocation.get_custom_messages())
        yield from invocation.get_results()

    @dg.asset(deps=["orders"], name="orders_report")
    def orders_report() -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([checked, orders_report], instance=instance, raise_on_error=False)
    checks: dict[tuple[str, str], Any] = {}
    materialized: list[str] = []
    order: list[str] = []
    failure = None
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            key = event.event_specific_data.materialization.asset_key.to_user_string()  # type: ignore[union-attr]
            materialized.append(key)
            order.append(f"mat:{key}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            asset = evaluation.asset_key.to_user_string()  # type: ignore[union-attr]
            checks[(asset, evaluation.check_name)] = evaluation  # type: ignore[union-attr]
            order.append(f"check:{asset}/{evaluation.check_name}")  # type: ignore[union-attr]
        elif event.event_type_value == "STEP_FAILURE" and failure is None:
            failure = str(event.event_specific_data.error)  # type: ignore[union-attr]
    logs = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.user_message]
    message = custom[0] if custom else {}
    return Run(mechanism, result.success, failure, checks, materialized, order, message, logs)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """Both Dagster runs, started together: most of a run is Spark start-up and waiting."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {mechanism: pool.submit(_run, mechanism) for mechanism in BLOCKING}
        return {mechanism: future.result() for mechanism, future in futures.items()}


@pytest.fixture(params=sorted(BLOCKING))
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    outcome = runs[request.param]
    if not outcome.checks:
        print("\n".join(outcome.logs[-60:]), outcome.failure)
    return outcome


def _md(evaluation: Any) -> dict[str, Any]:
    """Metadata values as plain values (tables as the MetadataValue itself)."""
    return {
        k: v if k == "failed_rows_sample" else getattr(v, "value", v) for k, v in evaluation.metadata.items()
    }


def test_every_check_reported_with_exact_figures(run: Run) -> None:
    assert sorted(run.checks) == sorted(EXPECTED)
    for key, (passed, failed_rows, total_rows, severity) in EXPECTED.items():
        evaluation = run.checks[key]
        md = _md(evaluation)
        figures = (evaluation.passed, md.get("failed_rows"), md.get("total_rows"), evaluation.severity.value)
        assert figures == (passed, failed_rows, total_rows, severity), key
        if failed_rows is not None:
            fraction = failed_rows / total_rows if total_rows else 0.0
            assert md["failed_fraction"] == pytest.approx(fraction), key
            assert isinstance(evaluation.metadata["failed_fraction"], dg.FloatMetadataValue)
        assert isinstance(md["definition"], str) and md["definition"], key


def test_definitions_and_descriptions(run: Run) -> None:
    md = _md(run.checks[("orders", "amount_non_negative")])
    assert md["definition"] == "expect('amount >= 0')"
    assert _md(run.checks[("orders", "status_known")])["definition"] == (
        "accepted_values('status', ['new', 'paid', 'shipped'])"
    )
    assert (
        _md(run.checks[("orders", "order_customer_unique")])["definition"] == "unique('order_id', 'customer')"
    )
    assert _md(run.checks[("orders", "fresh_day")])["definition"] == "fresh('updated_at', max_age=1d)"
    assert _md(run.checks[("orders", "enough_rows")])["definition"] == "row_count(min=1000)"
    small = _md(run.checks[("orders", "small_amounts")])
    assert small["description"] == "no order above 100"
    assert _md(run.checks[("orders", "order_id_unique")])["distinct_keys"] == 14


def _sample(run: Run, asset: str, check: str) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    table = run.checks[(asset, check)].metadata["failed_rows_sample"]
    assert isinstance(table, dg.TableMetadataValue)
    columns = [c.name for c in table.schema.columns]
    types = {c.name: c.type for c in table.schema.columns}
    return columns, [dict(r.data) for r in table.records], types


def test_failing_rows_samples(run: Run) -> None:
    columns, records, types = _sample(run, "orders", "amount_non_negative")
    assert columns == ["amount", "order_id", "customer", "status", "updated_at"]  # read column first
    assert types["amount"] == "decimal(10,2)" and types["order_id"] == "bigint"
    assert sorted(str(r["amount"]) for r in records) == ["-0.01", "-3.0", "None"]  # all 3 failing rows

    columns, records, _ = _sample(run, "orders", "status_known")
    assert columns[0] == "status" and len(records) == 4
    assert sorted(str(r["status"]) for r in records) == ["None", "None", "lost", "returned"]

    columns, records, _ = _sample(run, "orders", "order_id_unique")  # rows of duplicated keys
    assert columns[0] == "order_id" and 2 <= len(records) <= 5
    assert {r["order_id"] for r in records} <= {1, 2}

    columns, records, _ = _sample(run, "orders", "order_customer_unique")
    assert columns[:2] == ["order_id", "customer"]
    assert {(r["order_id"], r["customer"]) for r in records} == {(1, "a"), (2, "c")}

    _, records, _ = _sample(run, "sparse", "code_known")
    assert len(records) == 5  # sample_size caps the 10 failing rows

    for key, (passed, *_) in EXPECTED.items():  # passing and table-level checks carry no sample
        if passed or key[1] in ("enough_rows", "fresh_minute", "contract_strict", "has_rows", "fresh"):
            assert "failed_rows_sample" not in run.checks[key].metadata, key


def test_fresh_reports_the_newest_value(run: Run) -> None:
    day = run.checks[("orders", "fresh_day")].metadata
    assert isinstance(day["newest"], dg.TimestampMetadataValue)
    assert day["newest"].value == NOW - 3600
    assert day["max_age_seconds"].value == 86400.0
    # measured when the job ran: an hour plus the time since NOW (the module's import; a busy
    # suite may run this module many minutes later)
    assert 3600 <= day["age_seconds"].value <= 3600 + (time.time() - NOW) + 1
    minute = _md(run.checks[("orders", "fresh_minute")])
    assert minute["newest"] == NOW - 3600 and minute["max_age_seconds"] == 60.0
    assert _md(run.checks[("empty", "fresh")])["newest"] == "no rows"


def test_has_columns_names_what_is_missing_or_different(run: Run) -> None:
    md = _md(run.checks[("orders", "contract_strict")])
    assert md["missing_columns"] == ["missing_col"]
    assert md["mismatched_types"] == {"order_id": {"expected": "int", "actual": "bigint"}}
    assert "missing_columns" not in _md(run.checks[("orders", "contract")])


def test_a_check_failing_at_run_time_is_reported_with_its_error(run: Run) -> None:
    md = _md(run.checks[("risky", "code_positive")])
    assert "CAST_INVALID_INPUT" in md["error"] and "'x'" in md["error"]
    assert "failed_rows" not in md
    # the error's query context points at the check: the two others are evaluated again in one action
    assert any("reporting 'code_positive' failed with the error" in text for text in run.logs)
    assert any(t.startswith("[spark checks] risky: 3 checks") and "2 Spark action(s)" in t for t in run.logs)


def test_checks_of_report_spark_writes_run_after_the_materialization(run: Run) -> None:
    assert "written" in run.materialized
    mat = run.event_order.index("mat:written")
    assert all(run.event_order.index(f"check:written/{n}") > mat for n in ("rows", "ids", "bad_column"))
    error = _md(run.checks[("written", "bad_column")])["error"]
    assert "`nope`" in error and "available columns: id bigint, twice bigint" in error
    assert "no write to asset unwritten was seen" in _md(run.checks[("unwritten", "rows")])["error"]
    assert run.message["report_checks"] == {"unwritten": ["rows"], "written": ["bad_column", "ids", "rows"]}


def test_bad_input_raises_before_any_spark_job_naming_the_check(run: Run) -> None:
    bad = run.message["bad"]
    assert "check 'broken'" in bad["does_not_parse"] and "does not parse" in bad["does_not_parse"]
    typo = bad["unknown_column"]
    assert "check 'typo'" in typo and "`amountt`" in typo and "check 'fine'" not in typo
    assert "available columns: order_id bigint, customer string, amount decimal(10,2)" in typo
    assert "check 'sum'" in bad["not_boolean"] and "decimal(11,2), not boolean" in bad["not_boolean"]
    assert "check 'sev'" in bad["unknown_severity"] and "'FATAL'" in bad["unknown_severity"]
    assert "the mapping is empty" in bad["empty_mapping"]
    assert "check 'answer'" in bad["not_a_check"] and "int 42" in bad["not_a_check"]
    assert "check 'stale'" in bad["fresh_not_a_time"] and "column is string" in bad["fresh_not_a_time"]
    assert "no_such_table" in bad["missing_table"]
    assert "Invalid asset key. Expected one of `[" in bad["unknown_asset"]
    assert "got `not_an_asset`" in bad["unknown_asset"] and "`report_spark_checks`" in bad["unknown_asset"]
    assert "Current step targets multiple assets. Pass `asset_key=`" in bad["no_asset_key"]
    assert (
        "check 'neg'" in bad["negative_threshold"]
        and "`max_failed_rows` must be a non-negative int" in (bad["negative_threshold"])
    )
    assert "check 'frac'" in bad["fraction_above_one"] and "from 0 to 1, got 1.5" in bad["fraction_above_one"]
    assert (
        "check 'scoped'" in bad["where_does_not_parse"]
        and "`where`: the expression does not parse" in (bad["where_does_not_parse"])
    )
    assert "the `where` predicate is decimal(10,2), not boolean" in bad["where_not_boolean"]
    assert (
        "check 'agg'" in bad["not_an_aggregate"]
        and "outside an aggregate function" in bad["not_an_aggregate"]
    )
    assert "decimal(20,2), not boolean" in bad["aggregate_not_boolean"]
    assert "check 'fk'" in bad["unknown_to_table"] and "no_such_customers" in bad["unknown_to_table"]
    assert "has no column 'nope'; its columns: id int, name string" in bad["unknown_to_column"]
    assert "`customerr`" in bad["unknown_fk_column"] and "available columns:" in bad["unknown_fk_column"]
    assert bad["nothing_evaluable"].startswith("`report_spark_checks` cannot evaluate any check on")
    assert "source unreadable" in bad["nothing_evaluable"]
    if run.mechanism == "classic":
        assert run.message["jobs"]["bad_inputs"] == 0


def test_spark_jobs_per_call_on_classic(runs: dict[str, Run]) -> None:
    """One aggregation job for eight passing checks (four hand-written counts take four); a failure
    adds one job for the sample of failing rows, none with ``sample_size=0``; ``has_columns`` none."""
    jobs = runs["classic"].message["jobs"]
    assert jobs == {
        "bad_inputs": 0,
        "all_pass": 1,
        "loop_of_4": 4,
        "failing_with_sample": 2,
        "failing_sample_size_0": 1,
        "schema_only": 0,
        "every_kind_sample_size_0": 1,  # 18 checks of every kind, 3 of them joining `to`s' keys
        "every_kind_failed": 12,
        "relationships_and_aggregate": 1,
        "unique_with_others": 1,  # four unique checks, each grouped by its key, and two joins
    }


def test_unique_and_relationships_match_hand_written_counts(runs: dict[str, Run]) -> None:
    """``unique`` (its own grouping by the key, in the one action) counts what ``count(DISTINCT)``
    does, with ``where=`` and multi-column keys with NULLs; a string ``relationships`` (joined on the
    keys' hash, ``to`` repeating keys) what an anti join does -- on classic and Connect alike."""
    for mechanism, run in runs.items():
        uniques = run.message["uniques"]
        assert set(uniques) == {
            "order_unique",
            "order_customer_unique",
            "order_unique_paid",
            "customer_status_unique",
            "status_exists",
            "status_exists_paid",
        }
        for name, figures in uniques.items():
            assert figures[0] == figures[1], (mechanism, name, figures)
            if len(figures) == 4:
                assert figures[2] == figures[3], (mechanism, name, figures)
        assert uniques["order_unique"][:2] == [3, 3] and uniques["order_customer_unique"][0] == 2
        assert uniques["status_exists"][0] == 2  # "lost" and "returned"; a NULL status passes


def test_blocking_check_stops_the_downstream_asset(runs: dict[str, Run]) -> None:
    classic, connect = runs["classic"], runs["connect"]
    assert not classic.success and classic.failure is not None
    assert "blocking asset check" in classic.failure and "amount_non_negative" in classic.failure
    assert "orders" in classic.materialized and "orders_report" not in classic.materialized
    # the same job with a passing blocking check: the downstream asset runs
    assert connect.success, connect.failure
    assert "orders_report" in connect.materialized


def test_summary_log_line(run: Run) -> None:
    line = next(text for text in run.logs if text.startswith("[spark checks] orders:"))
    assert "12 checks, 9 failed" in line and "2 Spark action(s)" in line


def test_thresholds_and_where_in_metadata(run: Run) -> None:
    tolerant = _md(run.checks[("sales", "amount_in_range_tolerant")])
    assert tolerant["max_failed_fraction"] == 0.1 and "max_failed_rows" not in tolerant
    assert tolerant["definition"] == "in_range('amount', min=0, max=10000, max_failed_fraction=0.1)"
    assert _md(run.checks[("sales", "amount_in_range_rows")])["max_failed_rows"] == 1
    de = _md(run.checks[("sales", "email_valid_de_warn")])
    assert de["where"] == "country = 'DE'" and de["max_failed_rows"] == 2
    assert de["failed_fraction"] == pytest.approx(0.2)
    assert "where" not in _md(run.checks[("sales", "email_valid")])
    assert _md(run.checks[("sales", "customer_exists")])["definition"] == (
        "relationships('customer_id', to='customers', field='id')"
    )
    assert _md(run.checks[("sales", "sale_id_unique_fr")])["distinct_keys"] == 10


def test_expect_aggregate_reports_the_aggregates_it_reads(run: Run) -> None:
    md = _md(run.checks[("sales", "revenue_positive")])
    assert md["aggregates"] == {"sum(amount)": 38995.0} and md["value"] == "TRUE"
    huge = _md(run.checks[("sales", "no_huge_sale")])
    assert huge["aggregates"] == {"count_if(amount > 10000)": 1, "max(amount)": 20000.0}
    assert (
        huge["value"] == "FALSE"
        and "failed_rows_sample" not in run.checks[("sales", "no_huge_sale")].metadata
    )
    assert _md(run.checks[("sales", "average_small")])["aggregates"]["avg(amount)"] == pytest.approx(
        38995 / 19
    )
    assert _md(run.checks[("sales_rules", "sales_count")])["dqx_function"] == "is_aggr_not_less_than"


def test_samples_of_the_newer_kinds(run: Run) -> None:
    columns, records, _ = _sample(run, "sales", "customer_exists")
    assert columns[0] == "customer_id" and not any(c.startswith("__pipes") for c in columns)
    assert sorted(r["customer_id"] for r in records) == [6, 6, 6, 99]
    _, records, _ = _sample(run, "sales", "email_valid_de")  # only rows in `where`'s scope
    assert sorted(r["email"] for r in records) == ["bad-email", "u13@shop.DE"]
    _, records, _ = _sample(run, "sales", "amount_in_range")
    assert sorted(r["amount"] for r in records) == [-5.0, 20000.0]
    _, records, _ = _sample(run, "sales", "sale_id_unique")
    assert [r["sale_id"] for r in records] == [19, 19]
    _, records, _ = _sample(run, "sales", "big_sales_de")
    assert {r["country"] for r in records} == {"FR"} and len(records) == 5


def test_rules_files_keep_their_criticality_and_filter(run: Run) -> None:
    rules = run.message["rules"]
    assert rules["email_not_matching_regex"].startswith("dqx regex_match(column='email', regex='^[^@")
    assert rules["email_not_matching_regex"].endswith(", filter=\"country = 'DE'\"")
    assert rules["country_is_not_in_the_list"] == "dqx is_in_list(allowed=[\"'DE'\"], column='country')"
    assert rules["customer_id_not_exists_in_ref_id"] == (
        "dqx foreign_key(columns=['customer_id'], ref_columns=['id'], ref_table='customers')"
    )


# --- the shipped notebook ---------------------------------------------------------------------


def test_shipped_checks_notebook_runs_through_the_jobs_api(tmp_path: Path) -> None:
    from dagster_databricks import PipesDatabricksClient, PipesDbfsMessageReader
    from databricks.sdk.service import jobs

    from dagster_pipes_spark.testing import Emulator

    notebook = REPO / "notebooks" / "payments_checks.py"
    names = [
        "amount_non_negative",
        "payment_id_not_null",
        "payment_id_unique",
        "method_known",
        "amount_in_range",
        "card_reference",
        "customer_exists",
        "cash_share",
        "enough_rows",
        "fresh",
        "contract",
    ]
    with Emulator(root=tmp_path / "ws") as ws:
        path = "/Workspace/Shared/payments_checks"
        ws.jobs.workspace_path(path).parent.mkdir(parents=True, exist_ok=True)
        ws.jobs.workspace_path(path).write_text(notebook.read_text())
        ws.jobs.extra_env["PYTHONPATH"] = str(REPO)
        client = ws.workspace_client()

        @dg.asset(name="payments", check_specs=[dg.AssetCheckSpec(n, asset="payments") for n in names])
        def payments(context: dg.AssetExecutionContext):  # no return annotation: dagster reads it
            task = {
                "task_key": "nb",
                "existing_cluster_id": "0101-000000-test",
                "notebook_task": {"notebook_path": path},
            }
            return (
                PipesDatabricksClient(
                    client=client,
                    poll_interval_seconds=0.5,
                    message_reader=PipesDbfsMessageReader(client=client, interval=1),
                )
                .run(task=jobs.SubmitTask.from_dict(task), context=context, extras={"rows": 30})
                .get_results()
            )

        result = dg.materialize([payments], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success
    [mat] = result.get_asset_materialization_events()
    assert mat.materialization.metadata["dagster/row_count"].value == 30
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert sorted(evaluations) == sorted(names)
    failed = {n: e for n, e in evaluations.items() if not e.passed}
    assert list(failed) == ["method_known"]  # every third payment is 'cash'
    assert failed["method_known"].severity == dg.AssetCheckSeverity.WARN
    assert failed["method_known"].metadata["failed_rows"].value == 10
    assert evaluations["payment_id_unique"].metadata["total_rows"].value == 30
    sample = failed["method_known"].metadata["failed_rows_sample"]
    assert isinstance(sample, dg.TableMetadataValue)
    assert [r.data["method"] for r in sample.records] == ["cash"] * 5


# --- definitions, without Spark ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ({}, "the mapping is empty"),
        ([("a", "x > 0")], "expected a dict"),
        ({"a": 1.5}, "check 'a': expected a SQL string or expect(...)"),
        ({"a": ""}, "non-empty SQL string"),
        ({"a": not_null("x", severity="fatal")}, "check 'a' (not_null('x')): unknown severity 'fatal'"),
        ({"a": not_null()}, "not_null needs at least one column"),
        ({"a": unique("x", "")}, "column names must be non-empty strings"),
        ({"a": accepted_values("s", [])}, "needs at least one value"),
        ({"a": accepted_values("s", ["x", None])}, "None is never accepted"),
        ({"a": accepted_values("s", [object()])}, "is not a str, number, bool, date"),
        ({"a": row_count()}, "row_count needs `min`, `max` or both"),
        ({"a": row_count(min=5, max=1)}, "min=5 is greater than max=1"),
        ({"a": row_count(min=-1)}, "must be a non-negative int"),
        ({"a": fresh("t", max_age=dt.timedelta(0))}, "must be a positive timedelta"),
        ({"a": has_columns({"x": ""})}, "must be a Spark SQL type name"),
        ({"a": expect("x > 0", description=3)}, "`description` must be a string"),  # type: ignore[arg-type]
    ],
)
def test_invalid_definitions_name_the_check(checks: Any, expected: str) -> None:
    with pytest.raises(DagsterPipesError, match="Invalid") as info:
        coerce_checks(checks, "report_spark_checks")
    assert expected in str(info.value)


def test_every_invalid_check_is_listed_and_nothing_touches_the_data() -> None:
    data: Any = object()  # not a DataFrame: the definitions fail first
    with pytest.raises(DagsterPipesError) as info:
        report_spark_checks(None, data, {"a": row_count(), "b": not_null("x", severity="X"), "c": "x > 0"})
    text = str(info.value)
    assert "check 'a'" in text and "check 'b'" in text and "check 'c'" not in text
    with pytest.raises(DagsterPipesError, match="sample_size"):
        report_spark_checks(None, data, {"c": "x > 0"}, sample_size=-1)
    with pytest.raises(DagsterPipesError, match="expected a DataFrame"):
        report_spark_checks(None, data, {"c": "x > 0"})


def test_definition_text_and_sql() -> None:
    assert accepted_values("s", "x").definition == "accepted_values('s', ['x'])"
    assert has_columns(["a", "b"]).definition == "has_columns(['a', 'b'])"
    assert has_columns({"a": "bigint"}).definition == "has_columns({'a': 'bigint'})"
    assert fresh("t", max_age=dt.timedelta(hours=2, minutes=30)).definition == "fresh('t', max_age=2h30m)"
    assert fresh("t", max_age=1.5).definition == "fresh('t', max_age=1.5s)"
    assert row_count(min=1, max=10).definition == "row_count(min=1, max=10)"
    assert sql_literal("it's") == "'it\\'s'" and sql_literal(3, as_string=True) == "'3'"
    assert sql_literal(True) == "TRUE" and sql_literal(dt.date(2024, 1, 2)) == "DATE '2024-01-02'"
    assert normalize_type("DECIMAL(10, 2)") == "decimal(10,2)" and normalize_type("long") == "bigint"
    assert normalize_type("varchar(20)") == "string" and normalize_type("Integer") == "int"
    columns = Columns((("Amount", "double"), ("my col", "string")))
    assert columns.ref("amount") == "`Amount`" and columns.ref("s.x") == "`s`.`x`"
    assert columns.read_by("amount > 0 AND `my col` <> 'amount'") == ["Amount", "my col"]


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ({"a": not_null("x", max_failed_rows=-1)}, "`max_failed_rows` must be a non-negative int, got -1"),
        ({"a": unique("x", max_failed_rows=True)}, "`max_failed_rows` must be a non-negative int"),
        (
            {"a": expect("x > 0", max_failed_fraction=-0.1)},
            "`max_failed_fraction` must be a number from 0 to 1",
        ),
        ({"a": matches("x", "a", where="")}, "`where` must be a non-empty SQL predicate"),
        ({"a": in_range("x")}, "in_range needs `min`, `max` or both"),
        ({"a": in_range("x", min=5, max=1)}, "min=5 is greater than max=1"),
        ({"a": in_range("x", min=[1])}, "`min` must be a number, date, datetime or string"),
        ({"a": matches("x", "")}, "`pattern` must be a non-empty regular expression"),
        ({"a": relationships("x", to=3)}, "`to` must be a table name or a DataFrame, got int"),
        ({"a": relationships("x", to="t", field="")}, "`field` must be a non-empty column name"),
        ({"a": expect_aggregate(" ")}, "expect_aggregate: the expression must be a non-empty SQL string"),
    ],
)
def test_invalid_newer_definitions_name_the_check(checks: Any, expected: str) -> None:
    with pytest.raises(DagsterPipesError, match="Invalid") as info:
        coerce_checks(checks, "report_spark_checks")
    assert "check 'a'" in str(info.value) and expected in str(info.value)


def test_newer_definitions_and_aggregate_calls() -> None:
    assert in_range("a", min=0).definition == "in_range('a', min=0)"
    assert in_range("d", min=dt.date(2024, 1, 1)).definition == "in_range('d', min=datetime.date(2024, 1, 1))"
    assert matches("e", "^x$", max_failed_rows=3).definition == "matches('e', '^x$', max_failed_rows=3)"
    assert relationships("c", to="cat.s.t").definition == "relationships('c', to='cat.s.t')"
    assert unique("k", where="y > 1").definition == "unique('k', where='y > 1')"
    assert (
        accepted_values("s", ["a"], allow_null=True).definition
        == "accepted_values('s', ['a'], allow_null=True)"
    )
    assert aggregate_calls("sum(a) > 0 AND coalesce(max(`b`), 0) < 10 AND 'avg(x)' <> ''") == [
        "sum(a)",
        "max(`b`)",
    ]
    assert aggregate_calls("count(*) FILTER (WHERE x > 1) >= 2 * count(1)") == [
        "count(*) FILTER (WHERE x > 1)",
        "count(1)",
    ]
    assert aggregate_calls("my_udf(x) AND summary(y)") == []


def test_load_checks_own_format_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "checks.yaml"
    yaml_file.write_text(
        "amount_ok:\n  kind: in_range\n  column: amount\n  min: 0\n  max_failed_fraction: 0.01\n"
        "ids: {kind: unique, columns: [a, b], where: 'a > 0', severity: WARN}\n"
        "fresh: {kind: fresh, column: ts, max_age: 1d2h}\n"
        "positive: amount > 0\n"
        "fk: {kind: relationships, column: c, to: main.s.customers, field: id}\n"
    )
    checks = load_checks(yaml_file)
    assert {n: c.definition for n, c in checks.items()} == {
        "amount_ok": "in_range('amount', min=0, max_failed_fraction=0.01)",
        "ids": "unique('a', 'b', where='a > 0')",
        "fresh": "fresh('ts', max_age=1d2h)",
        "positive": "expect('amount > 0')",
        "fk": "relationships('c', to='main.s.customers', field='id')",
    }
    assert checks["ids"].level == "WARN"
    json_file = tmp_path / "checks.json"
    json_file.write_text(json.dumps({"n": {"kind": "not_null", "columns": ["a", "b"], "max_failed_rows": 2}}))
    assert load_checks(json_file)["n"].definition == "not_null('a', 'b', max_failed_rows=2)"
    assert load_checks({"x": "a = 1"})["x"].definition == "expect('a = 1')"


def test_load_checks_dqx_format() -> None:
    frame: Any = mock.MagicMock(spec=["selectExpr", "schema"])
    rules = [
        {
            "criticality": "warn",
            "filter": "x > 0",
            "check": {"function": "is_not_null", "arguments": {"column": "a"}},
        },
        {"check": {"function": "is_not_null", "arguments": {"column": "a"}}},  # same name: a suffix
        {
            "name": "fk",
            "check": {
                "function": "foreign_key",
                "arguments": {"columns": ["c"], "ref_columns": ["id"], "ref_df_name": "customers"},
            },
        },
        {"check": {"function": "is_not_less_than", "arguments": {"column": "n", "limit": 3}}},
        {
            "check": {
                "function": "is_aggr_not_greater_than",
                "arguments": {"column": "n", "aggr_type": "max", "limit": 9, "group_by": ["g"]},
            },
            "filter": "k = 1",
        },
        {"check": {"function": "sql_expression", "arguments": {"expression": "a < b", "negate": True}}},
        {"check": {"function": "is_unique", "arguments": {"columns": ["a", "b"], "nulls_distinct": False}}},
    ]
    checks = load_checks(rules, dataframes={"customers": frame})
    assert list(checks) == [
        "a_is_null",
        "a_is_null_2",
        "fk",
        "n_less_than_limit",
        "n_max_group_by_g_greater_than_limit",
        "a_b",
        "struct_a_b_is_not_unique",
    ]
    assert checks["a_is_null"].definition == "dqx is_not_null(column='a'), filter='x > 0'"
    assert checks["a_is_null"].level == "WARN" and checks["fk"].level == "ERROR"
    assert checks["fk"].to is frame  # type: ignore[attr-defined]


def test_load_checks_names_compare_datasets_as_dqx() -> None:
    frame = object()
    rules = [
        {
            "check": {
                "function": "compare_datasets",
                "arguments": {
                    "columns": ["id", "Day"],
                    "ref_columns": ["ref_id", "day"],
                    "ref_df_name": "before",
                },
            }
        }
    ]
    checks = load_checks(rules, dataframes={"before": frame})
    assert list(checks) == ["datasets_diff_pk_id_day_ref_ref_id_day"]
    assert checks["datasets_diff_pk_id_day_ref_ref_id_day"].to is frame  # type: ignore[attr-defined]


#: compare_datasets on DQX's documented examples: the rows (id, k, v) and the reference's (k, v)
COMPARE_SCRIPT = """
import json, sys
from pyspark.sql import SparkSession
from dagster_pipes_spark.spark import apply_spark_checks, load_checks

spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").config(
    "spark.sql.shuffle.partitions", "2").getOrCreate()
df = spark.createDataFrame(
    [(1, 1, 1.0), (2, 1, 2.0), (3, 2, 1.0), (4, 2, 1.0), (5, 3, 2.001), (6, 4, None), (7, None, 5.0),
     (8, 5, 100.0)], "id INT, k INT, v DOUBLE")
ref = spark.createDataFrame(
    [(1, 2.0), (1, 1.0), (2, 1.0), (3, 2.0099), (4, None), (None, 5.0), (5, 101.0), (9, 0.0)],
    "k INT, v DOUBLE")
base = {"columns": ["k"], "ref_columns": ["k"], "ref_df_name": "ref"}
rules = []
for name, extra, where in json.loads(sys.argv[1]):
    rule = {"name": name, "criticality": "warn", "check": {"function": "compare_datasets", "arguments": {**base, **extra}}}
    if where:
        rule["filter"] = where
    rules.append(rule)
rows = apply_spark_checks(None, df, load_checks(rules, dataframes={"ref": ref})).collect()
out = {r["name"]: [] for r in rules}
for row in sorted(rows, key=lambda r: r["id"]):
    for item in row["_warnings"] or []:
        out[item["name"]].append([row["id"], json.loads(item["message"])])
print("RESULT " + json.dumps(out))
"""


def test_compare_datasets_pairs_duplicates_tolerances_and_nulls_as_dqx(tmp_path: Path) -> None:
    """DQX's compare_datasets examples: duplicate keys paired by their ordered values (key 1's 1.0 and
    2.0 both matched; key 2's second 1.0 extra), abs_tolerance 0.01 (2.001 = 2.0099, 100 != 101),
    rel_tolerance 0.01 (100 = 101), NULL keys and values matched NULL-safely unless told otherwise, and
    a filter pairing the in-scope row with the equal reference row first."""
    import subprocess

    cases = [
        ["plain", {}, None],
        ["abs", {"abs_tolerance": 0.01}, None],
        ["rel", {"rel_tolerance": 0.01}, None],
        ["rows", {"null_safe_row_matching": False}, None],
        ["values", {"null_safe_column_value_matching": False}, None],
        ["scoped", {}, "id IN (4, 8)"],
    ]
    script = tmp_path / "compare.py"
    script.write_text(COMPARE_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(cases)],
        capture_output=True,
        text=True,
        env=external_env(),
        timeout=600,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT ") :])

    def diff(extra: bool, changed: dict[str, Any]) -> dict[str, Any]:
        return {"row_missing": False, "row_extra": extra, "changed": changed}

    extra_one = diff(True, {"v": {"df": "1.0"}})  # a reference row for one of key 2's two rows only
    hundred = diff(False, {"v": {"df": "100.0", "ref": "101.0"}})
    three = diff(False, {"v": {"df": "2.001", "ref": "2.0099"}})
    for name, flagged in out.items():
        key_two = [message for i, message in flagged if i in (3, 4)]
        others = [[i, message] for i, message in flagged if i not in (3, 4)]
        # without NULL-safe value matching, 1.0 against no value is not a change (DQX's ``!=``)
        expected_key_two = {"scoped": [], "values": [diff(True, {})]}.get(name, [extra_one])
        assert key_two == expected_key_two, name
        expected = {
            "plain": [[5, three], [8, hundred]],
            "abs": [[8, hundred]],
            "rel": [],
            "rows": [[5, three], [7, diff(True, {"v": {"df": "5.0"}})], [8, hundred]],
            "values": [[5, three], [8, hundred]],
            "scoped": [[8, hundred]],
        }[name]
        assert others == expected, name


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            [
                {
                    "name": "same",
                    "check": {
                        "function": "compare_datasets",
                        "arguments": {
                            "columns": ["id"],
                            "ref_columns": ["id"],
                            "ref_table": "t",
                            "check_missing_records": True,
                        },
                    },
                }
            ],
            "rule 1 (same): argument 'check_missing_records' of 'compare_datasets' is not supported",
        ),
        (
            [
                {
                    "check": {
                        "function": "compare_datasets",
                        "arguments": {
                            "columns": ["id"],
                            "ref_columns": ["id"],
                            "abs_tolerance": -1,
                            "ref_table": "t",
                        },
                    }
                }
            ],
            "argument 'abs_tolerance' must be a non-negative number",
        ),
        (
            [
                {
                    "check": {
                        "function": "compare_datasets",
                        "arguments": {"columns": ["id"], "ref_columns": ["id"]},
                    }
                }
            ],
            "rule 1 (compare_datasets): give exactly one of 'ref_df_name' and 'ref_table'",
        ),
        (
            [{"check": {"function": "no_such_check", "arguments": {"column": "a"}}}],
            "function 'no_such_check' is not a DQX check function",
        ),
        (
            [{"criticality": "fatal", "check": {"function": "is_not_null", "arguments": {"column": "a"}}}],
            "invalid 'criticality' value 'fatal'",
        ),
        (
            [{"name": "n", "check": {"function": "is_not_null", "arguments": {"column": "a", "trim": True}}}],
            "rule 1 (n): unexpected argument 'trim' for function 'is_not_null'",
        ),
        (
            [
                {
                    "check": {
                        "function": "is_not_in_future",
                        "arguments": {"column": "a", "curr_timestamp": "x"},
                    }
                }
            ],
            "argument 'curr_timestamp' of 'is_not_in_future' is not supported",
        ),
        (
            [
                {
                    "check": {
                        "function": "is_aggr_equal",
                        "arguments": {"column": "a", "limit": 1, "aggr_type": "sum", "aggr_params": {"x": 1}},
                    }
                }
            ],
            "argument 'aggr_params' of 'is_aggr_equal' is not supported",
        ),
        (
            [
                {
                    "check": {
                        "function": "foreign_key",
                        "arguments": {"columns": ["a", "b"], "ref_columns": ["x"], "ref_table": "t"},
                    }
                }
            ],
            "'columns' has 2 entries but 'ref_columns' has 1",
        ),
        ({"a": {"kind": "nope"}}, "check 'a': unknown kind 'nope'; use one of expect, not_null"),
        ({"a": {"kind": "in_range", "column": "x", "maximum": 3}}, "in_range takes column, min, max"),
        (
            {"a": {"kind": "not_null", "column": "x", "max_failed_rows": -2}},
            "must be a non-negative int, got -2",
        ),
        (42, "expected a mapping of check name -> check, or a list of DQX rules"),
    ],
)
def test_load_checks_rejects_what_it_cannot_map(content: Any, expected: str) -> None:
    with pytest.raises(DagsterPipesError, match="Invalid") as info:
        load_checks(content)
    assert expected in str(info.value)


def test_load_checks_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DagsterPipesError, match="cannot read"):
        load_checks(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DagsterPipesError, match=r"broken\.json: JSONDecodeError"):
        load_checks(broken)
