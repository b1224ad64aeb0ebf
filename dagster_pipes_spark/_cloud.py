"""Cloud object stores (S3, GCS, Azure Blob): context loaders and chunked message writers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from ._blob import PipesBlobStoreMessageWriter, PipesBlobStoreMessageWriterChannel
from ._context_loaders import PipesContextLoader, parse_context
from ._errors import DagsterPipesError
from ._protocol import PipesContextData, PipesParams


def _required_str(params: PipesParams, key: str, owner: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise DagsterPipesError(
            f"Invalid params for {owner}: expected a string `{key}`, received {dict(params)}. "
            "Is the orchestrator using the matching injector/reader?"
        )
    return value


def _chunk_key(key_prefix: str | None, index: int) -> str:
    return f"{key_prefix}/{index}.json" if key_prefix else f"{index}.json"


def _payload_bytes(payload: IO) -> bytes:
    data = payload.read()
    return data.encode("utf-8") if isinstance(data, str) else data


class PipesS3ContextLoader(PipesContextLoader):
    """Loads the context from S3 (``bucket`` + ``key``) with a boto3 S3 client."""

    def __init__(self, client: Any):
        self._client = client

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Yield the context object read from S3."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        key = _required_str(params, "key", type(self).__name__)
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:
            raise DagsterPipesError(f"Cannot read the Pipes context s3://{bucket}/{key}: {e}") from e
        yield parse_context(body, f"s3://{bucket}/{key}")


class PipesS3MessageWriterChannel(PipesBlobStoreMessageWriterChannel):
    """Uploads chunks to ``s3://{bucket}/{key_prefix}/{index}.json``."""

    def __init__(self, client: Any, bucket: str, key_prefix: str | None, *, interval: float = 10):
        super().__init__(interval=interval)
        self._client = client
        self._bucket = bucket
        self._key_prefix = key_prefix

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """PUT one chunk object (S3 PUTs are atomic)."""
        self._client.put_object(Body=_payload_bytes(payload), Bucket=self._bucket, Key=_chunk_key(self._key_prefix, index))


class PipesS3MessageWriter(PipesBlobStoreMessageWriter[PipesS3MessageWriterChannel]):
    """Writes message chunks to S3 (pairs with dagster-aws ``PipesS3MessageReader``)."""

    def __init__(self, client: Any, *, interval: float = 10):
        super().__init__(interval=interval)
        self._client = client

    def make_channel(self, params: PipesParams) -> PipesS3MessageWriterChannel:
        """Build the S3 channel from ``bucket``/``key_prefix``."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        key_prefix = params.get("key_prefix")
        return PipesS3MessageWriterChannel(self._client, bucket, key_prefix, interval=self.interval)


class PipesGCSContextLoader(PipesContextLoader):
    """Loads the context from Google Cloud Storage (``bucket`` + ``key``)."""

    def __init__(self, client: Any):
        self._client = client

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Yield the context blob read from GCS."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        key = _required_str(params, "key", type(self).__name__)
        data = self._client.get_bucket(bucket).blob(key).download_as_bytes()
        yield parse_context(data, f"gs://{bucket}/{key}")


class PipesGCSMessageWriterChannel(PipesBlobStoreMessageWriterChannel):
    """Uploads chunks to ``gs://{bucket}/{key_prefix}/{index}.json``."""

    def __init__(self, client: Any, bucket: str, key_prefix: str | None, *, interval: float = 10):
        super().__init__(interval=interval)
        self._bucket = client.get_bucket(bucket)
        self._key_prefix = key_prefix

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk blob."""
        self._bucket.blob(_chunk_key(self._key_prefix, index)).upload_from_string(_payload_bytes(payload))


class PipesGCSMessageWriter(PipesBlobStoreMessageWriter[PipesGCSMessageWriterChannel]):
    """Writes message chunks to GCS (pairs with dagster-gcp ``PipesGCSMessageReader``)."""

    def __init__(self, client: Any, *, interval: float = 10):
        super().__init__(interval=interval)
        self._client = client

    def make_channel(self, params: PipesParams) -> PipesGCSMessageWriterChannel:
        """Build the GCS channel."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        return PipesGCSMessageWriterChannel(self._client, bucket, params.get("key_prefix"), interval=self.interval)


class PipesAzureBlobStorageContextLoader(PipesContextLoader):
    """Loads the context from Azure Blob Storage (``bucket`` is the container, ``key`` the blob)."""

    def __init__(self, client: Any):
        self._client = client

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Yield the context blob read from Azure."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        key = _required_str(params, "key", type(self).__name__)
        data = self._client.get_blob_client(bucket, key).download_blob().readall()
        yield parse_context(data, f"azure://{bucket}/{key}")


class PipesAzureBlobStorageMessageWriterChannel(PipesBlobStoreMessageWriterChannel):
    """Uploads chunks to ``{container}/{key_prefix}/{index}.json``."""

    def __init__(self, client: Any, bucket: str, key_prefix: str | None, *, interval: float = 10):
        super().__init__(interval=interval)
        self._client = client
        self._bucket = bucket
        self._key_prefix = key_prefix

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk blob."""
        blob = self._client.get_blob_client(self._bucket, _chunk_key(self._key_prefix, index))
        blob.upload_blob(_payload_bytes(payload), overwrite=True)


class PipesAzureBlobStorageMessageWriter(PipesBlobStoreMessageWriter[PipesAzureBlobStorageMessageWriterChannel]):
    """Writes message chunks to Azure Blob Storage (pairs with dagster-azure's reader)."""

    def __init__(self, client: Any, *, interval: float = 10):
        super().__init__(interval=interval)
        self._client = client

    def make_channel(self, params: PipesParams) -> PipesAzureBlobStorageMessageWriterChannel:
        """Build the Azure channel."""
        bucket = _required_str(params, "bucket", type(self).__name__)
        return PipesAzureBlobStorageMessageWriterChannel(
            self._client, bucket, params.get("key_prefix"), interval=self.interval
        )
