"""The README's demo command keeps working, and the example definitions load for `dagster dev`."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent


def test_demo_runs_and_summarizes():
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.split("data version", 1)[1]
    delta = "tables are written as Parquet" not in proc.stderr  # the Delta jars were had
    if not delta and os.environ.get("CI", "").lower() == "true":
        raise AssertionError(f"CI must have the Delta jars: {proc.stderr[-2000:]}")
    for asset, mode, transport, rows, spark_table in (
        ("revenue", "spark_python_task", "DBFS", "10", True),
        ("customers", "notebook_task", "UC Volumes", "50", True),
        ("inventory", "python_wheel_task", "DBFS", "25", False),
    ):
        line = next(line for line in table.splitlines() if line.startswith(asset))
        assert mode in line and transport in line and f" {rows} " in line and " ok" in line, line
        columns = re.split(
            r"\s{2,}", line
        )  # asset, mode, transport, rows, storage, delta/version, data version
        if spark_table and delta:  # a Delta table (as on Databricks): its commit is the data version
            assert columns[4] == "delta" and columns[5].isdigit() and columns[6] == columns[5], line
    assert "all assets materialized" in proc.stdout
    assert "Warning" not in proc.stdout + proc.stderr  # a quiet demo: its story and its table


def test_definitions_load():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, 'examples'); import definitions as d; "
            "print(sorted(a.key.to_user_string() for a in d.defs.resolve_all_asset_specs()))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "['customers', 'inventory', 'revenue']" in proc.stdout


def test_definitions_validate_with_the_dagster_cli():
    """What `dagster dev -f examples/definitions.py` loads first (needs dagster-webserver's deps)."""
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-f",
            "examples/definitions.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_webserver_is_installed_for_dagster_dev():
    import dagster_webserver

    assert dagster_webserver.__name__ == "dagster_webserver"


def test_assets_launched_like_the_webserver_does_materialize_with_row_counts(tmp_path):
    """A persistent instance, the code location loaded from the file and the run in its own process:
    the path a launch from the webserver takes (`dagster dev`), through the `dagster` CLI. One asset
    is enough for the path (every launch mode runs in the demo above)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("DATABRICKS_HOST", None)
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-f",
            "examples/definitions.py",
            "--select",
            "revenue",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        rows, kinds = {}, {}
        for key in ("revenue",):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None and event.asset_materialization is not None, key
            metadata = event.asset_materialization.metadata
            rows[key] = metadata["dagster/row_count"].value
            kinds[key] = (metadata["dagster/storage_kind"].value, "delta/version" in metadata)
    assert rows == {"revenue": 10}
    if "tables are written as Parquet" not in proc.stderr:  # the Delta jars were had
        assert kinds == {"revenue": ("delta", True)}
