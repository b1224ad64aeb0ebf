"""The import-layer contract (``.ci/layers.py``, run by ``bash .ci/dev lint``): the package keeps it,
and each kind of violation planted in a copy of the package is caught, named with its file and line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / ".ci" / "layers.py"
PACKAGE = ROOT / "dagster_pipes_spark"


def _check(package_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), str(package_dir)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "dagster_pipes_spark"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _plant(package_dir: Path, module: str, text: str) -> None:
    path = package_dir / module
    path.write_text(path.read_text() + "\n" + text + "\n")


def test_the_package_keeps_the_contract() -> None:
    result = _check(PACKAGE)
    assert result.returncode == 0, result.stdout
    assert "0 violation(s)" in result.stderr


@pytest.mark.parametrize(
    ("module", "planted", "expected"),
    [
        (
            "spark/_write_record.py",
            "from dagster_pipes_spark.testing import _faults",
            "spark._write_record (spark) imports testing._faults (testing)",
        ),
        (
            "testing/_rest.py",
            "def later():\n    from dagster_pipes_spark.spark import _targets",
            "testing._rest (testing) imports spark._targets (spark) (inside a function)",
        ),
        (
            "_context.py",
            "from dagster_pipes_spark._transports import retry",
            "_context (core) imports _transports.retry (transports)",
        ),
        (
            "_transports/pending.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..spark import _collector",
            "_transports.pending (transports) imports spark._collector (spark) (under TYPE_CHECKING)",
        ),
        (
            "cli.py",
            "from dagster_pipes_spark.testing import _emulator",
            "cli may import ['testing', 'transports'] only lazily or under TYPE_CHECKING",
        ),
        (
            "_transports/blob.py",
            "from dagster_pipes_spark import cli",
            "_transports.blob imports the entry point cli",
        ),
        (
            "spark/_targets.py",
            "def later():\n    from dagster_pipes_spark.spark import _session",
            "spark._targets (shared) imports spark._session (entry) (inside a function): spark/ layers,"
            " lowest first: shared < formats < concepts < mechanisms < entry",
        ),
        (
            "spark/_classic/__init__.py",
            "from dagster_pipes_spark.spark import _connect",
            "spark._classic (mechanisms) imports spark._connect (mechanisms): the units of the mechanisms"
            " layer are independent of each other",
        ),
    ],
    ids=[
        "spark-to-testing",
        "lazy-upward",
        "core-to-transports",
        "type-checking-upward",
        "cli-eager",
        "entry-point",
        "spark-inner-upward",
        "spark-sibling-mechanisms",
    ],
)
def test_a_planted_layer_violation_is_named(copy: Path, module: str, planted: str, expected: str) -> None:
    _plant(copy, module, planted)
    result = _check(copy)
    assert result.returncode == 1
    assert expected in result.stdout, result.stdout
    line = next(text for text in result.stdout.splitlines() if expected in text)
    assert line.startswith(str(copy / module) + ":")


def test_a_spark_unit_in_no_layer_is_named(copy: Path) -> None:
    """A new module or folder of ``spark/`` is placed in a layer before it passes."""
    (copy / "spark" / "_newcomer.py").write_text("from dagster_pipes_spark.spark import _targets\n")
    result = _check(copy)
    assert result.returncode == 1
    assert f"{copy / 'spark' / '_newcomer.py'}:1: spark._newcomer is in no layer of spark/" in result.stdout


def test_a_cycle_hidden_behind_type_checking_is_a_cycle(copy: Path) -> None:
    _plant(
        copy,
        "_errors.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dagster_pipes_spark._context import PipesContext",
    )
    result = _check(copy)
    assert result.returncode == 1
    cycle = next(text for text in result.stdout.splitlines() if text.startswith("import cycle:"))
    assert "_context" in cycle and "_errors" in cycle
    assert f"{copy / '_errors.py'}:" in cycle


def test_a_lazy_import_breaks_no_contract_within_its_layer(copy: Path) -> None:
    """Importing inside a function (the usual way out of a start-up cost) is fine within the rules."""
    _plant(copy, "_errors.py", "def later():\n    from dagster_pipes_spark._context import PipesContext")
    assert _check(copy).returncode == 0
