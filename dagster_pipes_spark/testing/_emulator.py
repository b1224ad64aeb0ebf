"""A loopback Databricks workspace emulator (DBFS 2.0, Files API, Jobs runs) for tests.

The real ``databricks.sdk.WorkspaceClient`` (and everything built on it, such as the
``dagster_databricks.pipes`` injectors and readers) works against it unchanged::

    with Emulator(volumes=["main/default/pipes"]) as ws:
        w = ws.workspace_client()
        w.dbfs.put("/tmp/x.json", contents="e30=", overwrite=True)

Only the standard library is used at runtime; ``databricks.sdk`` is imported lazily by
:meth:`Emulator.workspace_client`. The emulator composes an HTTP front (:mod:`._server`) with the
emulated APIs: DBFS (:mod:`._dbfs_api`), Files (:mod:`._files_api`), presigned-URL transfers
(:mod:`._presigned`), host discovery (:mod:`._discovery_api`), Jobs (:mod:`.jobs`) and its own
control surface (``/_emulator/*``, for tests and subprocesses).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._dbfs_api import DbfsApi
from ._discovery_api import DiscoveryApi
from ._faults import FaultConfig, FaultInjector, RequestRecord
from ._files_api import FilesApi
from ._http import ApiError, EmulatorApi, Request, Response, Router
from ._presigned import PresignedApi
from ._server import HttpFront
from ._storage import Storage, parse_volume_name
from .jobs import JobsApi, TaskLogs

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

    from .dbutils import FakeDbutils

__all__ = ["DEFAULT_TOKEN", "Emulator", "FaultsHandle"]

#: The token handed to clients when the emulator was not given one.
DEFAULT_TOKEN = "dapi-emulator-token"


class FaultsHandle:
    """Returned by :meth:`Emulator.faults`: the faults are active already; used as a context
    manager, the previous fault configuration is restored on exit."""

    def __init__(self, injector: FaultInjector, config: FaultConfig, previous: FaultConfig) -> None:
        self._injector = injector
        self.config = config
        self._previous = previous

    def __enter__(self) -> FaultsHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._injector.configure(self._previous)


class _ControlApi:
    """``/_emulator/*``: control surface for tests and subprocesses (no auth, faults or stats)."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    def register(self, router: Router) -> None:
        """Add the control routes."""
        e = self._emulator
        for method, path, handler in (
            ("GET", "/_emulator/health", lambda req: Response.json({"ok": True, "root": str(e.root)})),
            ("GET", "/_emulator/faults", lambda req: Response.json(e.fault_config.to_json())),
            ("POST", "/_emulator/faults", self._set_faults),
            ("DELETE", "/_emulator/faults", lambda req: self._done(e.clear_faults)),
            ("GET", "/_emulator/stats", lambda req: Response.json(e.stats)),
            ("GET", "/_emulator/stats/faults", lambda req: Response.json(e.fault_stats)),
            ("DELETE", "/_emulator/stats", lambda req: self._done(e.reset_stats)),
            ("GET", "/_emulator/requests", self._requests),
            ("DELETE", "/_emulator/requests", lambda req: self._done(e.clear_requests)),
            ("GET", "/_emulator/unserved", lambda req: Response.json({"unserved": e.unserved_requests})),
            ("DELETE", "/_emulator/unserved", lambda req: self._done(e.clear_unserved_requests)),
            ("GET", "/_emulator/volumes", lambda req: Response.json({"volumes": e.volumes})),
            ("POST", "/_emulator/volumes", self._create_volume),
        ):
            router.add(method, path, handler, name=f"{method} {path}", internal=True)

    @staticmethod
    def _done(action: Any) -> Response:
        action()
        return Response.json({})

    def _set_faults(self, req: Request) -> Response:
        try:
            config = FaultConfig.from_json(req.json())
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", str(exc)) from None
        self._emulator.configure_faults(config)
        return Response.json(config.to_json())

    def _requests(self, req: Request) -> Response:
        return Response.json({"requests": [r.to_json() for r in self._emulator.requests]})

    def _create_volume(self, req: Request) -> Response:
        body = req.json()
        try:
            if "name" in body:
                catalog, schema, volume = parse_volume_name(str(body["name"]))
            else:
                catalog, schema, volume = str(body["catalog"]), str(body["schema"]), str(body["volume"])
            path = self._emulator.create_volume(catalog, schema, volume)
        except (KeyError, ValueError) as exc:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid volume: {exc}") from None
        return Response.json({"path": path})


class Emulator:
    """A loopback HTTP server emulating a Databricks workspace's DBFS, Files and Jobs APIs.

    Args:
        root: Storage directory (a fresh temporary directory, removed on stop, by default).
            DBFS ``/x`` lives at ``root/dbfs/x`` and ``/Volumes/c/s/v/p`` at ``root/Volumes/c/s/v/p``.
        volumes: Volumes to pre-create, as ``"catalog/schema/volume"`` (or ``"c.s.v"``).
        auto_create_volumes: Create volumes on first use instead of answering 404.
        token: Require exactly this bearer token (any bearer token is accepted when ``None``).
        require_auth: Answer 401 to API requests without an ``Authorization`` header.
        record_requests: Keep a log of served requests (see :attr:`requests`).
        handle_idle_timeout: Seconds after which an unused DBFS streaming handle expires.
        host: Interface to bind (loopback by default).
        port: Port to bind (an ephemeral port by default).
        task_python: Python executable (or virtualenv directory) that runs Jobs API tasks whose
            runtime matches no profile (``sys.executable`` by default); see :attr:`jobs`.
        runtimes: Runtime profiles for Jobs API tasks: ``{runtime: python executable or venv dir}``,
            where a runtime is a ``spark_version`` (``"15.4.x-scala2.12"``, or leading components
            such as ``"15.4"``), ``"serverless:<environment version>"`` or ``"serverless"``.
        strict_runtimes: Refuse (``runs/submit`` answers 400) tasks whose runtime matches no profile,
            instead of running them with ``task_python`` after a warning.
        cluster_log_conf: ``cluster_log_conf`` that ``clusters/get`` reports for existing clusters.
        presigned_url_ttl: The longest a presigned storage URL stays valid, in seconds.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        volumes: Iterable[str] = (),
        auto_create_volumes: bool = False,
        token: str | None = None,
        require_auth: bool = True,
        record_requests: bool = False,
        handle_idle_timeout: float = 600.0,
        host: str = "127.0.0.1",
        port: int = 0,
        task_python: str | os.PathLike[str] | None = None,
        runtimes: Mapping[str, str | os.PathLike[str]] | None = None,
        strict_runtimes: bool = False,
        cluster_log_conf: dict[str, Any] | None = None,
        presigned_url_ttl: float = 3600.0,
    ) -> None:
        self._owns_root = root is None
        root_path = Path(tempfile.mkdtemp(prefix="databricks-emulator-")) if root is None else Path(root)
        root_path.mkdir(parents=True, exist_ok=True)
        self._storage = Storage(root_path.resolve(), auto_create_volumes=auto_create_volumes)
        self._token = token
        self._front = HttpFront(
            Router(),
            host=host,
            port=port,
            token=token,
            require_auth=require_auth,
            record_requests=record_requests,
        )
        self.workspace_id = str(random.randint(10**15, 10**16 - 1))
        self._dbfs = DbfsApi(self._storage, handle_idle_timeout=handle_idle_timeout)
        self._presigned = PresignedApi(self._storage, url_ttl=presigned_url_ttl)
        self._jobs = JobsApi(
            self,
            self._storage,
            python=task_python,
            runtimes=runtimes,
            strict_runtimes=strict_runtimes,
            existing_cluster_log_conf=cluster_log_conf,
        )
        discovery = DiscoveryApi(workspace_id=self.workspace_id, account_id=str(uuid.uuid4()))
        for api in (
            _ControlApi(self),
            discovery,
            self._dbfs,
            FilesApi(self._storage),
            self._presigned,
            self._jobs,
        ):
            self.add_api(api)
        for name in volumes:
            self.create_volume(*parse_volume_name(name))

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> Emulator:
        """Start serving in a background thread (idempotent); returns ``self``."""
        self._front.start()
        return self

    def stop(self) -> None:
        """Stop serving (cancelling active job runs); removes the storage root if the emulator created it."""
        self._jobs.shutdown()
        self._front.stop()
        if self._owns_root:
            shutil.rmtree(self._storage.root, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_api(self, api: EmulatorApi) -> None:
        """Register another emulated API (an object with ``register(router)``)."""
        api.register(self._front.router)

    @property
    def router(self) -> Router:
        """The routing table."""
        return self._front.router

    @property
    def storage(self) -> Storage:
        """The shared on-disk storage (for additional emulated APIs)."""
        return self._storage

    # --------------------------------------------------------------------------- properties

    @property
    def root(self) -> Path:
        """The storage root directory."""
        return self._storage.root

    @property
    def dbfs_root(self) -> Path:
        """``root/dbfs``: where DBFS lives (map the ``/dbfs`` FUSE mount here)."""
        return self._storage.dbfs_root

    @property
    def volumes_root(self) -> Path:
        """``root/Volumes``: where UC volumes live (map the ``/Volumes`` FUSE mount here)."""
        return self._storage.volumes_root

    @property
    def port(self) -> int:
        """The bound TCP port (the server must be started)."""
        return self._front.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the workspace host to give clients."""
        return self._front.url

    @property
    def host(self) -> str:
        """Alias of :attr:`url` (what ``DATABRICKS_HOST`` should be)."""
        return self.url

    @property
    def token(self) -> str:
        """The bearer token clients should send."""
        return self._token or DEFAULT_TOKEN

    @property
    def require_auth(self) -> bool:
        """Whether API requests without an ``Authorization`` header are answered 401."""
        return self._front.require_auth

    @require_auth.setter
    def require_auth(self, value: bool) -> None:
        self._front.require_auth = value

    @property
    def record_requests(self) -> bool:
        """Whether served requests are logged (see :attr:`requests`)."""
        return self._front.record_requests

    @record_requests.setter
    def record_requests(self, value: bool) -> None:
        self._front.record_requests = value

    @property
    def volumes(self) -> list[str]:
        """The existing volumes as ``/Volumes/c/s/v`` paths."""
        base = self.volumes_root
        return sorted(f"/Volumes/{v.relative_to(base).as_posix()}" for v in base.glob("*/*/*") if v.is_dir())

    @property
    def jobs(self) -> JobsApi:
        """The emulated Jobs API: task interpreter, runtime profiles, start-up delay, extra env, run inspection."""
        return self._jobs

    def run_logs(self, run_id: int) -> dict[str, TaskLogs]:
        """stdout / stderr of a job run's tasks, by task key (see :meth:`JobsApi.run_logs`)."""
        return self._jobs.run_logs(run_id)

    @property
    def dbfs_open_handles(self) -> int:
        """Number of open (unexpired) DBFS streaming handles."""
        return self._dbfs.open_handles

    @property
    def presigned_url_ttl(self) -> float:
        """The longest a presigned storage URL stays valid, in seconds (0: URLs are born expired)."""
        return self._presigned.url_ttl

    @presigned_url_ttl.setter
    def presigned_url_ttl(self, value: float) -> None:
        self._presigned.url_ttl = value

    @property
    def open_multipart_uploads(self) -> int:
        """Number of multipart upload sessions neither completed nor aborted."""
        return self._presigned.open_uploads

    # ------------------------------------------------------------------------------ helpers

    def local_path(self, path: str) -> Path:
        """The on-disk location of a DBFS (``dbfs:/x`` or ``/x``) or ``/Volumes/c/s/v/...`` path."""
        try:
            return self._storage.local_path(path)
        except ApiError as exc:
            raise ValueError(exc.message) from None

    def create_volume(self, catalog: str, schema: str, volume: str) -> str:
        """Create a UC volume (idempotent); returns its ``/Volumes/c/s/v`` path."""
        for part in (catalog, schema, volume):
            if not part or "/" in part or part in (".", ".."):
                raise ValueError(f"invalid volume name component {part!r}")
        return self._storage.create_volume(catalog, schema, volume)

    def env(self) -> dict[str, str]:
        """Environment variables pointing a subprocess's SDK / :class:`FakeDbutils` here."""
        return {
            "DATABRICKS_HOST": self.url,
            "DATABRICKS_TOKEN": self.token,
            "DATABRICKS_AUTH_TYPE": "pat",
        }

    def workspace_client(self, *, fast_retries: bool = True, **config: Any) -> WorkspaceClient:
        """A real ``databricks.sdk.WorkspaceClient`` configured for this emulator.

        With ``fast_retries`` the SDK's retry back-off sleeps are shortened (injected 429/503 are
        still retried by the SDK itself, just without the ~0.5 s average jitter each).
        Extra keyword arguments are passed to ``databricks.sdk.core.Config``.
        """
        from ._sdk import make_workspace_client

        return make_workspace_client(
            **{"host": self.url, "token": self.token, **config}, fast_retries=fast_retries
        )

    def fake_dbutils(self, widgets: dict[str, str] | None = None) -> FakeDbutils:
        """A :class:`FakeDbutils` talking to this emulator."""
        from .dbutils import FakeDbutils

        return FakeDbutils(host=self.url, token=self.token, widgets=widgets)

    # ------------------------------------------------------------------------------- faults

    def faults(
        self, rate: float = 0.15, statuses: Sequence[int] | None = None, **options: Any
    ) -> FaultsHandle:
        """Inject errors into a fraction ``rate`` of API requests, before any side effect.

        ``statuses`` and ``options`` are the other fields of :class:`FaultConfig` (``seed``,
        ``endpoints``, ``retry_after``, ``max_faults``, ``hold``, ...): e.g. ``endpoints=["dbfs/read"]``
        limits injection to endpoint names containing one of the substrings. Takes effect
        immediately; use the result as a context manager to restore the previous setting on exit.
        """
        if statuses is not None:
            options["statuses"] = statuses
        config = FaultConfig.from_json({"rate": rate, **options})
        return FaultsHandle(self._front.injector, config, self.configure_faults(config))

    def configure_faults(self, config: FaultConfig) -> FaultConfig:
        """Activate a fault configuration; returns the previous one."""
        return self._front.injector.configure(config)

    def clear_faults(self) -> None:
        """Stop injecting faults."""
        self.configure_faults(FaultConfig())

    @property
    def fault_config(self) -> FaultConfig:
        """The active fault configuration."""
        return self._front.injector.config

    @contextmanager
    def no_faults(self) -> Iterator[None]:
        """Temporarily disable fault injection (e.g. for test setup / assertions)."""
        previous = self.configure_faults(FaultConfig())
        try:
            yield
        finally:
            self.configure_faults(previous)

    # -------------------------------------------------------------------------------- stats

    @property
    def stats(self) -> dict[str, int]:
        """Requests per endpoint (e.g. ``"POST /api/2.0/dbfs/put"``), faulted ones included, plus
        ``"faults"``: the total number of injected faults."""
        return self._front.stats.snapshot()

    @property
    def fault_stats(self) -> dict[str, int]:
        """Injected faults per endpoint."""
        return self._front.stats.faults()

    def reset_stats(self) -> None:
        """Zero the request and fault counters."""
        self._front.stats.reset()

    @property
    def requests(self) -> list[RequestRecord]:
        """Served requests, oldest first (only when ``record_requests`` is enabled)."""
        return self._front.requests

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._front.clear_requests()

    @property
    def unserved_requests(self) -> list[str]:
        """Requests to endpoints the emulator does not serve (``"METHOD /path"``, answered 404
        ``ENDPOINT_NOT_FOUND``), oldest first. The pytest plugin fails any test during which one
        arrives; a test that sends one on purpose asserts on it and calls
        :meth:`clear_unserved_requests`."""
        return self._front.unserved.snapshot()

    def clear_unserved_requests(self) -> None:
        """Forget (acknowledge) the unserved requests."""
        self._front.unserved.clear()
