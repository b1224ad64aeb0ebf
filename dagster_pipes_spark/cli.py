"""The ``dagster-pipes-spark`` console command: ``doctor``, ``decode`` and ``emulator``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._encoding import decode_param
from ._errors import DagsterPipesError
from ._protocol import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR
from .version import __version__


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _sdk_auth() -> dict[str, Any]:
    if not _installed("databricks.sdk"):
        return {"installed": False}
    try:
        from databricks.sdk.core import Config

        cfg = Config()
        return {"installed": True, "host": cfg.host, "auth_type": cfg.auth_type}
    except Exception as e:  # noqa: BLE001 - report, do not fail
        return {"installed": True, "error": str(e).splitlines()[0][:200]}


def _spark() -> dict[str, Any]:
    if not _installed("pyspark"):
        return {"installed": False}
    info: dict[str, Any] = {"installed": True}
    if "pyspark" not in sys.modules:
        info["session"] = "none (pyspark not imported in this process)"
        return info
    try:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            info["session"] = "none"
        else:
            from pyspark.sql.utils import is_remote

            info["session"] = "spark connect" if is_remote() else "classic"
            info["version"] = spark.version
    except Exception as e:  # noqa: BLE001
        info["error"] = str(e)[:200]
    return info


def diagnose(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """What this environment offers for Pipes: params sources, storage access and Spark."""
    from ._params import PipesAutoParamsLoader, find_notebook_dbutils
    from ._transports.fuse import FuseFileStore

    auto = PipesAutoParamsLoader(argv=list(argv) if argv is not None else sys.argv[1:])
    dbutils = find_notebook_dbutils()
    sdk = _sdk_auth()
    fuse = {
        kind: {"root": FuseFileStore(kind).root, "mounted": FuseFileStore.available(kind)}
        for kind in ("dbfs", "volumes")
    }
    transports: dict[str, str] = {}
    for kind in ("dbfs", "volumes"):
        if fuse[kind]["mounted"]:
            transports[kind] = f"fuse ({fuse[kind]['root']})"
        elif dbutils is not None:
            transports[kind] = "dbutils (notebook)"
        elif sdk.get("installed") and "error" not in sdk and sdk.get("host"):
            transports[kind] = f"databricks-sdk ({sdk['host']})"
        else:
            transports[kind] = "none: install dagster-pipes-spark[databricks] and configure Databricks auth"
    return {
        "dagster_pipes_spark": __version__,
        "python": sys.version.split()[0],
        "params_source": auto.source or "none (not launched by Dagster)",
        "params_candidates": [name for name, _ in auto.candidates()],
        "databricks_runtime": os.environ.get("DATABRICKS_RUNTIME_VERSION"),
        "fuse": fuse,
        "dbutils": dbutils is not None,
        "databricks_sdk": sdk,
        "spark": _spark(),
        "transport": transports,
    }


def _print_doctor(report: dict[str, Any]) -> None:
    fuse = report["fuse"]
    rows = [
        ("dagster-pipes-spark", report["dagster_pipes_spark"]),
        ("python", report["python"]),
        ("Databricks runtime", report["databricks_runtime"] or "no (not on a Databricks cluster)"),
        ("params source", report["params_source"]),
        ("params sources tried", ", ".join(report["params_candidates"])),
        ("/dbfs FUSE", f"{'mounted' if fuse['dbfs']['mounted'] else 'absent'} ({fuse['dbfs']['root']})"),
        (
            "/Volumes FUSE",
            f"{'mounted' if fuse['volumes']['mounted'] else 'absent'} ({fuse['volumes']['root']})",
        ),
        ("notebook dbutils", "found" if report["dbutils"] else "absent"),
        ("databricks-sdk", json.dumps(report["databricks_sdk"])),
        ("spark", json.dumps(report["spark"])),
        ("DBFS transport", report["transport"]["dbfs"]),
        ("Volumes transport", report["transport"]["volumes"]),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _decode(value: str) -> Any:
    if value in (DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR) and value in os.environ:
        value = os.environ[value]
    if value == "-":
        value = sys.stdin.read().strip()
    return decode_param(value)


def _serve(args: argparse.Namespace) -> int:
    import time

    from .testing import Emulator

    with Emulator(root=args.root, volumes=args.volume, port=args.port, require_auth=False) as ws:
        print(f"Databricks workspace emulator serving {ws.url} (files under {ws.root})", flush=True)
        print("Point the SDK / dagster-databricks at it with:")
        for k, v in ws.env().items():
            print(f"  export {k}={v}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dagster-pipes-spark`` command."""
    parser = argparse.ArgumentParser(prog="dagster-pipes-spark", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="what this environment offers and which transport would be picked")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    decode = sub.add_parser("decode", help="decode a Pipes bootstrap value to readable JSON")
    decode.add_argument(
        "value", help="the encoded value, an env var name (DAGSTER_PIPES_CONTEXT/MESSAGES), or - for stdin"
    )
    emu = sub.add_parser(
        "emulator", help="serve a local Databricks workspace (DBFS, Files, Jobs APIs) for tests"
    )
    emu.add_argument("--port", type=int, default=8765)
    emu.add_argument(
        "--root", default=None, help="directory holding the workspace files (default: a temp dir)"
    )
    emu.add_argument(
        "--volume", action="append", default=[], help="catalog/schema/volume to create (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.command == "doctor":
        report = diagnose([])
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            _print_doctor(report)
        return 0
    if args.command == "decode":
        try:
            print(json.dumps(_decode(args.value), indent=2, sort_keys=True))
        except DagsterPipesError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    return _serve(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
