"""Runtime profiles: which Python runs a task, chosen by the Databricks runtime the task asks for.

A profile maps a runtime to a Python executable (or a virtualenv directory), so that a job is tested
offline against the pyspark / databricks-sdk / pandas versions of the runtime it deploys to (build
such environments with :mod:`dagster_pipes_spark.testing.runtimes`). Keys:

* a cluster's ``spark_version``: exactly (``"15.4.x-scala2.12"``) or by its leading components
  (``"15.4"``, ``"15.4.x"``, ``"16"``; components are split at ``.`` and ``-``); the longest
  matching key wins. A task's runtime is its ``new_cluster.spark_version``, or for an
  ``existing_cluster_id`` the ``spark_version`` that ``clusters/get`` reports;
* ``"serverless:<version>"``: a serverless task whose environment (its ``environment_key`` in the
  run's ``environments``) has ``spec.environment_version`` (or the older ``spec.client``)
  ``<version>``; ``"serverless"``: any serverless task.

A task matching no profile runs with the Jobs API's default Python, with a log line saying so; with
``strict=True`` it is refused at submit instead (``400 INVALID_PARAMETER_VALUE``).
``PYSPARK_PYTHON`` in ``new_cluster.spark_env_vars`` overrides every profile, as on a cluster.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RuntimeProfiles", "RuntimeSelection", "python_executable"]

logger = logging.getLogger("dagster_pipes_spark.testing.emulator")

_SERVERLESS = "serverless"
_COMPONENTS = re.compile(r"[.\-]")


def python_executable(python: str | os.PathLike[str] | None) -> str:
    """An interpreter path: ``None`` is this interpreter, a virtualenv directory its ``bin/python``."""
    if python is None:
        return sys.executable
    path = Path(python)
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
            if candidate.exists():
                return str(candidate)
    return str(path)


@dataclass(frozen=True)
class RuntimeSelection:
    """The runtime a task asked for and the profile that matched it (``None``: no profile did)."""

    runtime: str
    profile: str | None
    python: str | None


def _components(version: str) -> list[str]:
    return [part for part in _COMPONENTS.split(version.strip().lower()) if part]


class RuntimeProfiles:
    """A mapping from runtimes to Pythons (see the module docstring for the keys).

    Args:
        profiles: ``{runtime key: python executable or virtualenv directory}``.
        strict: Refuse tasks whose runtime matches no profile instead of running them with the default.
    """

    def __init__(
        self, profiles: Mapping[str, str | os.PathLike[str]] | None = None, *, strict: bool = False
    ) -> None:
        self.profiles: dict[str, str | os.PathLike[str]] = dict(profiles or {})
        self.strict = strict
        for key in self.profiles:
            serverless = key == _SERVERLESS or (
                key.startswith(_SERVERLESS + ":") and key != _SERVERLESS + ":"
            )
            if not _components(key) or (key.startswith(_SERVERLESS) and not serverless):
                raise ValueError(
                    f"invalid runtime profile key {key!r}: expected a spark_version (or its leading "
                    "components, such as '15.4'), 'serverless' or 'serverless:<environment version>'"
                )

    @staticmethod
    def task_runtime(task: Mapping[str, Any], environments: Mapping[str, Any], cluster_version: str) -> str:
        """The runtime a task asks for: ``spark_version`` for cluster tasks, ``serverless[:N]`` else."""
        cluster = task.get("new_cluster")
        if isinstance(cluster, Mapping):
            return str(cluster.get("spark_version") or cluster_version)
        if task.get("existing_cluster_id") is not None:
            return cluster_version
        env = environments.get(str(task.get("environment_key")))
        spec = env.get("spec") if isinstance(env, Mapping) else None
        version = (
            (spec.get("environment_version") or spec.get("client")) if isinstance(spec, Mapping) else None
        )
        return f"{_SERVERLESS}:{version}" if version else _SERVERLESS

    def select(self, runtime: str) -> RuntimeSelection:
        """The profile for ``runtime`` (a ``spark_version`` or ``serverless[:N]``)."""
        if runtime.startswith(_SERVERLESS):
            for key in (runtime, _SERVERLESS):
                if key in self.profiles:
                    return RuntimeSelection(runtime, key, python_executable(self.profiles[key]))
            return RuntimeSelection(runtime, None, None)
        wanted = _components(runtime)
        best: str | None = None
        for key in self.profiles:
            parts = _components(key)
            if key.startswith(_SERVERLESS) or parts != wanted[: len(parts)]:
                continue
            if best is None or len(parts) > len(_components(best)):
                best = key
        if best is None:
            return RuntimeSelection(runtime, None, None)
        return RuntimeSelection(runtime, best, python_executable(self.profiles[best]))

    def unmatched_message(self, runtime: str, task_key: str) -> str:
        """What to say about a task whose runtime matches no profile."""
        known = ", ".join(sorted(self.profiles)) or "none"
        return f"Task {task_key}: no runtime profile matches {runtime!r} (registered: {known})"
