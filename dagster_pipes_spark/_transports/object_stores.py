"""Cloud object stores (S3, GCS, Azure Blob): context loaders and chunked message writers.

Each store only says how to read one object and how to upload one chunk; the params handling
(``bucket`` + ``key`` for contexts, ``bucket`` + optional ``key_prefix`` for messages) is shared.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, ClassVar

from .._context_loaders import PipesContextLoader, parse_context
from .._errors import DagsterPipesError
from .._protocol import PipesContextData, PipesParams
from .blob import DEFAULT_FLUSH_TIMEOUT, PipesBlobStoreMessageWriter, PipesBlobStoreMessageWriterChannel
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy


def _required_str(params: PipesParams, key: str, owner: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise DagsterPipesError(
            f"Invalid params for {owner}: expected a string `{key}`, received {dict(params)}. "
            "Is the orchestrator using the matching injector/reader?"
        )
    return value


def _payload_bytes(payload: IO) -> bytes:
    data = payload.read()
    return data.encode("utf-8") if isinstance(data, str) else data


class _ObjectStoreContextLoader(PipesContextLoader):
    _scheme: ClassVar[str]

    def __init__(self, client: Any, *, retry: RetryPolicy | None = None):
        self._client = client
        self.retry = retry or DEFAULT_RETRY_POLICY

    @abstractmethod
    def _read(self, bucket: str, key: str) -> bytes: ...

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Yield the context object at ``bucket``/``key``."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        key = _required_str(params, "key", type(self).__name__)
        where = f"{self._scheme}://{bucket}/{key}"
        try:
            data = self.retry.call(lambda: self._read(bucket, key), f"read the context {where}")
        except Exception as e:
            raise DagsterPipesError(f"Cannot read the Pipes context {where}: {e}") from e
        yield parse_context(data, where)


class _ObjectStoreChannel(PipesBlobStoreMessageWriterChannel):
    _scheme: ClassVar[str]

    def __init__(
        self,
        client: Any,
        bucket: str,
        key_prefix: str | None,
        *,
        interval: float = 10,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        retry: RetryPolicy | None = None,
    ):
        super().__init__(interval=interval, flush_timeout=flush_timeout, retry=retry)
        self._client = client
        self._bucket = bucket
        self._key_prefix = key_prefix

    def _key(self, index: int) -> str:
        return f"{self._key_prefix}/{index}.json" if self._key_prefix else f"{index}.json"

    def destination(self) -> str:
        """``scheme://bucket/prefix``."""
        return f"{self._scheme}://{self._bucket}/{self._key_prefix or ''}"


class _ObjectStoreMessageWriter(PipesBlobStoreMessageWriter[Any]):
    _channel: ClassVar[type[_ObjectStoreChannel]]

    def __init__(
        self,
        client: Any,
        *,
        interval: float = 10,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        retry: RetryPolicy | None = None,
    ):
        super().__init__(interval=interval, flush_timeout=flush_timeout, retry=retry)
        self._client = client

    def make_channel(self, params: PipesParams) -> Any:
        """Build the channel from ``bucket`` and the optional ``key_prefix``."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        return self._channel(
            self._client,
            bucket,
            params.get("key_prefix"),
            interval=self.interval,
            flush_timeout=self.flush_timeout,
            retry=self.retry,
        )


# ----------------------------------------------------------------------------------------- S3


class PipesS3ContextLoader(_ObjectStoreContextLoader):
    """Loads the context from S3 (``bucket`` + ``key``) with a boto3 S3 client."""

    _scheme = "s3"

    def _read(self, bucket: str, key: str) -> bytes:
        return bytes(self._client.get_object(Bucket=bucket, Key=key)["Body"].read())


class PipesS3MessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``s3://{bucket}/{key_prefix}/{index}.json`` (S3 PUTs are atomic)."""

    _scheme = "s3"

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """PUT one chunk object."""
        self._client.put_object(Body=_payload_bytes(payload), Bucket=self._bucket, Key=self._key(index))


class PipesS3MessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to S3 (pairs with dagster-aws ``PipesS3MessageReader``)."""

    _channel = PipesS3MessageWriterChannel


# ----------------------------------------------------------------------------------------- GCS


class PipesGCSContextLoader(_ObjectStoreContextLoader):
    """Loads the context from Google Cloud Storage (``bucket`` + ``key``)."""

    _scheme = "gs"

    def _read(self, bucket: str, key: str) -> bytes:
        return bytes(self._client.get_bucket(bucket).blob(key).download_as_bytes())


class PipesGCSMessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``gs://{bucket}/{key_prefix}/{index}.json``."""

    _scheme = "gs"

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk blob."""
        self._client.get_bucket(self._bucket).blob(self._key(index)).upload_from_string(
            _payload_bytes(payload)
        )


class PipesGCSMessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to GCS (pairs with dagster-gcp ``PipesGCSMessageReader``)."""

    _channel = PipesGCSMessageWriterChannel


# ----------------------------------------------------------------------------------------- Azure


class PipesAzureBlobStorageContextLoader(_ObjectStoreContextLoader):
    """Loads the context from Azure Blob Storage (``bucket`` is the container, ``key`` the blob)."""

    _scheme = "azure"

    def _read(self, bucket: str, key: str) -> bytes:
        return bytes(self._client.get_blob_client(bucket, key).download_blob().readall())


class PipesAzureBlobStorageMessageWriterChannel(_ObjectStoreChannel):
    """Uploads chunks to ``{container}/{key_prefix}/{index}.json``."""

    _scheme = "azure"

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk blob."""
        self._client.get_blob_client(self._bucket, self._key(index)).upload_blob(
            _payload_bytes(payload), overwrite=True
        )


class PipesAzureBlobStorageMessageWriter(_ObjectStoreMessageWriter):
    """Writes message chunks to Azure Blob Storage (pairs with dagster-azure's reader)."""

    _channel = PipesAzureBlobStorageMessageWriterChannel
