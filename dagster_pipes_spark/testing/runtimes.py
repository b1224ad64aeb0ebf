"""Python environments ("runtimes") that run a job's external side the way a cluster would: a
virtualenv built from a pinned requirement list, cached by a hash of the list and the Python version,
with local packages (wheels or project directories: the job's own code) layered on top.

The orchestrator stays in its own environment; only the external process runs in the runtime::

    from dagster_pipes_spark.testing.runtimes import build_runtime

    python = build_runtime(".ci/runtimes/spark35.txt", packages=["."])  # -> .../bin/python
    PipesSubprocessClient().run(command=[str(python), "job.py"], context=context)

Command line (prints the runtime's Python executable)::

    python -m dagster_pipes_spark.testing.runtimes build NAME|FILE [--dest DIR] [--package PATH]...
    python -m dagster_pipes_spark.testing.runtimes lock REQUIREMENT... --output FILE

``NAME`` is a list ``NAME.txt`` in a directory of ``$DAGSTER_PIPES_SPARK_RUNTIME_LISTS``
(``os.pathsep``-separated) or in ``.ci/runtimes`` of the current directory. ``lock`` resolves
top-level requirements (``pyspark==3.5.0``) to a fully pinned list without installing anything.

The cache (``dest`` / ``cache_dir``, else ``$DAGSTER_PIPES_SPARK_RUNTIMES_DIR``, else
``~/.cache/dagster-pipes-spark/runtimes``) holds:

* ``<name>-<hash>/``: a virtualenv holding exactly the list (installed by this interpreter's pip;
  no pip of its own) — built once per machine, and pip's own cache makes a rebuild cheap;
* ``<name>-<hash>+<hash>/``: a thin virtualenv per set of local packages: its ``site-packages``
  chains to the base environment (a ``.pth`` file) and holds the packages, installed from their
  wheels without dependencies. It takes about a second, so changing the job's code never rebuilds
  the base. Layers unused for a week and bases unused for a month are removed.

Builds are guarded by a file lock (concurrent builders wait, then reuse) and marked complete only
at the end (an interrupted build is redone).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from dagster_pipes_spark._errors import DagsterPipesError

from ._cache import cache_root, file_sha256

__all__ = [
    "CACHE_DIR_ENV",
    "LISTS_ENV",
    "build_runtime",
    "lock_requirements",
    "main",
    "resolve_list",
    "runtime_env_var",
]

#: Directory of the runtime cache (default ``~/.cache/dagster-pipes-spark/runtimes``).
CACHE_DIR_ENV = "DAGSTER_PIPES_SPARK_RUNTIMES_DIR"
#: Directories (``os.pathsep``-separated) searched for ``NAME.txt`` lists, before ``.ci/runtimes``.
LISTS_ENV = "DAGSTER_PIPES_SPARK_RUNTIME_LISTS"
_MARKER = "dagster-pipes-runtime.json"
_LAYER_MAX_IDLE = 7 * 24 * 3600.0
_BASE_MAX_IDLE = 30 * 24 * 3600.0
#: part of every cache key: bump it when the way environments are built changes
_LAYOUT = "1"
_PIP_QUIET = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-q"]


def runtime_env_var(name: str) -> str:
    """The environment variable that carries runtime ``name``'s Python (``.ci/dev`` sets them):
    ``spark35`` -> ``DAGSTER_PIPES_SPARK_RUNTIME_SPARK35``."""
    return "DAGSTER_PIPES_SPARK_RUNTIME_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def resolve_list(name_or_file: str | os.PathLike[str]) -> Path:
    """The requirement list named ``name_or_file``: an existing file, else ``NAME.txt`` in
    ``$DAGSTER_PIPES_SPARK_RUNTIME_LISTS`` or ``./.ci/runtimes``."""
    path = Path(name_or_file)
    if path.is_file():
        return path.resolve()
    dirs = [Path(d) for d in os.environ.get(LISTS_ENV, "").split(os.pathsep) if d]
    dirs.append(Path.cwd() / ".ci" / "runtimes")
    for directory in dirs:
        candidate = directory / f"{name_or_file}.txt"
        if candidate.is_file():
            return candidate.resolve()
    raise DagsterPipesError(
        f"No runtime requirement list {str(name_or_file)!r}: it is not a file, and no "
        f"{name_or_file}.txt is in {', '.join(map(str, dirs))}. Pass a file path, or set "
        f"{LISTS_ENV} to the directory holding the lists."
    )


def _requirement_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            lines.append(line)
    return lines


def _python_identity(python: str) -> str:
    code = "import platform, sys; print(sys.version, platform.machine(), sys.implementation.name)"
    if Path(python).resolve() == Path(sys.executable).resolve():
        return f"{sys.version} {platform.machine()} {sys.implementation.name}"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise DagsterPipesError(f"Python {python!r} does not run: {out.stderr.strip()[-500:]}")
    return out.stdout.strip()


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def _pip(target: str | os.PathLike[str]) -> list[str]:
    """This interpreter's pip acting on ``target``'s environment (pip >= 22.3): environments need
    no pip of their own, and hold exactly what their list says."""
    return [sys.executable, "-m", "pip", "--python", str(target)]


def _venv_python(env: Path) -> Path:
    for candidate in (env / "bin" / "python", env / "Scripts" / "python.exe"):
        if candidate.exists():
            return candidate
    return env / "bin" / "python"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a sibling file), held while building."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: builds are not guarded
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run_logged(command: list[str], log: Path, timeout: float, what: str) -> None:
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(command) + "\n").encode())
        out.flush()
        try:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DagsterPipesError(
                f"{what} did not finish within {timeout:.0f} s (log: {log}); raise the timeout or check "
                "the network to the package index."
            ) from None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise DagsterPipesError(f"{what} failed (exit {proc.returncode}; log: {log}):\n" + "\n".join(tail))


def _site_packages(python: Path) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def _build_base(env: Path, requirements: list[str], python: str, timeout: float) -> None:
    log = env.parent / f"{env.name}.log"
    log.write_text("")
    started = time.monotonic()
    _run_logged(
        [python, "-m", "venv", "--clear", "--without-pip", str(env)],
        log,
        120,
        f"Creating the virtualenv {env}",
    )
    if requirements:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
            listing.write("\n".join(requirements) + "\n")
        try:
            command = [*_pip(_venv_python(env)), "install", *_PIP_QUIET, "-r", listing.name]
            _run_logged(command, log, timeout, f"Installing the runtime {env.name}")
        finally:
            os.unlink(listing.name)
    marker = {"requirements": requirements, "python": python, "seconds": round(time.monotonic() - started, 1)}
    (env / _MARKER).write_text(json.dumps(marker, indent=1))


def _wheel_of(package: Path, workdir: Path, timeout: float) -> Path:
    """``package`` if it is a wheel, else the wheel built from the project directory ``package``."""
    if package.is_file():
        return package
    if not (package / "pyproject.toml").is_file() and not (package / "setup.py").is_file():
        raise DagsterPipesError(f"Package {str(package)!r} is neither a wheel file nor a project directory.")
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", *_PIP_QUIET, "--no-deps", "-w", str(workdir)]
    if _backend_importable(package):
        command.append("--no-build-isolation")
    _run_logged([*command, str(package)], workdir / "wheel.log", timeout, f"Building a wheel of {package}")
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise DagsterPipesError(f"Building {package} gave {len(wheels)} wheels, not one.")
    return wheels[0]


def _backend_importable(project: Path) -> bool:
    """Whether this interpreter can build ``project`` without an isolated build environment."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: no tomllib
        return False
    try:
        config = tomllib.loads((project / "pyproject.toml").read_text())
    except (OSError, ValueError):
        return False
    backend = str(config.get("build-system", {}).get("build-backend", ""))
    return bool(backend) and importlib.util.find_spec(backend.split(".")[0]) is not None


