"""What the Spark benchmarks share: a stub Pipes context that records reports, and how results are
saved (``benchmarks/results/<name>.{json,txt}`` with the machine's load)."""

from __future__ import annotations

import json
import logging
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


class StubPipes:
    """The slice of ``PipesContext`` the Spark helpers use, recording reports instead of sending them."""

    def __init__(self, asset_keys: list[str]) -> None:
        self._asset_keys = asset_keys
        self.reports: dict[str, Any] = {}
        self.log = logging.getLogger("bench.pipes")

    @property
    def asset_keys(self) -> list[str]:
        """The assets in scope."""
        return self._asset_keys

    def report_asset_materialization(
        self, metadata: Any = None, data_version: Any = None, asset_key: str | None = None
    ) -> None:
        """Record one materialization (once per asset, as Dagster accepts it)."""
        assert asset_key is not None and asset_key not in self.reports
        self.reports[asset_key] = metadata

    def report_asset_check(
        self,
        check_name: str,
        passed: bool,
        severity: str = "ERROR",
        metadata: Any = None,
        asset_key: Any = None,
    ) -> None:
        """Record one check result (once per check)."""
        assert check_name not in self.reports
        self.reports[check_name] = passed


def environment() -> str:
    """One line: Python, cores, load average now (the figures mean little on a busy machine)."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"Python {platform.python_version()} | nproc {os.cpu_count()} | load average {load}"


def save_results(name: str, head: str, results: Any, text: str) -> None:
    """Write ``results/<name>.json`` (with the environment line) and ``results/<name>.txt``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"environment": head, "results": results}, indent=2))
    (RESULTS / f"{name}.txt").write_text(head + "\n" + text + "\n")
