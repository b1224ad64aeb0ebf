"""On-disk storage shared by the emulated DBFS and Files APIs.

Layout under ``root``: ``dbfs/`` holds DBFS (``dbfs:/x/y`` is ``root/dbfs/x/y``), ``Volumes/`` holds
Unity Catalog volumes (``/Volumes/c/s/v/p`` is ``root/Volumes/c/s/v/p``), and ``.emulator-tmp/``
holds staging files for atomic writes. Because this is a real directory tree, code that maps the
``/dbfs`` and ``/Volumes`` FUSE mounts onto it shares state with the HTTP API.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ._http import ApiError

__all__ = ["MiB", "Storage", "VolumePath", "mtime_ms", "parse_volume_name"]

MiB = 1024 * 1024


def parse_volume_name(name: str) -> tuple[str, str, str]:
    """Parse ``"c/s/v"``, ``"c.s.v"`` or ``"/Volumes/c/s/v"`` into ``(catalog, schema, volume)``."""
    text = name.strip()
    if text.startswith("/Volumes/"):
        text = text[len("/Volumes/") :]
    text = text.strip("/")
    parts = text.split("/") if "/" in text else text.split(".")
    if len(parts) != 3 or not all(parts) or any(p in (".", "..") for p in parts):
        raise ValueError(
            f"invalid volume name {name!r}: expected 'catalog/schema/volume', 'catalog.schema.volume' "
            "or '/Volumes/catalog/schema/volume'"
        )
    return parts[0], parts[1], parts[2]


@dataclass(frozen=True)
class VolumePath:
    """A validated ``/Volumes/<catalog>/<schema>/<volume>[/...]`` path."""

    path: str
    local: Path
    catalog: str
    schema: str
    volume: str
    volume_dir: Path

    @property
    def volume_path(self) -> str:
        """The volume root, e.g. ``/Volumes/main/default/pipes``."""
        return f"/Volumes/{self.catalog}/{self.schema}/{self.volume}"

    @property
    def is_volume_root(self) -> bool:
        """Whether this path is the volume's root directory itself."""
        return self.path == self.volume_path