def _build_layer(layer: Path, base: Path, wheels: list[Path], timeout: float) -> None:
    log = layer.parent / f"{layer.name}.log"
    log.write_text("")
    base_python = _venv_python(base)
    _run_logged(
        [str(base_python), "-m", "venv", "--clear", "--without-pip", str(layer)],
        log,
        120,
        f"Creating the virtualenv {layer}",
    )
    layer_python = _venv_python(layer)
    site = Path(_site_packages(layer_python))
    # the base's site-packages (and its own .pth files) after the layer's own
    (site / "_dagster_pipes_runtime_base.pth").write_text(
        f"import site; site.addsitedir({_site_packages(base_python)!r})\n"
    )
    command = [*_pip(layer_python), "install", *_PIP_QUIET, "--no-deps", *map(str, wheels)]
    _run_logged(command, log, timeout, f"Installing {', '.join(w.name for w in wheels)} into {layer.name}")
    (layer / _MARKER).write_text(json.dumps({"base": base.name, "packages": [w.name for w in wheels]}))


def _prune(root: Path, keep: Sequence[Path]) -> None:
    """Remove environments unused for long: layers after a week, bases (a superseded list) after a month."""
    now = time.time()
    for marker in root.glob(f"*/{_MARKER}"):
        env = marker.parent
        max_idle = _LAYER_MAX_IDLE if "+" in env.name else _BASE_MAX_IDLE
        if env not in keep and now - marker.stat().st_mtime > max_idle:
            with _locked(root / f".{env.name}.lock"):
                shutil.rmtree(env, ignore_errors=True)
                (root / f"{env.name}.log").unlink(missing_ok=True)


