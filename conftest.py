"""Shared test setup: the venv's bin on PATH (examples call `shutil.which("python")`), quiet Dagster."""

import os
import sys
import warnings

_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("DAGSTER_HOME", "")
os.environ.pop("DAGSTER_HOME") if not os.environ.get("DAGSTER_HOME") else None
warnings.filterwarnings("ignore", message=".*is currently in preview.*")
warnings.filterwarnings("ignore", message=".*is currently in beta.*")