class Storage:
    """Path mapping, volume bookkeeping and write helpers over one root directory.

    All mutating operations of the emulated APIs run under ``lock`` so that every request is
    atomic with respect to the others.
    """

    def __init__(self, root: Path, *, auto_create_volumes: bool = False) -> None:
        self.root = root
        self.dbfs_root = root / "dbfs"
        self.volumes_root = root / "Volumes"
        self.tmp_root = root / ".emulator-tmp"
        for directory in (self.dbfs_root, self.volumes_root, self.tmp_root):
            directory.mkdir(parents=True, exist_ok=True)
        self.auto_create_volumes = auto_create_volumes
        self.lock = threading.RLock()

    # ----------------------------------------------------------------------------------- DBFS

    def dbfs_path(self, raw: object, *, param: str = "path") -> tuple[str, Path]:
        """Validate a DBFS path (``/x`` or ``dbfs:/x``) into ``(normalized, local_path)``."""
        if not isinstance(raw, str) or not raw:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Missing required field: {param}")
        text = raw
        if text.startswith("dbfs:"):
            text = text[len("dbfs:") :]
        if not text.startswith("/"):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Path must be absolute: {raw}",
            )
        normalized = posixpath.normpath("/" + text.lstrip("/"))
        if normalized == "/Volumes" or normalized.startswith("/Volumes/"):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Unity Catalog volume paths are not supported by the DBFS API: {raw}. "
                "Use the Files API (/api/2.0/fs/files) for /Volumes paths.",
            )
        local = self.dbfs_root if normalized == "/" else self.dbfs_root / normalized.lstrip("/")
        return normalized, local

    def dbfs_ensure_parents(self, normalized: str, local: Path) -> None:
        """Create the missing parent directories of a DBFS path (DBFS creates them implicitly)."""
        parent = local.parent
        if parent == self.dbfs_root or parent.is_dir():
            return
        self._mkdirs_checked(parent, self.dbfs_root, normalized, dbfs=True)

    def dbfs_mkdirs(self, normalized: str, local: Path) -> None:
        """``mkdir -p`` within DBFS; a file anywhere on the way is ``RESOURCE_ALREADY_EXISTS``."""
        self._mkdirs_checked(local, self.dbfs_root, normalized, dbfs=True)

    def _mkdirs_checked(self, target: Path, base: Path, shown: str, *, dbfs: bool) -> None:
        current = base
        for part in target.relative_to(base).parts:
            current = current / part
            if current.is_dir():
                continue
            if current.exists():
                if dbfs:
                    raise ApiError(
                        400,
                        "RESOURCE_ALREADY_EXISTS",
                        f"A file or directory already exists at the input path {self._shown(current)}.",
                    )
                raise ApiError(
                    409,
                    "RESOURCE_CONFLICT",
                    f"Cannot create directory {shown}: a file already exists at {self._shown(current)}.",
                )
            current.mkdir()

    def _shown(self, local: Path) -> str:
        """The API-visible path of a local path under the root."""
        if local == self.dbfs_root:
            return "/"
        if local.is_relative_to(self.dbfs_root):
            return "/" + local.relative_to(self.dbfs_root).as_posix()
        return "/" + local.relative_to(self.root).as_posix()

    def local_path(self, path: str) -> Path:
        """The on-disk location of a DBFS (``dbfs:/x`` or ``/x``) or ``/Volumes/c/s/v/...`` path
        (raises the API's 400 :class:`ApiError` for a path that is neither)."""
        if path == "/Volumes" or path.startswith("/Volumes/"):
            return self.volume_path(path).local
        return self.dbfs_path(path)[1]

    # -------------------------------------------------------------------------------- Volumes

    def volume_path(self, raw: str) -> VolumePath:
        """Validate a Files API path; it must lie within ``/Volumes/<catalog>/<schema>/<volume>``."""
        normalized = posixpath.normpath("/" + raw.lstrip("/")) if raw else ""
        parts = normalized.split("/")[1:] if normalized.startswith("/") else []
        if len(parts) < 4 or parts[0] != "Volumes" or not all(parts[1:4]):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Invalid path {raw!r}: the Files API accepts only paths of the form "
                "/Volumes/<catalog>/<schema>/<volume>/<path>.",
            )
        catalog, schema, volume = parts[1], parts[2], parts[3]
        volume_dir = self.volumes_root / catalog / schema / volume
        rest = parts[4:]
        local = volume_dir.joinpath(*rest) if rest else volume_dir
        return VolumePath(normalized, local, catalog, schema, volume, volume_dir)

    def create_volume(self, catalog: str, schema: str, volume: str) -> str:
        """Create a volume (idempotent); returns its ``/Volumes/...`` root path."""
        (self.volumes_root / catalog / schema / volume).mkdir(parents=True, exist_ok=True)
        return f"/Volumes/{catalog}/{schema}/{volume}"

    def require_volume(self, vp: VolumePath) -> None:
        """Raise the 404 a real workspace gives for a path in a volume that does not exist."""
        if vp.volume_dir.is_dir():
            return
        if self.auto_create_volumes:
            self.create_volume(vp.catalog, vp.schema, vp.volume)
            return
        raise ApiError(
            404,
            "NOT_FOUND",
            f"Volume '{vp.catalog}.{vp.schema}.{vp.volume}' does not exist.",
        )

    def existing_volume_path(self, raw: str) -> VolumePath:
        """:meth:`volume_path`, then :meth:`require_volume`: a path in a volume that exists."""
        vp = self.volume_path(raw)
        self.require_volume(vp)
        return vp

    def volume_ensure_dirs(self, vp: VolumePath, target: Path) -> None:
        """``mkdir -p`` inside a volume; a file on the way is a 409 conflict."""
        self._mkdirs_checked(target, vp.volume_dir, vp.path, dbfs=False)

    # ---------------------------------------------------------------------------------- Files

    def atomic_write(self, target: Path, data: bytes) -> None:
        """Write ``data`` to ``target`` via a staged file and ``os.replace`` (readers never see a
        partially written file)."""
        fd, staged = tempfile.mkstemp(dir=self.tmp_root)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(staged, target)
        except BaseException:
            try:
                os.unlink(staged)
            except FileNotFoundError:
                pass
            raise


def mtime_ms(local: Path) -> int:
    """Modification time of a local path in epoch milliseconds."""
    return local.stat().st_mtime_ns // 1_000_000
