"""Cloud object stores (S3, GCS, Azure Blob): context loaders and chunked message writers.

Each store only says how to read one object (a loader) and how to put one chunk (a
:class:`~.sinks.ChunkSink`), and translates its library's errors into the package's own
(:mod:`.errors`): botocore's ``ClientError`` by the HTTP status in its response (and its
``Retry-After`` header), Google's API errors by their ``code``, Azure's by their ``status_code``.
The params handling (``bucket`` + ``key`` for contexts, ``bucket`` + optional ``key_prefix`` for
messages) is shared.

One retry layer: the channel's or loader's :class:`~.retry.RetryPolicy` retries whole operations, so
each request goes out once. boto3 clients are used through a copy of the given client (same
credentials object, region, endpoint and configuration) with retries off and the policy's request
timeout; GCS and Azure calls pass ``retry=None`` / ``retry_total=0`` and a timeout per call. The
client the user passed is never changed.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from .._context_loaders import PipesContextLoader, parse_downloaded_context
from .._errors import DagsterPipesError
from .._protocol import PipesContextData, PipesParams
from .blob import PipesBlobStoreMessageWriter, PipesBlobStoreMessageWriterChannel
from .errors import (
    StorageCallError,
    error_chain,
    http_status,
    kind_for_status,
    seconds,
    storage_error,
    translate_common,
    translating,
)
from .options import DeliveryOptions
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy, call_or_explain

logger = logging.getLogger("dagster_pipes_spark")


def single_attempt_boto3_client(client: Any, request_timeout: float) -> Any:
    """A boto3 / botocore client like ``client`` whose requests are attempted once and time out after
    ``request_timeout`` seconds (connect and read). It shares ``client``'s credentials object (so
    refreshable credentials keep refreshing), region, custom endpoint and configuration. Returns
    ``client`` itself when it is not a botocore client (our deadlines still bound its calls)."""
    meta = getattr(client, "meta", None)
    get_credentials = getattr(client, "_get_credentials", None)
    if meta is None or not callable(get_credentials) or not hasattr(meta, "service_model"):
        return client
    try:
        import botocore.session
        from botocore.config import Config

        session = botocore.session.Session()
        session._credentials = get_credentials()  # the same object: no credential lookup, no copy
        resolver = getattr(client, "_ruleset_resolver", None)
        builtins = getattr(resolver, "_builtins", None)
        custom_endpoint = builtins.get("SDK::Endpoint") if isinstance(builtins, dict) else meta.endpoint_url
        http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        config = meta.config.merge(
            Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=request_timeout,
                read_timeout=request_timeout,
            )
        )
        return session.create_client(
            meta.service_model.service_name,
            region_name=meta.region_name,
            endpoint_url=custom_endpoint,
            verify=getattr(http, "_verify", None),
            config=config,
        )
    except Exception as e:  # noqa: BLE001 - an unusual client still works, bounded from outside
        logger.debug("dagster-pipes-spark: using the given S3 client as is (%r)", e)
        return client


def _client_as_is(client: Any, request_timeout: float) -> Any:
    """The given client, used as it is (its calls pass ``retry``/timeout options per call)."""
    return client


def translate_boto3_error(exc: BaseException) -> StorageCallError:
    """botocore's ``ClientError``: the HTTP status and ``Retry-After`` of its parsed response;
    anything else (connection and read-timeout errors, decoding) by the common conventions."""
    for e in error_chain(exc):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            meta = response.get("ResponseMetadata") or {}
            status = http_status(meta.get("HTTPStatusCode"))
            if status is not None:
                headers = meta.get("HTTPHeaders") or {}
                wait = seconds(headers.get("retry-after") if isinstance(headers, dict) else None)
                return storage_error(kind_for_status(status), e, status=status, retry_after=wait)
    return translate_common(exc)


def translate_gcs_error(exc: BaseException) -> StorageCallError:
    """google-api-core's errors carry the HTTP status as ``code``."""
    for e in error_chain(exc):
        status = http_status(getattr(e, "code", None))
        if status is not None:
            return storage_error(kind_for_status(status), e, status=status)
    return translate_common(exc)


