"""Process launch: how a task becomes a local subprocess (interpreter, command line, environment,
working directory, Spark defaults), how it is signalled, and where its driver logs are delivered.

Task types (``python`` is the task's runtime profile, else the Jobs API's default Python;
``PYSPARK_PYTHON`` in ``new_cluster.spark_env_vars`` overrides both, as on a cluster):

* ``spark_python_task``: ``python <python_file> *parameters``; ``python_file`` may be ``dbfs:/...``
  (the emulator's DBFS), ``/Volumes/...``, ``file:/...``, ``/Workspace/...`` (the emulated workspace
  file, :meth:`TaskLauncher.workspace_path`, if it exists, else the literal local path) or another
  absolute path (the local file if it exists, else the workspace file).
* ``python_wheel_task``: ``python _wheel_launcher.py <package> <entry_point> ...`` (see
  :mod:`._wheel_launcher`); ``named_parameters`` become ``--key=value``.
* ``notebook_task``: ``python <_notebook.py> <notebook> @params.json`` (see
  :mod:`dagster_pipes_spark.testing._notebook`): ``base_parameters`` are the widgets,
  ``dbutils.notebook.exit(value)`` is the run output's ``notebook_output.result``.

A task's environment is this process's environment, then the workspace's (``DATABRICKS_HOST`` /
``DATABRICKS_TOKEN``), then the FUSE mapping, then ``extra_env``, then ``new_cluster.spark_env_vars``.
Tasks on a cluster get both ``/dbfs`` and ``/Volumes`` FUSE mounts (``DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT``
/ ``DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT`` point at the emulator's directories) and a
``SPARK_CONF_DIR`` whose ``spark-defaults.conf`` makes any Spark session they start look like the
cluster's: ``local[2]`` with small settings, the cluster's ``spark_conf`` and
``spark.databricks.clusterUsageTags.{clusterId,clusterLogDeliveryEnabled,clusterLogDestination}``.
Serverless tasks get ``/Volumes`` only (serverless has no ``/dbfs`` FUSE) and notebooks get a Spark
Connect ``spark``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .._http import ApiError
from .._notebook import LOCAL_SPARK_CONF, SPARK_MODE_ENV, resolve_notebook_file
from .._storage import Storage
from ._profiles import RuntimeProfiles, python_executable
from ._runs import TaskRun

__all__ = [
    "CLUSTER_SPARK_VERSION",
    "COMPUTE_ENV",
    "RUN_ID_ENV",
    "TASK_KEY_ENV",
    "LaunchSettings",
    "TaskLauncher",
    "Workspace",
    "kill_after_grace",
    "signal_process_group",
]

logger = logging.getLogger("dagster_pipes_spark.testing.emulator")

#: ``classic`` (a cluster) or ``serverless``: set in every task's environment.
COMPUTE_ENV = "DATABRICKS_EMULATOR_COMPUTE"
#: The task's own run id, set in its environment.
RUN_ID_ENV = "DATABRICKS_EMULATOR_RUN_ID"
#: The task key, set in its environment.
TASK_KEY_ENV = "DATABRICKS_EMULATOR_TASK_KEY"
#: The ``spark_version`` of existing clusters (and of job clusters that do not name one).
CLUSTER_SPARK_VERSION = "15.4.x-scala2.12"

_DBFS_FUSE_ENV = "DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT"
_VOLUMES_FUSE_ENV = "DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT"
_NOTEBOOK_RUNNER = Path(__file__).parent.parent / "_notebook.py"
_WHEEL_LAUNCHER = Path(__file__).with_name("_wheel_launcher.py")
_NOT_INHERITED = (
    "DAGSTER_PIPES_CONTEXT",
    "DAGSTER_PIPES_MESSAGES",
    "SPARK_REMOTE",
    "SPARK_CONNECT_MODE_ENABLED",
)


class Workspace(Protocol):
    """What the Jobs API needs of the workspace it runs in (the emulator satisfies it)."""

    @property
    def url(self) -> str:
        """The workspace URL (run page URLs)."""
        ...

    def env(self) -> dict[str, str]:
        """Environment variables that point a task's SDK / ``dbutils`` at the workspace."""
        ...


class LaunchSettings(Protocol):
    """The Jobs API settings a launch reads (the :class:`JobsApi` attributes of the same names)."""

    python: str | os.PathLike[str] | None
    runtimes: RuntimeProfiles
    extra_env: dict[str, str]
    inherit_env: bool
    existing_cluster_log_conf: dict[str, Any] | None


def signal_process_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the task's process group (the process alone if that fails)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass


def kill_after_grace(proc: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """``SIGKILL`` the task's process group if it has not exited ``grace_seconds`` after ``SIGTERM``."""
    try:
        proc.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        signal_process_group(proc, signal.SIGKILL)


class TaskLauncher:
    """Builds and starts task processes for one workspace.

    Args:
        workspace: The workspace (URL, client environment).
        storage: Its storage (DBFS / volume paths, FUSE roots).
        settings: The Jobs API settings (read at each launch, so changes apply to later tasks).
    """

    def __init__(self, workspace: Workspace, storage: Storage, settings: LaunchSettings) -> None:
        self._workspace = workspace
        self._storage = storage
        self._settings = settings

    @property
    def workspace_root(self) -> Path:
        """The emulated workspace file tree: ``/Workspace/x`` is ``root/Workspace/x``."""
        return self._storage.root / "Workspace"

    def workspace_path(self, path: str) -> Path:
        """The emulated workspace file for ``/Workspace/x`` (or ``/x``): ``root/Workspace/x``."""
        text = path[len("/Workspace") :] if path == "/Workspace" or path.startswith("/Workspace/") else path
        return self.workspace_root / text.lstrip("/")

    # -------------------------------------------------------------------------- interpreter

    def default_python(self) -> str:
        """The interpreter of tasks that match no runtime profile."""
        return python_executable(self._settings.python)

    def select_python(self, task_key: str, spec: Mapping[str, Any], environments: Mapping[str, Any]) -> str:
        """The interpreter for a task, by its runtime profile (``ValueError`` when strict and none matches)."""
        profiles = self._settings.runtimes
        runtime = profiles.task_runtime(spec, environments, CLUSTER_SPARK_VERSION)
        selection = profiles.select(runtime)
        if selection.python is not None:
            logger.info(
                "task %s (%s) runs with %s (profile %r)",
                task_key,
                runtime,
                selection.python,
                selection.profile,
            )
            return selection.python
        if profiles.profiles:
            message = profiles.unmatched_message(runtime, task_key)
            if profiles.strict:
                raise ValueError(message + "; the emulator was asked to be strict about runtimes.")
            logger.warning("%s: running it with the default Python %s", message, self.default_python())
        return self.default_python()

    # ----------------------------------------------------------------------------- command

    def start(self, task: TaskRun, stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
        """Start the task's process (in its own process group) writing to the given files."""
        command, env, cwd = self._command(task)
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )

    def _command(self, task: TaskRun) -> tuple[list[str], dict[str, str], str]:
        env = self._env(task)
        spark_env = (task.spec.get("new_cluster") or {}).get("spark_env_vars") or {}
        python = str(spark_env.get("PYSPARK_PYTHON") or task.python)
        spec = task.spec[task.kind]
        if task.kind == "spark_python_task":
            file = self._local_path(spec["python_file"], "Python file")
            if not file.is_file():
                raise FileNotFoundError(f"Python file {spec['python_file']} does not exist.")
            raw = spec["python_file"]
            in_storage = raw.startswith(("dbfs:", "/Volumes/")) or raw == "/Volumes"
            cwd = task.dir if in_storage else file.parent
            return [python, str(file), *(spec.get("parameters") or [])], env, str(cwd)
        if task.kind == "python_wheel_task":
            params = list(spec.get("parameters") or [])
            params += [f"--{k}={v}" for k, v in (spec.get("named_parameters") or {}).items()]
            command = [python, str(_WHEEL_LAUNCHER), spec["package_name"], spec["entry_point"], *params]
            return command, env, str(task.dir)
        notebook = self._local_path(spec["notebook_path"], "Notebook")
        try:
            notebook = resolve_notebook_file(notebook)
        except FileNotFoundError:
            raise FileNotFoundError(f"Notebook {spec['notebook_path']} does not exist.") from None
        params_file = task.dir / "params.json"
        params_file.write_text(json.dumps(spec.get("base_parameters") or {}), encoding="utf-8")
        result_file = str(task.dir / "result.json")
        command = [
            python,
            str(_NOTEBOOK_RUNNER),
            str(notebook),
            f"@{params_file}",
            "--result-file",
            result_file,
        ]
        return command, env, str(notebook.parent)

    def _local_path(self, raw: str, what: str) -> Path:
        """Map a task's file reference (``dbfs:/``, ``/Volumes``, ``file:``, ``/Workspace``, local)."""
        if raw.startswith(("dbfs:", "/Volumes/")) or raw == "/Volumes":
            try:
                return self._storage.local_path(raw)
            except ApiError as exc:
                raise FileNotFoundError(f"{what} {raw}: {exc.message}") from None
        if raw.startswith("file:"):
            return Path("/" + raw[len("file:") :].lstrip("/"))
        if "://" in raw:
            raise FileNotFoundError(
                f"{what} {raw}: only dbfs:/, /Volumes, file:/ and local paths are emulated"
            )
        if not raw.startswith("/"):
            raise FileNotFoundError(
                f"{what} {raw}: relative paths need a git_source, which the emulator does not support"
            )
        if raw.startswith("/Workspace/"):
            emulated = self.workspace_path(raw)
            if emulated.exists() or emulated.with_name(emulated.name + ".py").exists():
                return emulated
            return Path(raw)
        literal = Path(raw)
        if literal.exists() or literal.with_name(literal.name + ".py").exists():
            return literal
        return self.workspace_path(raw)

    def _env(self, task: TaskRun) -> dict[str, str]:
        settings = self._settings
        if settings.inherit_env:
            env = dict(os.environ)
        else:
            kept = ("PATH", "HOME", "JAVA_HOME", "PYTHONPATH", "TMPDIR")
            env = {k: os.environ[k] for k in kept if k in os.environ}
        for name in _NOT_INHERITED:
            env.pop(name, None)
        env.update(self._workspace.env())
        env[_VOLUMES_FUSE_ENV] = str(self._storage.volumes_root)
        if task.compute == "serverless":
            env[_DBFS_FUSE_ENV] = str(self._storage.root / "no-dbfs-fuse-on-serverless")
            env[SPARK_MODE_ENV] = "connect"
            env[COMPUTE_ENV] = "serverless"
        else:
            env[_DBFS_FUSE_ENV] = str(self._storage.dbfs_root)
            env[SPARK_MODE_ENV] = "classic"
            env[COMPUTE_ENV] = "classic"
            env["SPARK_CONF_DIR"] = str(self._spark_defaults(task))
        env[RUN_ID_ENV] = str(task.run_id)
        env[TASK_KEY_ENV] = task.task_key
        env["PYTHONUNBUFFERED"] = "1"
        env.update(settings.extra_env)
        spark_env = (task.spec.get("new_cluster") or {}).get("spark_env_vars") or {}
        env.update({str(k): str(v) for k, v in spark_env.items()})
        return env

    def log_conf(self, task: TaskRun) -> dict[str, Any]:
        """The ``cluster_log_conf`` of the task's cluster (``{}`` without one)."""
        if task.compute == "new_cluster":
            return dict((task.spec.get("new_cluster") or {}).get("cluster_log_conf") or {})
        if task.compute == "existing_cluster":
            return dict(self._settings.existing_cluster_log_conf or {})
        return {}

    def _spark_defaults(self, task: TaskRun) -> Path:
        """A ``SPARK_CONF_DIR`` whose ``spark-defaults.conf`` pre-configures any session the task
        starts like the cluster's (lowest precedence: the session builder overrides it)."""
        conf: dict[str, str] = {"spark.master": "local[2]", **LOCAL_SPARK_CONF}
        tags = "spark.databricks.clusterUsageTags."
        conf[tags + "clusterId"] = str(task.cluster_id)
        conf[tags + "clusterName"] = f"emulator-{task.cluster_id}"
        destination = next(
            (
                str(v.get("destination"))
                for v in self.log_conf(task).values()
                if isinstance(v, dict) and v.get("destination")
            ),
            None,
        )
        conf[tags + "clusterLogDeliveryEnabled"] = "true" if destination else "false"
        if destination:
            conf[tags + "clusterLogDestination"] = destination
        spark_conf = (task.spec.get("new_cluster") or {}).get("spark_conf") or {}
        conf.update({str(k): str(v) for k, v in spark_conf.items()})
        directory = task.dir / "spark-conf"
        directory.mkdir(parents=True, exist_ok=True)
        lines = [f"{key} {' '.join(str(value).split())}" for key, value in conf.items()]
        (directory / "spark-defaults.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return directory

    # ------------------------------------------------------------------------ log delivery

    def deliver_cluster_logs(self, task: TaskRun) -> None:
        """Copy the task's stdout / stderr to ``<cluster_log_conf destination>/<cluster_id>/driver``
        (appending, when several tasks share an existing cluster); failures are ignored, as on the
        platform."""
        if task.cluster_id is None:
            return
        conf = self.log_conf(task)
        destination = (conf.get("dbfs") or conf.get("volumes") or {}).get("destination")
        if not destination:
            return
        try:
            driver = self._storage.local_path(str(destination)) / task.cluster_id / "driver"
            driver.mkdir(parents=True, exist_ok=True)
            for name in ("stdout", "stderr"):
                source, target = task.dir / name, driver / name
                if not source.exists():
                    continue
                if target.exists():
                    with open(target, "ab") as dst, open(source, "rb") as src:
                        shutil.copyfileobj(src, dst)
                else:
                    shutil.copyfile(source, target)
        except (ApiError, OSError):
            pass
