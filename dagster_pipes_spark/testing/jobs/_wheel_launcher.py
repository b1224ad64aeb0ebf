"""Runs a ``python_wheel_task`` in the task's Python: ``python _wheel_launcher.py PACKAGE ENTRY_POINT [ARG]...``.

Calls the installed distribution's entry point named ``ENTRY_POINT`` (its ``console_scripts``, then
its ``packages`` group — what the Databricks bundle templates declare — then any group), else any
distribution's ``console_scripts`` entry of that name, else ``<package>.<entry_point>()`` as
Databricks does, with ``sys.argv = [PACKAGE, *ARGS]``. An ``int`` result is the exit status.

Standard library only, and executed as a file: the task's Python need not have this package.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any


def _norm(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _distribution(package: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return next(
            (d for d in metadata.distributions() if _norm(d.metadata["Name"] or "") == _norm(package)), None
        )


def find_entry_point(package: str, name: str) -> Callable[[], Any]:
    """The callable that the task runs."""
    dist = _distribution(package)
    if dist is not None:
        own = [ep for ep in dist.entry_points if ep.name == name]
        for group in ("console_scripts", "packages"):
            for ep in own:
                if ep.group == group:
                    loaded: Callable[[], Any] = ep.load()
                    return loaded
        if own:
            first: Callable[[], Any] = own[0].load()
            return first
    for ep in metadata.entry_points(group="console_scripts", name=name):
        found: Callable[[], Any] = ep.load()
        return found
    module_name = package.replace("-", "_")
    module = importlib.import_module(module_name)
    try:
        attribute: Callable[[], Any] = getattr(module, name)
    except AttributeError:
        raise SystemExit(
            f"No entry point {name!r} in the metadata of package {package!r} and no function {module_name}.{name}"
        ) from None
    return attribute


def main() -> None:
    """Resolve and call the entry point; exit with its status."""
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]  # this file's directory must not shadow the task's imports
    package, name, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    target = find_entry_point(package, name)
    sys.argv = [package, *args]
    result = target()
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
