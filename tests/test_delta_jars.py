"""``dagster_pipes_spark.testing.table_formats``: pinned jars are fetched, verified and cached; a
checksum mismatch or a missing jar is an error naming the jar (no network: a ``file:`` repository)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dagster_pipes_spark.testing import table_formats
from dagster_pipes_spark.testing.table_formats import (
    REPOSITORY_ENV,
    MissingJarsError,
    cached_jars,
    fetch_jars,
    read_pins,
    spark_confs,
)


def _repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    jar = repo / "io/delta/delta-spark_2.13/4.0.1/delta-spark_2.13-4.0.1.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"PK fake jar")
    monkeypatch.setenv(REPOSITORY_ENV, repo.as_uri())
    monkeypatch.setattr(table_formats.Path, "home", staticmethod(lambda: tmp_path / "home"))
    return jar, hashlib.sha256(jar.read_bytes()).hexdigest()


def test_fetch_verifies_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jar, digest = _repo(tmp_path, monkeypatch)
    pins = tmp_path / "pins.txt"
    pins.write_text(f"# a comment\nio.delta:delta-spark_2.13:4.0.1 sha256={digest}\n")
    cache = tmp_path / "cache"
    assert cached_jars(pins, cache_dir=cache) == ([], read_pins(pins))
    [path] = fetch_jars(pins, cache_dir=cache)
    assert path.read_bytes() == jar.read_bytes() and path.is_relative_to(cache)
    jar.unlink()  # cached now: no repository needed, also offline
    assert fetch_jars(pins, cache_dir=cache, offline=True) == [path]
    confs = spark_confs([path])
    assert confs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert confs["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def test_checksum_mismatch_and_missing_jars_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path, monkeypatch)
    pins = tmp_path / "pins.txt"
    pins.write_text(
        f"io.delta:delta-spark_2.13:4.0.1 sha256={'0' * 64}\n"
        f"org.apache.iceberg:iceberg-spark-runtime-4.0_2.13:1.10.1 sha256={'1' * 64}\n"
    )
    cache = tmp_path / "cache"
    with pytest.raises(MissingJarsError) as raised:
        fetch_jars(pins, cache_dir=cache, attempts=1)
    assert [p.coordinate for p in raised.value.missing] == [
        "io.delta:delta-spark_2.13:4.0.1",
        "org.apache.iceberg:iceberg-spark-runtime-4.0_2.13:1.10.1",
    ]
    assert "sha256 mismatch" in str(raised.value) and "download failed" in str(raised.value)
    assert not list(cache.rglob("*.jar"))  # a jar that does not match is never kept
    with pytest.raises(MissingJarsError, match="not cached"):
        fetch_jars(pins, cache_dir=cache, offline=True)


def test_the_pinned_lists_parse() -> None:
    for name in ("spark40", "spark35"):
        pins = read_pins(name)
        assert {p.artifact.split("_")[0] for p in pins} >= {"delta-spark", "delta-storage"}
        assert any(p.artifact.startswith("iceberg-spark-runtime") for p in pins)


def test_the_local_session_keeps_a_full_size_code_cache() -> None:
    """The quick-start JVM (C1 only) would shrink its code cache to 48 MB, which a long session with
    the Delta and Iceberg extensions filled ("Out of space in CodeCache"): it must keep 240 MB."""
    import subprocess
    import sys

    probe = (
        "from dagster_pipes_spark.testing._notebook import make_spark_session\n"
        "spark = make_spark_session('classic')\n"
        "pools = spark._jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()\n"
        "print(sum(p.getUsage().getMax() for p in pools if 'code' in p.getName().lower()))\n"
        "spark.stop()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=180, check=True
    ).stdout
    assert int(out.strip().splitlines()[-1]) >= 240 * 1024 * 1024
