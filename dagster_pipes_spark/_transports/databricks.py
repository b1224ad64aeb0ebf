"""DBFS and Unity Catalog Volumes context loaders and message writers (same names as dagster_pipes).

Each is a thin composition over a :class:`~dagster_pipes_spark._transports.file_store.FileStore`, picked
automatically (FUSE, then the notebook's ``dbutils``, then ``WorkspaceClient()``) unless
``client=``, ``dbutils=`` or ``store=`` is given. They consume exactly the params produced by
``dagster_databricks.pipes`` and write chunks ``{n}.json`` from 1 as its readers expect.

Failures are bounded: every storage operation goes through one :class:`~.retry.RetryPolicy`
(``retry=``; transient errors retried with backoff, permanent ones such as HTTP 403 not at all), and a
writer's ``close()`` returns within ``flush_timeout`` seconds (60 by default; 20 s at most after
SIGTERM) whatever storage does, saying on stderr how many messages could not be delivered and why.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._context_loaders import PipesContextLoader, parse_downloaded_context
from .._errors import DagsterPipesError
from .._params import find_notebook_dbutils, is_remote_dbutils
from .._protocol import PipesContextData, PipesExtras, PipesParams
from .blob import PipesBlobStoreMessageWriter, PipesBlobStoreMessageWriterChannel
from .dbutils import DbutilsFileStore
from .errors import StorageNotFoundError
from .file_store import FileStore, Kind
from .fuse import FuseFileStore
from .options import DEFAULT_FLUSH_TIMEOUT, OnMessageLoss
from .pending import DEFAULT_MAX_MEMORY_BYTES
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy, call_or_explain
from .sdk import SdkDbfsFileStore, SdkVolumesFileStore
from .sinks import FileStoreSink

#: The stock DBFS reader reads a chunk without ``length``: the API then returns at most 0.5 MB.
DBFS_READER_MAX_CHUNK_BYTES = 500_000


def _path_param(params: PipesParams, owner: str) -> str:
    path = params.get("path")
    if not isinstance(path, str) or not path:
        raise DagsterPipesError(
            f"Invalid params for {owner}: expected a string `path`, received {dict(params)}. "
            "Is the orchestrator using the matching Databricks injector/reader?"
        )
    return path


class _StoreBacked:
    """Holds the backend choice (``client=``, ``dbutils=`` or ``store=``) and resolves it per kind."""

    def __init__(self, *, client: Any = None, dbutils: Any = None, store: FileStore | None = None) -> None:
        self._client = client
        self._dbutils = dbutils
        self._store = store
        self._stores: dict[Kind, FileStore] = {}

    def store_for(self, kind: Kind, request_timeout: float) -> FileStore:
        """The storage backend for ``kind`` (resolved on first use)."""
        if kind not in self._stores:
            self._stores[kind] = resolve_store(
                kind,
                client=self._client,
                dbutils=self._dbutils,
                store=self._store,
                request_timeout=request_timeout,
            )
        return self._stores[kind]


def _kind_of(params: PipesParams) -> Kind:
    return "volumes" if str(params.get("path", "")).startswith("/Volumes/") else "dbfs"


class _StoreContextLoader(_StoreBacked, PipesContextLoader):
    #: the storage the loader reads (None: the one the params' path names)
    _kind: Kind | None = None

    def __init__(
        self,
        *,
        client: Any = None,
        dbutils: Any = None,
        store: FileStore | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(client=client, dbutils=dbutils, store=store)
        self.retry = retry or DEFAULT_RETRY_POLICY

    @property
    def store(self) -> FileStore:
        """The storage backend (resolved on first use)."""
        return self.store_for(self._kind or "dbfs", self.retry.request_timeout)

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Read and yield the context JSON at ``params["path"]`` (any size)."""
        path = _path_param(params, type(self).__name__)
        store = self.store_for(self._kind or _kind_of(params), self.retry.request_timeout)
        where = f"{path!r} ({store.describe()})"
        try:
            data = call_or_explain(
                self.retry,
                lambda: parse_downloaded_context(store.read_bytes(path), where),
                f"read the Pipes context {where}",
            )
        except StorageNotFoundError as e:
            raise DagsterPipesError(
                f"The Pipes context {path!r} does not exist ({store.describe()}). The orchestrator writes it "
                "before launching the run and deletes it afterwards: run this from Dagster, against the same workspace."
            ) from e
        yield data


class PipesDbfsContextLoader(_StoreContextLoader):
    """Loads the context from DBFS (pairs with ``dagster_databricks.PipesDbfsContextInjector``).

    Takes ``client=`` (a ``WorkspaceClient``), ``dbutils=`` or ``store=`` to choose the backend, and
    ``retry=`` (a :class:`RetryPolicy`) to change how failed reads are retried.
    """

    _kind: Kind | None = "dbfs"


