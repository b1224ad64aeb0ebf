"""The README's demo command keeps working."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent


def test_demo_runs_and_summarizes():
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "demo.py")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.split("data version", 1)[1]
    for asset, transport in (("orders", "file"), ("revenue", "dbfs"), ("customers", "volumes")):
        line = next(line for line in table.splitlines() if line.startswith(asset))
        assert transport in line and "passed" in line
    assert "run succeeded" in proc.stdout
