"""``dagster_pipes_spark.testing.runtimes``: environments built from a list, cached by its hash, with
local wheels layered on top; offline (no index: only this repo's wheels and the standard library)."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _helpers import REPO

from dagster_pipes_spark import DagsterPipesError
from dagster_pipes_spark.testing.runtimes import (
    LISTS_ENV,
    build_runtime,
    lock_requirements,
    resolve_list,
    runtime_env_var,
)

MARKER = "dagster-pipes-runtime.json"
PROBE = (
    "import importlib.util, json; spec = importlib.util.find_spec; print(json.dumps({"
    "'lib': getattr(spec('dagster_pipes_spark'), 'origin', None), 'job': spec('pipes_wheel_job') is not None,"
    " 'dagster': spec('dagster') is not None}))"
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """This library's wheel and the example wheel job's, built once."""
    dist = tmp_path_factory.mktemp("dist")
    built = {}
    for key, project in (("lib", REPO), ("job", REPO / "examples" / "wheel_job")):
        out = dist / key
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(out),
                str(project),
            ],
            check=True,
            capture_output=True,
        )
        [built[key]] = out.glob("*.whl")
    return built


def _probe(python: Path, cwd: Path) -> dict[str, object]:
    out = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, check=True, cwd=cwd)
    return dict(json.loads(out.stdout))


def _venv_creations(cache: Path) -> int:
    return sum(log.read_text().count(" -m venv ") for log in cache.glob("*.log"))


def test_build_caches_the_base_and_layers_the_packages(tmp_path: Path, wheels: dict[str, Path]) -> None:
    listing = tmp_path / "tiny.txt"
    listing.write_text("# nothing to install: the layering and caching are under test\n")
    cache = tmp_path / "cache"
    python = build_runtime(listing, packages=[wheels["lib"]], cache_dir=cache)
    assert python.is_relative_to(cache) and python.parent.parent.name.startswith("tiny-")
    found = _probe(python, tmp_path)
    assert str(found["lib"]).startswith(str(python.parent.parent))  # installed from the wheel
    assert found["job"] is False and found["dagster"] is False
    assert _venv_creations(cache) == 2  # the base and one layer

    started = time.monotonic()
    assert build_runtime(listing, packages=[wheels["lib"]], cache_dir=cache) == python
    assert time.monotonic() - started < 5 and _venv_creations(cache) == 2  # all from the cache

    both = build_runtime(listing, packages=[wheels["lib"], wheels["job"]], cache_dir=cache)
    assert both != python and _probe(both, tmp_path)["job"] is True
    assert _venv_creations(cache) == 3  # a new layer on the same base
    bases = [p for p in cache.iterdir() if p.is_dir() and "+" not in p.name]
    assert len(bases) == 1 and json.loads((bases[0] / MARKER).read_text())["requirements"] == []

    listing.write_text(f"# a changed list is another environment\n{wheels['lib']}\n{wheels['job']}\n")
    changed = build_runtime(listing, cache_dir=cache)
    assert changed.parent.parent.name != bases[0].name
    found = _probe(changed, tmp_path)
    assert str(found["lib"]).startswith(str(changed.parent.parent)) and found["job"] is True


def test_concurrent_builders_build_once_and_an_interrupted_build_is_redone(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(build_runtime([], name="same", cache_dir=cache)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(set(results)) == 1 and len(results) == 3 and _venv_creations(cache) == 1
    env = results[0].parent.parent
    (env / MARKER).unlink()  # as if the build had been killed before it finished
    (env / "half-written").write_text("junk")
    assert build_runtime([], name="same", cache_dir=cache) == results[0]
    assert (env / MARKER).is_file() and not (env / "half-written").exists()


def test_bad_input_names_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LISTS_ENV, str(tmp_path))
    with pytest.raises(DagsterPipesError, match=f"No runtime requirement list 'nope'.*{LISTS_ENV}"):
        resolve_list("nope")
    (tmp_path / "mine.txt").write_text("not a requirement !!\n")
    assert resolve_list("mine") == tmp_path / "mine.txt"
    with pytest.raises(
        DagsterPipesError, match=r"Installing the runtime mine-\w+ failed \(exit \d+; log: .*"
    ):
        build_runtime("mine", cache_dir=tmp_path / "cache")
    with pytest.raises(DagsterPipesError, match="neither a wheel file nor a project directory"):
        build_runtime([], packages=[tmp_path], cache_dir=tmp_path / "cache")
    assert runtime_env_var("spark35") == "DAGSTER_PIPES_SPARK_RUNTIME_SPARK35"


def test_lock_resolves_to_exact_pins(wheels: dict[str, Path]) -> None:
    from dagster_pipes_spark import __version__

    assert lock_requirements(["--no-index", str(wheels["lib"])]) == [f"dagster-pipes-spark=={__version__}"]


def test_cli_prints_the_python(tmp_path: Path, wheels: dict[str, Path]) -> None:
    listing = tmp_path / "cli.txt"
    listing.write_text("")
    command = [sys.executable, "-m", "dagster_pipes_spark.testing.runtimes", "build", str(listing)]
    out = subprocess.run(
        [*command, "--dest", str(tmp_path / "c"), "--package", str(wheels["lib"])],
        capture_output=True,
        text=True,
        check=True,
    )
    python = Path(out.stdout.strip())
    assert python.is_file() and python.is_relative_to(tmp_path / "c")
    missing = subprocess.run([*command[:-1], "missing"], capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode == 1 and "error: No runtime requirement list 'missing'" in missing.stderr
