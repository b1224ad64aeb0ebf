"""Cloud object stores (S3, GCS, Azure Blob): context loaders and chunked message writers.

Each store only says how to read one object and how to upload one chunk; the params handling
(``bucket`` + ``key`` for contexts, ``bucket`` + optional ``key_prefix`` for messages) is shared.

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
from typing import IO, Any, ClassVar

from .._context_loaders import PipesContextLoader, parse_downloaded_context
from .._errors import DagsterPipesError
from .._protocol import PipesContextData, PipesParams
from .blob import PipesBlobStoreMessageWriter, PipesBlobStoreMessageWriterChannel, payload_bytes
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
        data = call_or_explain(
            self.retry,
            lambda: parse_downloaded_context(self._read(bucket, key), where),
            f"read the Pipes context {where}",
        )
        yield data


class _ObjectStoreChannel(PipesBlobStoreMessageWriterChannel):
    _scheme: ClassVar[str]

    def __init__(
        self, client: Any, bucket: str, key_prefix: str | None, *, interval: float = 10, **options: Any
    ):
        super().__init__(interval=interval, **options)
        self._client = self._single_attempt(client, self.retry.request_timeout)
        self._bucket = bucket
        self._key_prefix = key_prefix

    #: the client requests go through (see the module docstring): S3 makes a single-attempt copy
    _single_attempt = staticmethod(_client_as_is)

    def _key(self, index: int) -> str:
        return f"{self._key_prefix}/{index}.json" if self._key_prefix else f"{index}.json"

    def destination(self) -> str:
        """``scheme://bucket/prefix``."""
        return f"{self._scheme}://{self._bucket}/{self._key_prefix or ''}"


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

    def _read(self, bucket: str, key: str) -> bytes:
        return bytes(self._client.get_object(Bucket=bucket, Key=key)["Body"].read())


class PipesS3MessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``s3://{bucket}/{key_prefix}/{index}.json`` (S3 PUTs are atomic)."""

    _scheme = "s3"
    _single_attempt = staticmethod(single_attempt_boto3_client)

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """PUT one chunk object."""
        self._client.put_object(Body=payload_bytes(payload), Bucket=self._bucket, Key=self._key(index))


class PipesS3MessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to S3 (pairs with dagster-aws ``PipesS3MessageReader``)."""

    _channel = PipesS3MessageWriterChannel


# ----------------------------------------------------------------------------------------- GCS


class PipesGCSContextLoader(_ObjectStoreContextLoader):
    """Loads the context from Google Cloud Storage (``bucket`` + ``key``)."""

    _scheme = "gs"

    def _read(self, bucket: str, key: str) -> bytes:
        blob = self._client.bucket(bucket).blob(key)
        return bytes(blob.download_as_bytes(retry=None, timeout=self.retry.request_timeout))


class PipesGCSMessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``gs://{bucket}/{key_prefix}/{index}.json``."""

    _scheme = "gs"

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk blob."""
        self._client.bucket(self._bucket).blob(self._key(index)).upload_from_string(
            payload_bytes(payload), retry=None, timeout=self.retry.request_timeout
        )


class PipesGCSMessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to GCS (pairs with dagster-gcp ``PipesGCSMessageReader``)."""

    _channel = PipesGCSMessageWriterChannel


# ----------------------------------------------------------------------------------------- Azure


class PipesAzureBlobStorageContextLoader(_ObjectStoreContextLoader):
    """Loads the context from Azure Blob Storage (``bucket`` is the container, ``key`` the blob)."""

    _scheme = "azure"

    def _read(self, bucket: str, key: str) -> bytes:
        blob = self._client.get_blob_client(bucket, key)
        return bytes(blob.download_blob(retry_total=0, timeout=self.retry.request_timeout).readall())


class PipesAzureBlobStorageMessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``{container}/{key_prefix}/{index}.json``."""

    _scheme = "azure"

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk blob."""
        self._client.get_blob_client(self._bucket, self._key(index)).upload_blob(
            payload_bytes(payload), overwrite=True, retry_total=0, timeout=self.retry.request_timeout
        )


class PipesAzureBlobStorageMessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to Azure Blob Storage (pairs with dagster-azure's reader)."""

    _channel = PipesAzureBlobStorageMessageWriterChannel
