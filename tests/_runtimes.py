"""The runtime matrix's test plumbing: the runtime environments (pinned lists in ``.ci/runtimes``,
built by :func:`dagster_pipes_spark.testing.runtimes.build_runtime` with this checkout's wheel on top),
a Dagster client that launches a script in one of them, and a standalone Spark Connect server.

The orchestrator (dagster, dagster-databricks) stays in the dev venv running pytest; only the external
process runs in the runtime, which has no dagster and imports this library from the installed wheel.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from _helpers import NO_FUSE, REPO, SHIM, die_with_parent

from dagster_pipes_spark.testing.runtimes import build_runtime, runtime_env_var


@dataclass(frozen=True)
class Runtime:
    """One runtime of the matrix and the versions its environment must hold."""

    name: str
    pyspark: str
    databricks_sdk: str


RUNTIMES = {
    r.name: r
    for r in (
        Runtime("spark35", pyspark="3.5.0", databricks_sdk="0.20.0"),
        Runtime("pinned", pyspark="4.0.1", databricks_sdk="0.60.0"),
        Runtime("newest", pyspark="4.3.0", databricks_sdk="0.167.0"),
    )
}


@cache
def runtime_python(name: str) -> str:
    """The runtime's Python: the one ``.ci/dev`` built and exported, else built here (cached per machine)."""
    exported = os.environ.get(runtime_env_var(name))
    if exported:
        return exported
    return str(build_runtime(REPO / ".ci" / "runtimes" / f"{name}.txt", packages=[REPO]))


