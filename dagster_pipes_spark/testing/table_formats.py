"""Table-format jars (Delta Lake, Apache Iceberg) for local Spark sessions, fetched from pinned lists.

A list (``.ci/jars/NAME.txt``) names one jar a line as a Maven coordinate and its sha256::

    io.delta:delta-spark_2.13:4.0.1 sha256=a1e7...

:func:`fetch_jars` returns the local paths of a list's jars: each is taken from the cache
(``$DAGSTER_PIPES_SPARK_JARS_DIR``, else ``~/.cache/dagster-pipes-spark/jars``) or the local Maven
repository (``~/.m2/repository``) when its checksum matches, else downloaded from Maven Central
(``$DAGSTER_PIPES_SPARK_MAVEN_REPO`` overrides it), checked and cached. A jar whose checksum does not
match is never used. :func:`spark_confs` turns the paths into the session settings that enable
Delta (extension + ``spark_catalog``) and Iceberg (a Hadoop catalog named ``iceberg``)::

    jars = fetch_jars("spark40")
    builder = SparkSession.builder
    for key, value in spark_confs(jars, iceberg_warehouse="/tmp/wh").items():
        builder = builder.config(key, value)

Command line::

    python -m dagster_pipes_spark.testing.table_formats fetch NAME|FILE [--offline]   # prints spark.jars
    python -m dagster_pipes_spark.testing.table_formats pin COORDINATE... --output FILE
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dagster_pipes_spark._errors import DagsterPipesError

from ._cache import cache_root, file_sha256

__all__ = [
    "CACHE_DIR_ENV",
    "DELTA_CONFS",
    "REPOSITORY_ENV",
    "JarPin",
    "MissingJarsError",
    "cached_jars",
    "fetch_jars",
    "jars_env_var",
    "main",
    "read_pins",
    "resolve_pins",
    "spark_confs",
]

#: Directory of the jar cache (default ``~/.cache/dagster-pipes-spark/jars``).
CACHE_DIR_ENV = "DAGSTER_PIPES_SPARK_JARS_DIR"
#: Base URL of the Maven repository jars are downloaded from.
REPOSITORY_ENV = "DAGSTER_PIPES_SPARK_MAVEN_REPO"
DEFAULT_REPOSITORY = "https://repo1.maven.org/maven2"
#: Settings that make ``spark_catalog`` a Delta catalog (with Delta's SQL extension).
DELTA_CONFS: Mapping[str, str] = {
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
_ICEBERG_EXTENSION = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
_LINE = re.compile(r"^(?P<coord>[\w.\-]+:[\w.\-]+:[\w.\-]+)\s+sha256=(?P<sha>[0-9a-f]{64})$")


class MissingJarsError(DagsterPipesError):
    """Some pinned jars are neither cached nor downloadable (offline, or a checksum mismatch)."""

    def __init__(self, missing: Sequence[JarPin], reasons: Sequence[str]) -> None:
        self.missing = list(missing)
        detail = "; ".join(f"{pin.coordinate}: {why}" for pin, why in zip(missing, reasons, strict=True))
        super().__init__(f"table-format jars unavailable: {detail}")


@dataclass(frozen=True)
class JarPin:
    """One pinned jar: a Maven coordinate and the sha256 of its file."""

    group: str
    artifact: str
    version: str
    sha256: str

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def relative_path(self) -> str:
        """The jar's path in a Maven repository layout."""
        group = self.group.replace(".", "/")
        return f"{group}/{self.artifact}/{self.version}/{self.artifact}-{self.version}.jar"


def jars_env_var(name: str) -> str:
    """The environment variable carrying list ``name``'s jars (comma-separated paths) once fetched:
    ``spark40`` -> ``DAGSTER_PIPES_SPARK_JARS_SPARK40`` (``.ci/dev`` exports them)."""
    return "DAGSTER_PIPES_SPARK_JARS_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def resolve_pins(name_or_file: str | os.PathLike[str]) -> Path:
    """The list ``name_or_file``: an existing file, else ``NAME.txt`` in ``.ci/jars`` of the current
    directory or of this checkout."""
    path = Path(name_or_file)
    if path.is_file():
        return path.resolve()
    for directory in (Path.cwd() / ".ci" / "jars", Path(__file__).resolve().parents[2] / ".ci" / "jars"):
        candidate = directory / f"{name_or_file}.txt"
        if candidate.is_file():
            return candidate
    raise DagsterPipesError(f"No jar list {str(name_or_file)!r} (a file, or NAME.txt in .ci/jars).")