def translate_azure_error(exc: BaseException) -> StorageCallError:
    """azure-core's ``HttpResponseError`` carries ``status_code`` and the response's headers."""
    for e in error_chain(exc):
        status = http_status(getattr(e, "status_code", None))
        if status is not None:
            headers: Any = getattr(getattr(e, "response", None), "headers", None)
            wait = seconds(headers.get("Retry-After")) if hasattr(headers, "get") else None
            return storage_error(kind_for_status(status), e, status=status, retry_after=wait)
    return translate_common(exc)


def _required_str(params: PipesParams, key: str, owner: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise DagsterPipesError(
            f"Invalid params for {owner}: expected a string `{key}`, received {dict(params)}. "
            "Is the orchestrator using the matching injector/reader?"
        )
    return value


class _ObjectStoreContextLoader(PipesContextLoader):
    _scheme: ClassVar[str]

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """The package's storage error for what this store's library raised."""
        return translate_common(exc)

    def __init__(self, client: Any, *, retry: RetryPolicy | None = None):
        self.retry = retry or DEFAULT_RETRY_POLICY
        self._client = self._single_attempt(client, self.retry.request_timeout)

    #: the client requests go through (see the module docstring): S3 makes a single-attempt copy
    _single_attempt = staticmethod(_client_as_is)

    @abstractmethod
    def _read(self, bucket: str, key: str) -> bytes: ...

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Yield the context object at ``bucket``/``key``."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        key = _required_str(params, "key", type(self).__name__)
        where = f"{self._scheme}://{bucket}/{key}"

        def read() -> PipesContextData:
            with translating(self.translate_error):
                raw = self._read(bucket, key)
            return parse_downloaded_context(raw, where)

        yield call_or_explain(self.retry, read, f"read the Pipes context {where}")


class _ObjectSink:
    """Chunks as objects ``{key_prefix}/{index}.json`` of one bucket (one attempt per chunk)."""

    _scheme: ClassVar[str]

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """The package's storage error for what this store's library raised."""
        return translate_common(exc)

    def __init__(self, client: Any, bucket: str, key_prefix: str | None, request_timeout: float) -> None:
        self.client = client
        self.bucket = bucket
        self.key_prefix = key_prefix
        self.request_timeout = request_timeout
        self.destination = f"{self._scheme}://{bucket}/{key_prefix or ''}"

    def key(self, index: int) -> str:
        """The object key of chunk ``index``."""
        return f"{self.key_prefix}/{index}.json" if self.key_prefix else f"{index}.json"

    def put_chunk(self, index: int, data: bytes) -> None:
        """Upload chunk ``index`` (its errors translated into the package's)."""
        with translating(self.translate_error):
            self._put(self.key(index), data)

    @abstractmethod
    def _put(self, key: str, data: bytes) -> None: ...


class _ObjectStoreChannel(PipesBlobStoreMessageWriterChannel):
    _sink_type: ClassVar[type[_ObjectSink]]
    #: the client requests go through (see the module docstring): S3 makes a single-attempt copy
    _single_attempt = staticmethod(_client_as_is)

    def __init__(
        self,
        client: Any,
        bucket: str,
        key_prefix: str | None,
        *,
        interval: float | None = None,
        delivery: DeliveryOptions | None = None,
        **settings: Any,
    ):
        delivery = DeliveryOptions.of(delivery, interval=interval, **settings)
        timeout = delivery.retry.request_timeout
        sink = self._sink_type(self._single_attempt(client, timeout), bucket, key_prefix, timeout)
        super().__init__(sink=sink, delivery=delivery)


class _ObjectStoreMessageWriter(PipesBlobStoreMessageWriter[Any]):
    _channel: ClassVar[type[_ObjectStoreChannel]]

    def __init__(self, client: Any, *, interval: float = 10, **options: Any):
        super().__init__(interval=interval, **options)
        self._client = client

    def make_channel(self, params: PipesParams) -> Any:
        """Build the channel from ``bucket`` and the optional ``key_prefix``."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        return self._channel(self._client, bucket, params.get("key_prefix"), **self.channel_options())


# ----------------------------------------------------------------------------------------- S3


class PipesS3ContextLoader(_ObjectStoreContextLoader):
    """Loads the context from S3 (``bucket`` + ``key``) with a boto3 S3 client."""

    _scheme = "s3"
    _single_attempt = staticmethod(single_attempt_boto3_client)

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_boto3_error`."""
        return translate_boto3_error(exc)

    def _read(self, bucket: str, key: str) -> bytes:
        return bytes(self._client.get_object(Bucket=bucket, Key=key)["Body"].read())


class S3Sink(_ObjectSink):
    """Chunks as S3 objects (a PUT is atomic)."""

    _scheme = "s3"

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_boto3_error`."""
        return translate_boto3_error(exc)

    def _put(self, key: str, data: bytes) -> None:
        self.client.put_object(Body=data, Bucket=self.bucket, Key=key)


class PipesS3MessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``s3://{bucket}/{key_prefix}/{index}.json`` (an :class:`S3Sink`)."""

    _sink_type = S3Sink
    _single_attempt = staticmethod(single_attempt_boto3_client)


class PipesS3MessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to S3 (pairs with dagster-aws ``PipesS3MessageReader``)."""

    _channel = PipesS3MessageWriterChannel


# ----------------------------------------------------------------------------------------- GCS


class PipesGCSContextLoader(_ObjectStoreContextLoader):
    """Loads the context from Google Cloud Storage (``bucket`` + ``key``)."""

    _scheme = "gs"

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_gcs_error`."""
        return translate_gcs_error(exc)

    def _read(self, bucket: str, key: str) -> bytes:
        blob = self._client.bucket(bucket).blob(key)
        return bytes(blob.download_as_bytes(retry=None, timeout=self.retry.request_timeout))


class GCSSink(_ObjectSink):
    """Chunks as Google Cloud Storage blobs (no client-side retry, a timeout per request)."""

    _scheme = "gs"

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_gcs_error`."""
        return translate_gcs_error(exc)

    def _put(self, key: str, data: bytes) -> None:
        self.client.bucket(self.bucket).blob(key).upload_from_string(
            data, retry=None, timeout=self.request_timeout
        )


class PipesGCSMessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``gs://{bucket}/{key_prefix}/{index}.json`` (a :class:`GCSSink`)."""

    _sink_type = GCSSink


class PipesGCSMessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to GCS (pairs with dagster-gcp ``PipesGCSMessageReader``)."""

    _channel = PipesGCSMessageWriterChannel


# ----------------------------------------------------------------------------------------- Azure


class PipesAzureBlobStorageContextLoader(_ObjectStoreContextLoader):
    """Loads the context from Azure Blob Storage (``bucket`` is the container, ``key`` the blob)."""

    _scheme = "azure"

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_azure_error`."""
        return translate_azure_error(exc)

    def _read(self, bucket: str, key: str) -> bytes:
        blob = self._client.get_blob_client(bucket, key)
        return bytes(blob.download_blob(retry_total=0, timeout=self.retry.request_timeout).readall())


class AzureSink(_ObjectSink):
    """Chunks as Azure blobs (``bucket`` is the container; no client-side retry)."""

    _scheme = "azure"

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_azure_error`."""
        return translate_azure_error(exc)

    def _put(self, key: str, data: bytes) -> None:
        self.client.get_blob_client(self.bucket, key).upload_blob(
            data, overwrite=True, retry_total=0, timeout=self.request_timeout
        )


class PipesAzureBlobStorageMessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``{container}/{key_prefix}/{index}.json`` (an :class:`AzureSink`)."""

    _sink_type = AzureSink


class PipesAzureBlobStorageMessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to Azure Blob Storage (pairs with dagster-azure's reader)."""

    _channel = PipesAzureBlobStorageMessageWriterChannel