def runtime_env(python: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Env of a process in a runtime: hermetic FUSE roots, ``import dagster_pipes`` -> this library
    (the test shim, nothing else from the source tree), the runtime's own Spark."""
    return {
        **NO_FUSE,
        "PYTHONPATH": str(SHIM),
        "SPARK_HOME": _spark_home(python),
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        **(extra or {}),
    }


@cache
def _spark_home(python: str) -> str:
    code = "import os, pyspark; print(os.path.dirname(pyspark.__file__))"
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: its source must not shadow the wheel
        return subprocess.run(
            [python, "-c", code], capture_output=True, text=True, check=True, cwd=cwd
        ).stdout.strip()


class RuntimeClient:
    """A Pipes client for :func:`_helpers.run_pipes` (``client_factory``): starts the command with
    ``env`` (see :func:`runtime_env`) instead of the env ``run_pipes`` offers (whose PYTHONPATH holds
    the source tree), and passes the bootstrap params as env vars (``params="env"``) or as CLI
    arguments (``params="cli"``) — the default params loader reads either."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        context_injector: Any = None,
        message_reader: Any = None,
        params: str = "env",
        timeout: float = 240,
    ) -> None:
        self.env = dict(env)
        self.timeout = timeout
        self.context_injector = context_injector or dg.PipesTempFileContextInjector()
        self.message_reader = message_reader or dg.PipesTempFileMessageReader()
        self.params = params
        self.output = ""

    def run(
        self, *, command: Sequence[str], context: Any, extras: Mapping[str, Any], env: Mapping[str, str]
    ) -> dg.PipesClientCompletedInvocation:
        del env  # the runtime's env replaces it
        with dg.open_pipes_session(
            context=context,
            context_injector=self.context_injector,
            message_reader=self.message_reader,
            extras=extras,
        ) as session:
            cli = session.get_bootstrap_cli_arguments().items() if self.params == "cli" else ()
            argv = [part for item in cli for part in item]
            bootstrap_env = session.get_bootstrap_env_vars() if self.params == "env" else {}
            with (
                tempfile.TemporaryDirectory() as cwd
            ):  # not the checkout: its source must not shadow the wheel
                proc = subprocess.run(
                    [*command, *argv],
                    env={**os.environ, **self.env, **bootstrap_env},
                    cwd=cwd,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                )
            self.output = proc.stdout + proc.stderr
            if proc.returncode != 0:
                raise RuntimeError(f"external process failed ({proc.returncode}):\n{self.output[-4000:]}")
        return dg.PipesClientCompletedInvocation(session)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SparkConnectServer:
    """A standalone Spark Connect server of the dev venv's (pinned) pyspark on a free loopback port.

    :meth:`start` returns at once (the JVM takes half a minute to listen; start it early),
    :meth:`url` waits until it accepts connections, :meth:`stop` ends it (SIGTERM, then SIGKILL).
    ``master`` is the Spark master it runs on (e.g. a standalone cluster's ``spark://``), ``conf``
    more settings, ``env`` more environment, ``java_options`` more options of its JVM; ``iceberg=False``
    leaves the Iceberg jars out (Delta only).
    """

    def __init__(
        self,
        workdir: Path,
        timeout: float = 240.0,
        *,
        master: str = "local[2]",
        conf: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        iceberg: bool = True,
        java_options: str = "",
    ) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.master = master
        self.conf = dict(conf or {})
        self.env = dict(env or {})
        self.iceberg = iceberg
        self.java_options = java_options
        self.port = _free_port()
        self.log = workdir / "spark-connect-server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        #: why the server has no Delta / Iceberg (jars unavailable), else None
        self.jars_missing: str | None = None

    def start(self) -> SparkConnectServer:
        import pyspark

        spark_home = Path(pyspark.__file__).parent
        command = [
            str(spark_home / "bin" / "spark-submit"),
            *("--class", "org.apache.spark.sql.connect.service.SparkConnectServer"),
            *("--master", self.master),
            *("--conf", f"spark.connect.grpc.binding.port={self.port}"),
            *("--conf", "spark.connect.grpc.binding.address=127.0.0.1"),
            *("--conf", "spark.ui.enabled=false"),
            *("--conf", "spark.sql.shuffle.partitions=2"),
            *("--conf", f"spark.sql.warehouse.dir={self.workdir / 'warehouse'}"),
            *("--driver-java-options", f"-Dderby.system.home={self.workdir} {self.java_options}".strip()),
            *(
                arg
                for key, value in {**self._table_format_confs(), **self.conf}.items()
                for arg in ("--conf", f"{key}={value}")
            ),
            "spark-internal",
        ]
        env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1", **self.env}
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        with open(self.log, "wb") as out:
            self._proc = subprocess.Popen(
                die_with_parent(command),  # never outlives the test process, however that one ends
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._started = time.monotonic()
        return self

    def _table_format_confs(self) -> dict[str, str]:
        """Delta (``spark_catalog``) and Iceberg (catalog ``iceberg``) from the pinned jars of the
        server's Spark 4.0 stack; none when they are unavailable (``jars_missing`` says which)."""
        from dagster_pipes_spark.testing.table_formats import (
            MissingJarsError,
            fetch_jars,
            jars_env_var,
            spark_confs,
        )

        exported = os.environ.get(jars_env_var("spark40"))
        try:
            jars = exported.split(",") if exported else [str(p) for p in fetch_jars("spark40")]
        except MissingJarsError as exc:
            self.jars_missing = str(exc)
            return {}
        if not self.iceberg:
            return spark_confs([j for j in jars if not os.path.basename(j).startswith("iceberg")])
        return spark_confs(jars, iceberg_warehouse=self.workdir / "iceberg")

    def url(self) -> str:
        """``sc://127.0.0.1:PORT`` once the server listens (raises if it exits or takes too long)."""
        assert self._proc is not None, "start() first"
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"the Spark Connect server exited ({self._proc.returncode}):\n{self._tail()}"
                )
            with socket.socket() as s:
                s.settimeout(1)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return f"sc://127.0.0.1:{self.port}"
            if time.monotonic() - self._started > self.timeout:
                raise RuntimeError(
                    f"the Spark Connect server did not listen in {self.timeout} s:\n{self._tail()}"
                )
            time.sleep(0.5)

    @property
    def pid(self) -> int | None:
        """The server's process id (its process group's too), once started."""
        return None if self._proc is None else self._proc.pid

    @property
    def log_tail(self) -> str:
        """The last lines of the server's log."""
        return self._tail() if self.log.exists() else ""

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own process group: spark-submit and the JVM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