class PipesUnityCatalogVolumesContextLoader(_StoreContextLoader):
    """Loads the context from a UC Volume (pairs with ``PipesUnityCatalogVolumesContextInjector``)."""

    _kind: Kind | None = "volumes"


class PipesFileStoreMessageWriterChannel(PipesBlobStoreMessageWriterChannel):
    """Uploads chunks ``{path}/{index}.json`` through a :class:`FileStore`, atomically (a
    :class:`~.sinks.FileStoreSink`)."""

    def __init__(self, store: FileStore, path: str, *, interval: float | None = None, **options: Any):
        super().__init__(sink=FileStoreSink(store, path), interval=interval, **options)
        self.store = store
        self.path = path.rstrip("/")


class _StoreMessageWriter(_StoreBacked, PipesBlobStoreMessageWriter[PipesFileStoreMessageWriterChannel]):
    #: the storage the writer writes (None: the one the params' path names)
    _kind: Kind | None = None

    def __init__(
        self,
        *,
        interval: float = 10,
        client: Any = None,
        dbutils: Any = None,
        store: FileStore | None = None,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_message_loss: OnMessageLoss = "raise",
        max_pending_bytes: int | None = DEFAULT_MAX_MEMORY_BYTES,
    ) -> None:
        _StoreBacked.__init__(self, client=client, dbutils=dbutils, store=store)
        PipesBlobStoreMessageWriter.__init__(
            self,
            interval=interval,
            flush_timeout=flush_timeout,
            retry=retry,
            on_message_loss=on_message_loss,
            max_pending_bytes=max_pending_bytes,
        )
        self._chosen: Kind | None = None

    @property
    def store(self) -> FileStore:
        """The storage backend (resolved on first use)."""
        return self.store_for(self._kind or self._chosen or "dbfs", self.retry.request_timeout)

    def make_channel(self, params: PipesParams) -> PipesFileStoreMessageWriterChannel:
        """Build the channel for the directory in ``params["path"]``."""
        path = _path_param(params, type(self).__name__)
        kind = self._chosen = self._kind or _kind_of(params)
        return PipesFileStoreMessageWriterChannel(
            self.store_for(kind, self.retry.request_timeout),
            path,
            max_chunk_bytes=DBFS_READER_MAX_CHUNK_BYTES if kind == "dbfs" else None,
            **self.channel_options(),
        )

    def get_opened_extras(self) -> PipesExtras:
        """``{"cluster_driver_log_root": ...}`` for DBFS on a cluster with log delivery, else ``{}``."""
        root = cluster_driver_log_root() if (self._kind or self._chosen) == "dbfs" else None
        return {"cluster_driver_log_root": root} if root else {}


class PipesDbfsMessageWriter(_StoreMessageWriter):
    """Writes message chunks to DBFS (pairs with ``dagster_databricks.PipesDbfsMessageReader``).

    Chunks stay under 0.5 MB, which is all the stock reader can read per chunk. ``opened`` carries
    ``cluster_driver_log_root`` when a Databricks Spark session has cluster log delivery on.

    Args:
        interval: The reader's ``interval`` (uploads are paced to what it drains).
        client, dbutils, store: The storage backend (default: FUSE, notebook ``dbutils``, then
            ``WorkspaceClient()``). A given ``WorkspaceClient`` is not modified: requests go through
            a copy of its configuration whose requests time out and are not retried by the SDK.
        flush_timeout: Seconds ``close()`` may spend delivering what is left (default 60; after
            SIGTERM at most 20). When it runs out, the undelivered messages are counted on stderr.
        retry: How failed uploads are retried (a :class:`RetryPolicy`; transient errors only).
        on_message_loss: ``"raise"`` (default): if a materialization, asset check, custom message or
            ``closed`` could not be delivered, closing raises ``DagsterPipesMessageLossError`` so the
            job fails; ``"warn"``: stderr only. Lost log lines alone only warn.
        max_pending_bytes: Pending messages kept in memory during an outage (default 32 MiB); older
            ones spill to a temporary file, and past 1 GiB there the oldest log lines are dropped.
    """

    _kind: Kind | None = "dbfs"


class PipesUnityCatalogVolumesMessageWriter(_StoreMessageWriter):
    """Writes message chunks to a UC Volume (pairs with ``PipesUnityCatalogVolumesMessageReader``).

    Same arguments as :class:`PipesDbfsMessageWriter` (``interval``, ``client``/``dbutils``/``store``,
    ``flush_timeout``, ``retry``, ``on_message_loss``, ``max_pending_bytes``).
    """

    _kind: Kind | None = "volumes"


