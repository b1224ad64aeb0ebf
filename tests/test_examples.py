"""The README's demo command keeps working, and the example definitions load for `dagster dev`."""

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
    for asset, mode, transport, rows in (
        ("revenue", "spark_python_task", "DBFS", "10"),
        ("customers", "notebook_task", "UC Volumes", "50"),
        ("inventory", "python_wheel_task", "DBFS", "25"),
    ):
        line = next(line for line in table.splitlines() if line.startswith(asset))
        assert mode in line and transport in line and f" {rows} " in line and " ok" in line, line
    assert "all assets materialized" in proc.stdout


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
