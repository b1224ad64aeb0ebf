"""DQX as the oracle of this library's checks: the table and reference DataFrames of
``dqx_oracle.py`` (built to hit every DQX 0.17 check function's edge cases), the rules of
``tests/dqx/checks.yml`` applied by DQX's own engine (``dqx_oracle.run_dqx``) and by this library
(``report_spark_checks``, ``apply_spark_checks``, ``split_spark_checks``) on the same DataFrame, and
per rule the row ids each one flags written to a JSON file for ``tests/test_dqx_parity.py``.

Runs in DQX's own environment (runtime ``dqx``), launched by Dagster through Pipes; extras:
``mechanism`` (``classic``: ``local[1]``; ``connect``: ``remote("local[1]")``), ``rules`` (the YAML
file), ``out`` (the JSON file written), ``refused`` (``[function, argument]`` pairs the library
refuses at load: those rules are left out of its side), ``oracle`` (whether DQX runs too: its
verdicts do not depend on the mechanism, the test runs it once). ``python dqx_parity_job.py RULES OUT
[classic|connect [REFUSED_JSON [ours-only]]]`` runs it outside Dagster (``pipes`` is then ``None``: nothing is reported).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

from dqx_oracle import ID, flagged_ids, frames, item_fields, run_dqx, session


def refused(rule: dict[str, Any], pairs: list[list[str]]) -> bool:
    """Whether ``rule`` uses a (function, argument) the library refuses (argument ``""``: any)."""
    check = rule.get("check", {})
    return any(
        check.get("function") == function and (not argument or argument in (check.get("arguments") or {}))
        for function, argument in pairs
    )


def run_ours(pipes: Any, df: Any, rules: Any, refs: dict[str, Any]) -> dict[str, Any]:
    """This library on the same data: names and failed rows (``report_spark_checks``, reported to
    Dagster), flagged ids (the result columns of ``split_spark_checks``' checked rows, which are
    ``apply_spark_checks``' result) and the split's parts. Each step's
    error is recorded (a traceback's last lines), so the comparison fails readably."""
    out: dict[str, Any] = {}
    try:
        from dagster_pipes_spark.spark import load_checks, report_spark_checks

        checks = load_checks(rules, dataframes=refs)
        out["names"] = list(checks)
    except Exception as exc:  # noqa: BLE001 - recorded for the test
        out["load_error"] = _error(exc)
        return out
    started = time.perf_counter()
    try:
        results = report_spark_checks(pipes, df, checks)
        out["failed_rows"] = {name: getattr(r, "failed_rows", None) for name, r in results.items()}
        out["passed"] = {name: bool(getattr(r, "passed", False)) for name, r in results.items()}
    except Exception as exc:  # noqa: BLE001
        out["report_error"] = _error(exc)
    out["report_seconds"] = round(time.perf_counter() - started, 2)
    try:
        # split_spark_checks' checked rows are apply_spark_checks' result (one annotated evaluation
        # serves both: the flags are read from it, the split from its two parts)
        from dagster_pipes_spark.spark import split_spark_checks

        split = split_spark_checks(None, df, checks)
        valid, invalid = split  # a CheckedSplit unpacks as (valid, invalid)
        out["flags"], ids = flagged_ids(split.checked)
        out["rows"] = len(ids)
        out["errors_fields"] = item_fields(split.checked, "_errors")
        out["warnings_fields"] = item_fields(split.checked, "_warnings")
        out["split"] = {
            "valid": sorted(r[ID] for r in valid.select(ID).collect()),
            "invalid": sorted(r[ID] for r in invalid.select(ID).collect()),
            "valid_columns": valid.columns,
        }
    except Exception as exc:  # noqa: BLE001
        out["split_error"] = _error(exc)
    return out


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc().splitlines(True)[-12:])


def _write(path: str, result: dict[str, Any]) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(path + ".tmp", path)


def compare(
    pipes: Any, mechanism: str, rules_path: str, out: str, refusals: list[list[str]], oracle: bool = True
) -> dict[str, Any]:
    """Both sides on the same data; ``out`` is written once DQX is done (a job stopped by its
    timeout in the library's side leaves DQX's verdicts) and again at the end."""
    import yaml

    with open(rules_path) as f:
        rules = yaml.safe_load(f)
    spark = session(mechanism)
    df, refs = frames(spark)
    import pyspark

    result: dict[str, Any] = {"mechanism": mechanism, "pyspark": pyspark.__version__, "columns": df.columns}
    if oracle:
        try:
            result["dqx"] = run_dqx(spark, df, rules, refs)
        except Exception as exc:  # noqa: BLE001 - the test says DQX itself failed
            result["dqx_error"] = _error(exc)
        _write(out, result)
    # the file itself, or (when the library refuses some rules at load) the rules it honours
    ours = [r for r in rules if not refused(r, refusals)] if refusals else rules_path
    result["ours"] = run_ours(pipes, df, ours, refs)
    _write(out, result)
    return result


def main() -> None:
    if len(sys.argv) >= 3:  # outside Dagster
        rules_path, out_path = sys.argv[1], sys.argv[2]
        mechanism = sys.argv[3] if len(sys.argv) > 3 else "classic"
        refusals = json.loads(sys.argv[4]) if len(sys.argv) > 4 else []
        compare(None, mechanism, rules_path, out_path, refusals, oracle=sys.argv[5:6] != ["ours-only"])
        return
    from dagster_pipes_spark import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        refusals = extras.get("refused", [])
        compare(
            pipes, extras["mechanism"], extras["rules"], extras["out"], refusals, extras.get("oracle", True)
        )
        pipes.log.info(f"dqx parity: wrote {extras['out']} (pid {os.getpid()})")


if __name__ == "__main__":
    main()