def cluster_driver_log_root() -> str | None:
    """``<log destination>/<cluster id>/driver`` if an active Spark session has log delivery on.

    Never imports pyspark itself and never raises (local runs, Spark Connect, non-Spark tasks).
    """
    if "pyspark" not in sys.modules:
        return None
    try:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            return None
        prefix = "spark.databricks.clusterUsageTags."
        enabled = spark.conf.get(prefix + "clusterLogDeliveryEnabled", "false")
        if str(enabled).strip().lower() != "true":
            return None
        dest = spark.conf.get(prefix + "clusterLogDestination", None)
        cluster_id = spark.conf.get(prefix + "clusterId", None)
        if not dest or not cluster_id:
            return None
        return f"{str(dest).rstrip('/')}/{cluster_id}/driver"
    except Exception:  # noqa: BLE001 - a missing conf must never break the job
        return None


class PipesDatabricksContextLoader(_StoreContextLoader):
    """Loads the context from DBFS or a UC Volume, whichever the orchestrator used (by its path).

    Lets one script run unchanged under ``PipesDatabricksClient`` (DBFS) and
    ``PipesDatabricksServerlessClient`` (Volumes). Takes the same ``client=``/``dbutils=``/``store=``
    and ``retry=``.
    """


class PipesDatabricksMessageWriter(_StoreMessageWriter):
    """Writes messages to DBFS or a UC Volume, whichever the orchestrator's reader uses (by its path).

    Same arguments as :class:`PipesDbfsMessageWriter`.
    """


# --- choosing a backend -----------------------------------------------------------------------

logger = logging.getLogger("dagster_pipes_spark")


def _workspace_client(request_timeout: float) -> Any:
    """``WorkspaceClient()`` from the environment (unified auth), built in bounded time: since 0.16x the
    SDK probes ``/.well-known/databricks-config`` while building its ``Config``, retried for
    ``retry_timeout_seconds`` (300 s by default) when the host does not answer. Our storage calls
    then go through a bounded copy of it (:func:`.sdk.bounded_client`)."""
    try:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.core import Config
    except ImportError as e:
        raise DagsterPipesError(
            "No way to reach Databricks storage here: no FUSE mount, no notebook `dbutils`, and "
            "databricks-sdk is not installed. Install `dagster-pipes-spark[databricks]`, or pass "
            "`client=WorkspaceClient(...)` or `dbutils=dbutils`."
        ) from e
    return WorkspaceClient(config=Config(http_timeout_seconds=request_timeout, retry_timeout_seconds=1))


def _dbutils_store(kind: Kind, dbutils: Any, request_timeout: float) -> FileStore:
    """A notebook's ``dbutils`` as it is; databricks-sdk's remote one (``WorkspaceClient().dbutils``,
    REST) through the SDK backend on its own configuration, so its requests are bounded like a
    client's (its ``fs`` would sit in the SDK's 300 s retry window)."""
    if is_remote_dbutils(dbutils):
        config = vars(dbutils).get("_config")  # not getattr: an unknown attribute builds a proxy
        if config is not None:
            from databricks.sdk import WorkspaceClient

            sdk_store = SdkDbfsFileStore if kind == "dbfs" else SdkVolumesFileStore
            return sdk_store(WorkspaceClient(config=config), request_timeout=request_timeout)
    return DbutilsFileStore(kind, dbutils)


def resolve_store(
    kind: Kind,
    *,
    client: Any = None,
    dbutils: Any = None,
    store: FileStore | None = None,
    request_timeout: float = DEFAULT_RETRY_POLICY.request_timeout,
) -> FileStore:
    """Pick the storage backend: explicit ``store``/``client``/``dbutils``, else FUSE, notebook
    ``dbutils``, then ``WorkspaceClient()`` from the environment (Databricks unified auth).
    ``request_timeout`` bounds each request of a databricks-sdk backend."""
    chosen: FileStore
    sdk_store = SdkDbfsFileStore if kind == "dbfs" else SdkVolumesFileStore
    if store is not None:
        chosen = store
    elif client is not None:
        chosen = sdk_store(client, request_timeout=request_timeout)
    elif dbutils is not None:
        chosen = _dbutils_store(kind, dbutils, request_timeout)
    elif FuseFileStore.available(kind):
        chosen = FuseFileStore(kind)
    else:
        nb = find_notebook_dbutils()
        if nb is not None and (is_remote_dbutils(nb) or getattr(nb, "fs", None) is not None):
            chosen = _dbutils_store(kind, nb, request_timeout)
        else:
            chosen = sdk_store(_workspace_client(request_timeout), request_timeout=request_timeout)
    logger.info("dagster-pipes-spark: %s storage via %s", kind, chosen.describe())
    return chosen
