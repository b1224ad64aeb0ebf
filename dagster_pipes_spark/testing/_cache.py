"""The per-machine cache the testing builders share (runtime environments, table-format jars): where
it lives and the sha256 of a cached file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["cache_root", "file_sha256"]


def cache_root(cache_dir: str | os.PathLike[str] | None, env_var: str, name: str) -> Path:
    """``cache_dir`` if given, else ``$env_var`` if set, else ``dagster-pipes-spark/<name>`` under
    ``$XDG_CACHE_HOME`` (``~/.cache`` when unset); ``~`` expanded."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dagster-pipes-spark" / name


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