def read_pins(name_or_file: str | os.PathLike[str]) -> list[JarPin]:
    """The pins of a list (comments and blank lines skipped; a malformed line is an error)."""
    pins = []
    for number, raw in enumerate(resolve_pins(name_or_file).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise DagsterPipesError(
                f"{name_or_file}:{number}: expected 'group:artifact:version sha256=<hex>'"
            )
        group, artifact, version = match["coord"].split(":")
        pins.append(JarPin(group, artifact, version, match["sha"]))
    return pins


def _download(url: str, dest: Path, timeout: float) -> None:
    """``url`` into ``dest`` atomically (a temp file in the same directory, then a rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while block := response.read(1 << 20):
                out.write(block)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _local_copy(pin: JarPin, cache: Path) -> Path | None:
    """A verified copy in the cache or the local Maven repository, else None."""
    candidates = [cache / pin.relative_path, Path.home() / ".m2" / "repository" / pin.relative_path]
    for candidate in candidates:
        if candidate.is_file() and file_sha256(candidate) == pin.sha256:
            return candidate
    return None


def cached_jars(
    name_or_file: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[list[Path], list[JarPin]]:
    """``(present, missing)``: verified local copies of a list's jars, and the pins without one."""
    cache = cache_root(cache_dir, CACHE_DIR_ENV, "jars")
    present: list[Path] = []
    missing: list[JarPin] = []
    for pin in read_pins(name_or_file):
        found = _local_copy(pin, cache)
        if found is None:
            missing.append(pin)
        else:
            present.append(found)
    return present, missing


def fetch_jars(
    name_or_file: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool = False,
    timeout: float = 120.0,
    attempts: int = 3,
) -> list[Path]:
    """Local paths of a list's jars, downloading (and verifying) those not cached yet.

    Raises :class:`MissingJarsError` naming every jar that could not be had (with ``offline``, any
    jar not cached); a download whose sha256 differs from the pin is deleted and counts as missing.
    """
    cache = cache_root(cache_dir, CACHE_DIR_ENV, "jars")
    repository = os.environ.get(REPOSITORY_ENV, DEFAULT_REPOSITORY).rstrip("/")
    paths: list[Path] = []
    missing: list[JarPin] = []
    reasons: list[str] = []
    for pin in read_pins(name_or_file):
        found = _local_copy(pin, cache)
        if found is not None:
            paths.append(found)
            continue
        if offline:
            missing.append(pin)
            reasons.append("not cached (offline)")
            continue
        dest = cache / pin.relative_path
        why = ""
        for attempt in range(attempts):
            try:
                _download(f"{repository}/{pin.relative_path}", dest, timeout)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                why = f"download failed: {exc}"
                if attempt + 1 < attempts:
                    time.sleep(min(2.0**attempt, 5.0))
                continue
            actual = file_sha256(dest)
            if actual == pin.sha256:
                why = ""
                break
            dest.unlink(missing_ok=True)
            why = f"sha256 mismatch (got {actual})"
            break
        if why:
            missing.append(pin)
            reasons.append(why)
        else:
            paths.append(dest)
    if missing:
        raise MissingJarsError(missing, reasons)
    return paths


def spark_confs(
    jars: Sequence[str | os.PathLike[str]],
    *,
    iceberg_warehouse: str | os.PathLike[str] | None = None,
    iceberg_catalog: str = "iceberg",
) -> dict[str, str]:
    """Session settings for the given jars: ``spark.jars``, Delta's extension and catalog when a
    ``delta-spark`` jar is among them, and when an Iceberg runtime jar is, its extension and a Hadoop
    catalog ``iceberg_catalog`` in ``iceberg_warehouse`` (required then)."""
    names = [Path(j).name for j in jars]
    confs: dict[str, str] = {"spark.jars": ",".join(str(Path(j)) for j in jars)}
    extensions = []
    if any(n.startswith("delta-spark") for n in names):
        extensions.append(_DELTA_EXTENSION)
        confs.update(DELTA_CONFS)
    if any(n.startswith("iceberg-spark-runtime") for n in names):
        if iceberg_warehouse is None:
            raise ValueError("an Iceberg jar needs iceberg_warehouse")
        extensions.append(_ICEBERG_EXTENSION)
        prefix = f"spark.sql.catalog.{iceberg_catalog}"
        confs[prefix] = "org.apache.iceberg.spark.SparkCatalog"
        confs[f"{prefix}.type"] = "hadoop"
        confs[f"{prefix}.warehouse"] = str(iceberg_warehouse)
    if extensions:
        confs["spark.sql.extensions"] = ",".join(extensions)
    return confs


def _pin(coordinates: Sequence[str], output: Path, timeout: float) -> None:
    """Download each coordinate once and write a list with their sha256 sums (for re-pinning)."""
    repository = os.environ.get(REPOSITORY_ENV, DEFAULT_REPOSITORY).rstrip("/")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for coordinate in coordinates:
            group, artifact, version = coordinate.split(":")
            pin = JarPin(group, artifact, version, "0" * 64)
            dest = Path(tmp) / Path(pin.relative_path).name
            _download(f"{repository}/{pin.relative_path}", dest, timeout)
            lines.append(f"{coordinate} sha256={file_sha256(dest)}")
    output.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``fetch`` prints the comma-separated jar paths (``spark.jars``); ``pin``
    writes a list."""
    parser = argparse.ArgumentParser(prog="python -m dagster_pipes_spark.testing.table_formats")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch (or find cached) a list's jars; print their paths")
    fetch.add_argument("list")
    fetch.add_argument("--offline", action="store_true", help="never download")
    pin = sub.add_parser("pin", help="write a list of coordinates with their sha256")
    pin.add_argument("coordinates", nargs="+")
    pin.add_argument("--output", "-o", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(",".join(str(p) for p in fetch_jars(args.list, offline=args.offline)))
        else:
            _pin(args.coordinates, args.output, 300.0)
    except DagsterPipesError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
