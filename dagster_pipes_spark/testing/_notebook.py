"""Databricks source-format notebooks: a parser and a local runner (used by the emulated Jobs API).

A notebook exported in *source* format is a ``.py`` file that starts with the line
``# Databricks notebook source``; cells are separated by ``# COMMAND ----------`` lines, a cell
may start with a ``# DBTITLE 1,<title>`` line, and magic cells (``%md``, ``%pip``, ``%sql``,
``%sh``, ``%run`` ...) have every line prefixed with ``# MAGIC``. Jupyter ``.ipynb`` notebooks are
read too (code cells only; a first line ``%md`` etc. is a magic).

Run one as the Jobs API's ``notebook_task`` would (this is how the emulator runs notebook tasks)::

    python -m dagster_pipes_spark.testing._notebook NOTEBOOK '{"param": "value"}' --result-file out.json

(or ``python path/to/_notebook.py ...``: the file also works as a plain script, so a task Python
that does not have this package installed can run it). The runner executes the Python cells in one
fresh ``__main__`` namespace holding:

* ``dbutils`` — a :class:`~dagster_pipes_spark.testing.FakeDbutils` reaching the workspace named by
  ``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN``, whose widgets are the given parameters;
* ``spark`` — a local ``SparkSession`` created only if the notebook mentions ``spark`` (just before
  the first cell that does): ``local[2]`` classic, or Spark Connect to a local server when the mode
  (``--spark`` or ``$DATABRICKS_EMULATOR_SPARK_MODE``) is ``connect`` and pyspark's Connect client
  is usable (else classic);
* ``display`` / ``displayHTML`` — print (``DataFrame.show()`` for DataFrames).

``%md`` cells are skipped, ``%pip`` cells are logged and skipped (install dependencies into the
task's Python instead), ``%sql`` runs through ``spark.sql``, ``%sh`` through ``bash``, ``%run
./other`` executes another notebook in the same namespace and ``%python`` is an ordinary cell.
``dbutils.notebook.exit(value)`` ends the notebook successfully with ``value`` as its result; an
exception fails it. The result file receives ``{"result", "error", "error_trace"}`` JSON.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import linecache
import os
import re
import socket
import subprocess
import sys
import traceback
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "COMMAND_SEPARATOR",
    "LOCAL_SPARK_CONF",
    "MAGIC_PREFIX",
    "NOTEBOOK_HEADER",
    "SPARK_MODE_ENV",
    "Cell",
    "NotebookFailed",
    "main",
    "make_spark_session",
    "parse_notebook",
    "parse_source",
    "resolve_notebook_file",
    "run_notebook",
]

#: First line of a notebook exported in Databricks source format.
NOTEBOOK_HEADER = "# Databricks notebook source"
#: Line separating two cells.
COMMAND_SEPARATOR = "# COMMAND ----------"
#: Prefix of every line of a magic cell.
MAGIC_PREFIX = "# MAGIC"
#: ``classic`` or ``connect``: how the runner builds ``spark`` (the emulator sets it per compute).
SPARK_MODE_ENV = "DATABRICKS_EMULATOR_SPARK_MODE"

_TITLE = re.compile(r"^# DBTITLE \d+,")
_SPARK_NAME = re.compile(r"\bspark\b")


@dataclass(frozen=True)
class Cell:
    """One notebook cell.

    ``language`` is ``python`` for code cells, else the magic without ``%`` (``md``, ``pip``,
    ``sql``, ``sh``, ``run``, ...); ``source`` is the cell text without the magic line prefix
    (for ``%pip`` / ``%run`` the whole command line, e.g. ``%pip install x``).
    """

    index: int
    language: str
    source: str
    title: str | None = None

    @property
    def mentions_spark(self) -> bool:
        """Whether the cell needs the ``spark`` global (a ``spark`` name, or a ``%sql`` cell)."""
        if self.language == "sql":
            return True
        if self.language != "python":
            return False
        try:
            tree = ast.parse(self.source)
        except SyntaxError:
            return bool(_SPARK_NAME.search(self.source))
        return any(isinstance(node, ast.Name) and node.id == "spark" for node in ast.walk(tree))


def _classify(index: int, text: str, title: str | None) -> Cell:
    lines = text.strip("\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    first = lines[0].strip() if lines else ""
    if not first.startswith("%") or len(first) < 2:
        return Cell(index, "python", "\n".join(lines), title)
    magic, _, rest = first[1:].partition(" ")
    if magic in ("pip", "conda", "run"):
        return Cell(index, magic, "\n".join(line.strip() for line in lines).strip(), title)
    source = "\n".join([rest.strip(), *lines[1:]] if rest.strip() else lines[1:])
    language = "md" if magic in ("md", "md-sandbox") else magic
    return Cell(index, language, source, title)


def parse_source(text: str) -> list[Cell]:
    """Split a Databricks source-format notebook into cells (raises ``ValueError`` without the header)."""
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or lines[0].strip() != NOTEBOOK_HEADER:
        raise ValueError(
            f"not a Databricks source-format notebook: the first line must be {NOTEBOOK_HEADER!r}"
        )
    raw_cells: list[list[str]] = [[]]
    for line in lines[1:]:
        if line.strip() == COMMAND_SEPARATOR:
            raw_cells.append([])
        else:
            raw_cells[-1].append(line)
    cells: list[Cell] = []
    for raw in raw_cells:
        title: str | None = None
        body = list(raw)
        while body and not body[0].strip():
            body.pop(0)
        if body and _TITLE.match(body[0]):
            title = _TITLE.sub("", body.pop(0)).strip()
        content = [line for line in body if line.strip()]
        if not content:
            continue
        if all(line.startswith(MAGIC_PREFIX) for line in content):
            unprefixed = []
            for line in body:
                if line.startswith(MAGIC_PREFIX + " "):
                    unprefixed.append(line[len(MAGIC_PREFIX) + 1 :])
                elif line.startswith(MAGIC_PREFIX):
                    unprefixed.append(line[len(MAGIC_PREFIX) :])
                else:
                    unprefixed.append(line)
            cells.append(_classify(len(cells), "\n".join(unprefixed), title))
        else:
            cells.append(_classify(len(cells), "\n".join(body), title))
    return cells


def _parse_ipynb(text: str) -> list[Cell]:
    try:
        doc = json.loads(text)
        raw_cells = doc["cells"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a Jupyter notebook: {exc}") from None
    cells: list[Cell] = []
    for raw in raw_cells:
        if not isinstance(raw, dict) or raw.get("cell_type") != "code":
            continue
        source = raw.get("source", "")
        text_source = "".join(source) if isinstance(source, list) else str(source)
        if text_source.strip():
            cells.append(_classify(len(cells), text_source, None))
    return cells


def parse_notebook(path: str | os.PathLike[str]) -> list[Cell]:
    """Parse a notebook file: Databricks source format, or ``.ipynb``."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".ipynb" or (text.lstrip().startswith("{") and '"cells"' in text):
        return _parse_ipynb(text)
    return parse_source(text)


def resolve_notebook_file(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or with ``.py`` / ``.ipynb`` appended (workspace paths omit the extension)."""
    file = Path(path)
    for candidate in (file, file.with_name(file.name + ".py"), file.with_name(file.name + ".ipynb")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Notebook not found: {path}")


class NotebookFailed(Exception):  # noqa: N818 - public name
    """A cell raised; ``cell`` is the failing cell and ``__cause__`` the original exception."""

    def __init__(self, cell: Cell, notebook: Path) -> None:
        where = f"cell {cell.index + 1}" + (f" ({cell.title})" if cell.title else "")
        super().__init__(f"{notebook}: {where} failed")
        self.cell = cell
        self.notebook = notebook


# ----------------------------------------------------------------------------------- runtime


def _load_fake_dbutils_class() -> Any:
    """``FakeDbutils``: from the package when run with ``-m``; when run as a file (the task's Python
    may not have this package installed), from the ``dbutils`` subpackage next to this file, loaded
    under a private package name so that it cannot clash with an installed copy."""
    if __package__:
        from .dbutils import FakeDbutils

        return FakeDbutils
    alias = "_dagster_pipes_spark_testing"
    if alias not in sys.modules:
        package = types.ModuleType(alias)
        package.__path__ = [str(Path(__file__).parent)]
        sys.modules[alias] = package
    return importlib.import_module(alias + ".dbutils").FakeDbutils


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect_usable() -> bool:
    try:
        from pyspark.sql.connect.utils import check_dependencies

        check_dependencies("pyspark.sql.connect.session")
    except Exception:  # noqa: BLE001 - ImportError, PySparkImportError for grpc / pandas / pyarrow
        return False
    return True


#: Settings of the notebook's local session: small, quiet, loopback-only, and quick to start
#: (C1-only JIT and no whole-stage codegen halve the first query's latency of a short session). A
#: C1-only JVM also shrinks its code cache to 48 MB, which a long session with the Delta and Iceberg
#: extensions can fill ("Out of space in CodeCache", then every call fails): it keeps the usual 240 MB.
LOCAL_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC",
    "spark.sql.codegen.wholeStage": "false",
}


def make_spark_session(mode: str = "classic", conf: Mapping[str, str] | None = None) -> Any:
    """A small local ``SparkSession``: classic ``local[2]``, or Spark Connect (``mode="connect"``)
    to a local Connect server on a free port when pyspark's Connect client is usable.

    ``conf`` (e.g. a job cluster's ``spark_conf``) is applied over :data:`LOCAL_SPARK_CONF`.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("databricks-emulator-notebook")
    for key, value in {**LOCAL_SPARK_CONF, **(conf or {})}.items():
        builder = builder.config(key, str(value))
    if mode != "connect" or not _connect_usable():
        if mode == "connect":
            print(
                "[emulator] pyspark Connect is not usable here; using a classic local session",
                file=sys.stderr,
            )
        return builder.getOrCreate()
    # What `builder.remote("local[2]")` does, but on a free port instead of the fixed 15002, so
    # concurrent serverless tasks do not collide: a classic session hosting the Connect plugin...
    port = _free_port()
    builder.config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin").config(
        "spark.connect.grpc.binding.port", str(port)
    ).getOrCreate()
    # ... and a Connect client session talking to it.
    from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

    return RemoteSparkSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()


def _display(obj: Any = None, *args: Any, **kwargs: Any) -> None:
    show = getattr(obj, "show", None)
    if callable(show):
        show()
    else:
        print(obj)


def _display_html(html: str) -> None:
    print(html)


class _Runner:
    def __init__(
        self,
        namespace: dict[str, Any],
        spark_mode: str,
        notebook_exit: type[BaseException] | None,
    ) -> None:
        self.ns = namespace
        self.spark_mode = spark_mode
        self.notebook_exit = notebook_exit

    def ensure_spark(self) -> Any:
        if self.ns.get("spark") is None:
            print(f"[emulator] starting a local SparkSession ({self.spark_mode})", file=sys.stderr)
            self.ns["spark"] = make_spark_session(self.spark_mode)
        return self.ns["spark"]

    def run(self, notebook: Path, depth: int = 0) -> None:
        if depth > 10:
            raise RecursionError("%run nesting is deeper than 10 notebooks")
        for cell in parse_notebook(notebook):
            try:
                self.run_cell(notebook, cell, depth)
            except BaseException as exc:
                if self.notebook_exit is not None and isinstance(exc, self.notebook_exit):
                    raise
                if isinstance(exc, (NotebookFailed, SystemExit, KeyboardInterrupt)):
                    raise
                raise NotebookFailed(cell, notebook) from exc

    def run_cell(self, notebook: Path, cell: Cell, depth: int) -> None:
        lang = cell.language
        if lang == "md":
            return
        if lang in ("pip", "conda"):
            print(
                f"[emulator] skipping `{cell.source}` (a no-op here: install dependencies into the task's Python)"
            )
            return
        if cell.mentions_spark:
            self.ensure_spark()
        if lang == "python":
            filename = f"<{notebook.name} cell {cell.index + 1}>"
            source = cell.source + "\n"
            # make tracebacks show the cell's source lines, as a notebook does
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            exec(compile(source, filename, "exec"), self.ns)
        elif lang == "sql":
            for statement in (s.strip() for s in cell.source.split(";")):
                if statement:
                    _display(self.ns["spark"].sql(statement))
        elif lang == "sh":
            subprocess.run(["bash", "-c", cell.source], check=True, cwd=os.getcwd())
        elif lang == "run":
            target = cell.source.split(None, 1)[1].strip() if len(cell.source.split(None, 1)) > 1 else ""
            target = target.strip("\"'")
            if not target:
                raise ValueError("%run needs a notebook path")
            path = Path(target) if target.startswith("/") else notebook.parent / target
            self.run(resolve_notebook_file(path), depth + 1)
        else:
            raise NotImplementedError(f"%{lang} cells are not supported by the emulator's notebook runner")


def run_notebook(
    notebook: str | os.PathLike[str],
    widgets: Mapping[str, Any] | None = None,
    *,
    spark_mode: str | None = None,
    dbutils: Any = None,
) -> str | None:
    """Run ``notebook`` in this process as a job's notebook task; returns the ``dbutils.notebook.exit``
    value (None when the notebook ran to the end). A failing cell raises :class:`NotebookFailed`.

    The cells run in a fresh ``__main__`` module (installed in ``sys.modules`` for the duration, as
    in a real notebook, so ``__main__.dbutils`` is found by libraries looking for it).
    """
    path = resolve_notebook_file(notebook)
    mode = spark_mode or os.environ.get(SPARK_MODE_ENV) or "classic"
    if dbutils is None:
        dbutils = _load_fake_dbutils_class()(widgets=dict(widgets or {}))
    notebook_exit = getattr(dbutils.notebook, "exit_exception", None)
    main_module = types.ModuleType("__main__")
    main_module.__file__ = str(path)
    namespace = main_module.__dict__
    namespace.update(
        {"__builtins__": __builtins__, "dbutils": dbutils, "display": _display, "displayHTML": _display_html}
    )
    previous_main = sys.modules.get("__main__")
    previous_argv = sys.argv
    previous_path0 = sys.path[0] if sys.path else None
    sys.modules["__main__"] = main_module
    sys.argv = [str(path)]
    if sys.path:
        sys.path[0] = str(path.parent)
    runner = _Runner(namespace, mode, notebook_exit)
    try:
        runner.run(path)
    except BaseException as exc:
        if notebook_exit is not None and isinstance(exc, notebook_exit):
            return str(getattr(exc, "value", ""))
        raise
    finally:
        if previous_main is not None:
            sys.modules["__main__"] = previous_main
        sys.argv = previous_argv
        if previous_path0 is not None:
            sys.path[0] = previous_path0
    return None


def _exception_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _user_traceback(exc: BaseException) -> str:
    """The traceback without the runner's own leading frames (what a notebook shows)."""
    tb = exc.__traceback__
    here = os.path.abspath(__file__)
    while (
        tb is not None and tb.tb_next is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _write_result(path: str | None, payload: Mapping[str, Any]) -> None:
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``NOTEBOOK [PARAMS_JSON | @params.json] [--result-file F] [--spark MODE]``."""
    parser = argparse.ArgumentParser(description="Run a Databricks notebook locally, as a notebook task.")
    parser.add_argument("notebook", help="the notebook file (Databricks source format or .ipynb)")
    parser.add_argument("params", nargs="?", default="{}", help="widget values as JSON, or @file.json")
    parser.add_argument("--result-file", help="write {result, error, error_trace} JSON here")
    parser.add_argument(
        "--spark", choices=("classic", "connect"), help=f"spark flavour (default ${SPARK_MODE_ENV})"
    )
    args = parser.parse_args(argv)
    raw = Path(args.params[1:]).read_text(encoding="utf-8") if args.params.startswith("@") else args.params
    params = json.loads(raw)
    if not isinstance(params, dict):
        parser.error("params must be a JSON object")
    try:
        result = run_notebook(args.notebook, params, spark_mode=args.spark)
    except NotebookFailed as failed:
        cause = failed.__cause__ or failed
        trace = _user_traceback(cause)
        sys.stderr.write(f"{failed}:\n{trace}")
        sys.stderr.flush()
        _write_result(
            args.result_file, {"result": None, "error": _exception_line(cause), "error_trace": trace}
        )
        return 1
    except BaseException as exc:  # noqa: BLE001 - could not even start (missing notebook, bad format) or SystemExit: reported in the result file
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            _write_result(args.result_file, {"result": None, "error": None, "error_trace": None})
            return 0
        trace = traceback.format_exc()
        sys.stderr.write(trace)
        sys.stderr.flush()
        _write_result(args.result_file, {"result": None, "error": _exception_line(exc), "error_trace": trace})
        return 1
    _write_result(args.result_file, {"result": result, "error": None, "error_trace": None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