def build_runtime(
    requirements: str | os.PathLike[str] | Sequence[str],
    *,
    packages: Sequence[str | os.PathLike[str]] = (),
    name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    timeout: float = 1800.0,
) -> Path:
    """Build (or reuse) a virtualenv with ``requirements`` and ``packages``; return its Python.

    Args:
        requirements: a requirement list (a file path, or a ``NAME`` of :func:`resolve_list`) or
            the requirement lines themselves (``["pyspark==3.5.0", ...]``). Pin everything
            (:func:`lock_requirements`): the cache key is the list's text, not what pip resolves.
        packages: wheels or project directories (the job's own code, or this library) installed on
            top, without their dependencies: those belong in ``requirements``.
        name: the cache entry's prefix (default: the list's file name, else ``runtime``).
        cache_dir: where environments are cached (see the module docs for the default).
        python: the interpreter the environment is made from (default: this one).
        timeout: seconds one pip step may take.

    Raises:
        DagsterPipesError: a list that does not exist, or pip failing (with the log's tail).
    """
    if isinstance(requirements, (str, os.PathLike)):
        listing = resolve_list(requirements)
        lines = _requirement_lines(listing.read_text())
        name = name or listing.stem
    else:
        lines = [line.strip() for line in requirements if line.strip()]
        name = name or "runtime"
    interpreter = str(python or sys.executable)
    root = cache_root(cache_dir, CACHE_DIR_ENV, "runtimes")
    if cache_dir is not None or os.environ.get(CACHE_DIR_ENV):
        root = root.resolve()
    base = root / f"{name}-{_digest(_LAYOUT, _python_identity(interpreter), *lines)}"
    with _locked(root / f".{base.name}.lock"):
        if not (base / _MARKER).is_file():
            _build_base(base, lines, interpreter, timeout)
        os.utime(base / _MARKER)  # in use: keeps it from pruning
    if not packages:
        _prune(root, [base])
        return _venv_python(base)
    with tempfile.TemporaryDirectory(prefix="pipes-runtime-wheels-") as tmp:
        wheels = [_wheel_of(Path(p).resolve(), Path(tmp) / str(i), timeout) for i, p in enumerate(packages)]
        layer = root / f"{base.name}+{_digest(*(file_sha256(w) for w in wheels))}"
        with _locked(root / f".{layer.name}.lock"):
            if not (layer / _MARKER).is_file():
                _build_layer(layer, base, wheels, timeout)
            os.utime(layer / _MARKER)
    _prune(root, [base, layer])
    return _venv_python(layer)


def lock_requirements(
    requirements: Sequence[str], *, python: str | os.PathLike[str] | None = None, timeout: float = 600.0
) -> list[str]:
    """Resolve top-level ``requirements`` (pip arguments) to ``name==version`` lines for ``python``
    (default: this interpreter) without installing anything."""
    with tempfile.TemporaryDirectory(prefix="pipes-runtime-lock-") as tmp:
        report = Path(tmp) / "report.json"
        command = [
            *_pip(python or sys.executable),
            *("install", *_PIP_QUIET, "--dry-run", "--ignore-installed", "--report", str(report)),
            *requirements,
        ]
        _run_logged(command, Path(tmp) / "lock.log", timeout, "Resolving " + " ".join(requirements))
        installs = json.loads(report.read_text())["install"]
    pins = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}
    return [f"{pkg}=={version}" for pkg, version in sorted(pins.items())]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docs)."""
    parser = argparse.ArgumentParser(prog="python -m dagster_pipes_spark.testing.runtimes")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build (or reuse) a runtime; print its Python executable")
    build.add_argument("list", help="NAME (a NAME.txt of the runtime lists) or a requirement file")
    build.add_argument("--dest", help="cache directory of the runtimes")
    build.add_argument("--package", action="append", default=[], help="wheel or project dir to add")
    build.add_argument("--python", help="interpreter to build from (default: this one)")
    lock = commands.add_parser("lock", help="resolve requirements to a fully pinned list")
    lock.add_argument("requirements", nargs="+")
    lock.add_argument("--output", "-o", required=True, help="file to write the pinned list to")
    lock.add_argument("--title", default="", help="a first comment line for the list")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            started = time.monotonic()
            python = build_runtime(args.list, packages=args.package, cache_dir=args.dest, python=args.python)
            print(
                f"runtime {args.list}: {python} ({time.monotonic() - started:.1f} s)",
                file=sys.stderr,
            )
            print(python)
        else:
            pins = lock_requirements(args.requirements)
            header = [
                *([f"# {args.title}"] if args.title else []),
                f"# Resolved from: {' '.join(args.requirements)}",
                f"# for Python {platform.python_version()} (regenerate: python -m "
                f"dagster_pipes_spark.testing.runtimes lock -o {args.output} -- {' '.join(args.requirements)})",
            ]
            Path(args.output).write_text("\n".join([*header, *pins]) + "\n")
            print(f"{len(pins)} pins written to {args.output}", file=sys.stderr)
    except DagsterPipesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
