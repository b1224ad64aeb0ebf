"""Exercises every method with every metadata type, in shapes the stock library also accepts."""

import sys

from dagster_pipes import PipesContext, open_dagster_pipes  # type: ignore[attr-defined]  # the shim

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"

with open_dagster_pipes() as pipes:
    assert PipesContext.get() is pipes
    pipes.log.debug("debug line")
    pipes.log.info("info line %s", 1)
    pipes.log.warning("warning line")
    pipes.log.error("error line")
    pipes.log.critical("critical line")
    keys = pipes.asset_keys
    pipes.report_custom_message(
        {
            "asset_keys": list(keys),
            "extras": dict(pipes.extras),
            "run_id": pipes.run_id,
            "job": pipes.job_name,
            "retry": pipes.retry_number,
        }
    )
    col = {
        "name": "id",
        "type": "int",
        "description": "pk",
        "tags": {"pii": "no"},
        "constraints": {"nullable": False, "unique": True, "other": ["> 0"]},
    }
    pipes.report_asset_materialization(
        asset_key=keys[0],
        data_version="dv-1",
        metadata={
            "inferred_int": 7,
            "inferred_float": 1.5,
            "inferred_str": "s",
            "inferred_bool": True,
            "inferred_none": None,
            "inferred_list": [1, "a"],
            "infer": {"raw_value": {"k": [1, 2]}, "type": "__infer__"},
            "text": {"raw_value": "hello", "type": "text"},
            "url": {"raw_value": "https://example.com", "type": "url"},
            "path": {"raw_value": "/tmp/x", "type": "path"},
            "notebook": {"raw_value": "/nb.ipynb", "type": "notebook"},
            "json": {"raw_value": {"a": [1, {"b": None}]}, "type": "json"},
            "md": {"raw_value": "# T", "type": "md"},
            "float": {"raw_value": 2.5, "type": "float"},
            "int": {"raw_value": 3, "type": "int"},
            "bool": {"raw_value": False, "type": "bool"},
            "dagster_run": {"raw_value": "0c2f4a4e-0000-0000-0000-000000000000", "type": "dagster_run"},
            "asset": {"raw_value": "up/stream", "type": "asset"},
            "null": {"raw_value": None, "type": "null"},
            "table": {
                "raw_value": {
                    "records": [{"id": 1, "v": "x"}],
                    "schema": [col, {"name": "v", "type": "str"}],
                },
                "type": "table",
            },
            "table_schema": {"raw_value": {"columns": [col]}, "type": "table_schema"},
            "lineage": {
                "raw_value": {"deps_by_column": {"id": [{"asset_key": "up", "column_name": "uid"}]}},
                "type": "table_column_lineage",
            },
            "timestamp": {"raw_value": 1700000000.5, "type": "timestamp"},
        },
    )
    if len(keys) > 1:
        pipes.report_asset_materialization(asset_key=keys[1], metadata=None)
    pipes.report_asset_check("c_warn", passed=False, severity="WARN", metadata={"n": 1}, asset_key=keys[0])
    pipes.report_asset_check("c_err", passed=True, asset_key=keys[0])
    pipes.report_custom_message(["second", 2])
    if MODE == "raise":
        try:
            {"outer": 1}["inner"]
        except KeyError as e:
            raise ValueError("outer failure") from e
