"""dagster-pipes-spark: the Spark- and Databricks-native external side of Dagster Pipes.

A drop-in for ``dagster_pipes`` (``import dagster_pipes_spark as dagster_pipes``): same public
names and signatures, plus DBFS / UC Volumes transports that work without FUSE, an automatic
params loader, termination safety, and Spark write hooks (``dagster_pipes_spark.spark``).
"""

from typing import TYPE_CHECKING, Any

from ._channels import (
    PipesBufferedStreamMessageWriterChannel,
    PipesFileMessageWriterChannel,
    PipesMessageWriterChannel,
    PipesStreamMessageWriterChannel,
)
from ._context import PipesContext, open_dagster_pipes
from ._context_loaders import PipesContextLoader, PipesDefaultContextLoader
from ._encoding import decode_env_var, decode_param, encode_env_var, encode_param
from ._errors import (
    DagsterPipesError,
    DagsterPipesMessageLossError,
    DagsterPipesTerminated,
    DagsterPipesWarning,
)
from ._params import (
    PipesAutoParamsLoader,
    PipesCliArgsParamsLoader,
    PipesDatabricksNotebookWidgetsParamsLoader,
    PipesEnvVarParamsLoader,
    PipesMappingParamsLoader,
    PipesParamsLoader,
)
from ._protocol import (
    DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT,
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_CONTEXT_WIDGET_KEY,
    DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_WIDGET_KEY,
    ESCAPE_CHARACTER,
    PIPES_METADATA_TYPE_INFER,
    PIPES_PROTOCOL_VERSION,
    PIPES_PROTOCOL_VERSION_FIELD,
    Method,
    PipesAssetCheckSeverity,
    PipesContextData,
    PipesDataProvenance,
    PipesException,
    PipesExtras,
    PipesLogWriterOpenedData,
    PipesMessage,
    PipesMetadataRawValue,
    PipesMetadataType,
    PipesMetadataValue,
    PipesOpenedData,
    PipesParams,
    PipesPartitionKeyRange,
    PipesTimeWindow,
    to_asset_key_path,
)
from ._writers import (
    PipesDefaultMessageWriter,
    PipesMessageWriter,
    PipesPrefectLogsMessageWriter,
    PipesPrefectLogsMessageWriterChannel,
    T_MessageChannel,
)
from .version import __version__

if TYPE_CHECKING:
    from ._log_capture import (
        ExcThread,
        PipesDefaultLogWriter,
        PipesDefaultLogWriterChannel,
        PipesLogWriter,
        PipesLogWriterChannel,
        PipesStdioFileLogWriter,
        PipesStdioFileLogWriterChannel,
        PipesStdioLogWriter,
        PipesStdioLogWriterChannel,
        T_LogChannel,
    )
    from ._transports.blob import (
        PipesBlobStoreMessageWriter,
        PipesBlobStoreMessageWriterChannel,
        PipesBufferedFilesystemMessageWriterChannel,
        T_BlobStoreMessageWriterChannel,
    )
    from ._transports.databricks import (
        PipesDatabricksContextLoader,
        PipesDatabricksMessageWriter,
        PipesDbfsContextLoader,
        PipesDbfsMessageWriter,
        PipesFileStoreMessageWriterChannel,
        PipesUnityCatalogVolumesContextLoader,
        PipesUnityCatalogVolumesMessageWriter,
    )
    from ._transports.dbutils import DbutilsFileStore
    from ._transports.errors import PermanentStorageError, StorageNotFoundError, TransientStorageError
    from ._transports.file_store import FileStore
    from ._transports.fuse import FuseFileStore
    from ._transports.memory import MemoryFileStore
    from ._transports.object_stores import (
        PipesAzureBlobStorageContextLoader,
        PipesAzureBlobStorageMessageWriter,
        PipesAzureBlobStorageMessageWriterChannel,
        PipesGCSContextLoader,
        PipesGCSMessageWriter,
        PipesGCSMessageWriterChannel,
        PipesS3ContextLoader,
        PipesS3MessageWriter,
        PipesS3MessageWriterChannel,
    )
    from ._transports.options import DeliveryOptions
    from ._transports.retry import RetryPolicy
    from ._transports.sdk import SdkDbfsFileStore, SdkVolumesFileStore
    from ._transports.sinks import ChunkSink

# Transports and capture are imported on first use (PEP 562), keeping `import` as cheap as stock.
_LAZY: dict[str, str] = {
    "DeliveryOptions": "_transports.options",
    "ChunkSink": "_transports.sinks",
    "TransientStorageError": "_transports.errors",
    "PermanentStorageError": "_transports.errors",
    "StorageNotFoundError": "_transports.errors",
    "PipesBlobStoreMessageWriter": "_transports.blob",
    "PipesBlobStoreMessageWriterChannel": "_transports.blob",
    "PipesBufferedFilesystemMessageWriterChannel": "_transports.blob",
    "T_BlobStoreMessageWriterChannel": "_transports.blob",
    "PipesAzureBlobStorageContextLoader": "_transports.object_stores",
    "PipesAzureBlobStorageMessageWriter": "_transports.object_stores",
    "PipesAzureBlobStorageMessageWriterChannel": "_transports.object_stores",
    "PipesGCSContextLoader": "_transports.object_stores",
    "PipesGCSMessageWriter": "_transports.object_stores",
    "PipesGCSMessageWriterChannel": "_transports.object_stores",
    "PipesS3ContextLoader": "_transports.object_stores",
    "PipesS3MessageWriter": "_transports.object_stores",
    "PipesS3MessageWriterChannel": "_transports.object_stores",
    "PipesDatabricksContextLoader": "_transports.databricks",
    "PipesDatabricksMessageWriter": "_transports.databricks",
    "PipesDbfsContextLoader": "_transports.databricks",
    "PipesDbfsMessageWriter": "_transports.databricks",
    "PipesFileStoreMessageWriterChannel": "_transports.databricks",
    "PipesUnityCatalogVolumesContextLoader": "_transports.databricks",
    "PipesUnityCatalogVolumesMessageWriter": "_transports.databricks",
    "ExcThread": "_log_capture",
    "PipesDefaultLogWriter": "_log_capture",
    "PipesDefaultLogWriterChannel": "_log_capture",
    "PipesLogWriter": "_log_capture",
    "PipesLogWriterChannel": "_log_capture",
    "PipesStdioFileLogWriter": "_log_capture",
    "PipesStdioFileLogWriterChannel": "_log_capture",
    "PipesStdioLogWriter": "_log_capture",
    "PipesStdioLogWriterChannel": "_log_capture",
    "T_LogChannel": "_log_capture",
    "DbutilsFileStore": "_transports.dbutils",
    "FileStore": "_transports.file_store",
    "FuseFileStore": "_transports.fuse",
    "MemoryFileStore": "_transports.memory",
    "SdkDbfsFileStore": "_transports.sdk",
    "SdkVolumesFileStore": "_transports.sdk",
    "RetryPolicy": "_transports.retry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    if name == "DAGSTER_PIPES_CLI_PARSER":  # built lazily (argparse is not needed to run)
        from . import _params

        return _params.DAGSTER_PIPES_CLI_PARSER
    raise AttributeError(f"module 'dagster_pipes_spark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"DAGSTER_PIPES_CLI_PARSER"})


__all__ = [
    "DAGSTER_PIPES_CLI_PARSER",
    "DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT",
    "DAGSTER_PIPES_CONTEXT_ENV_VAR",
    "DAGSTER_PIPES_CONTEXT_WIDGET_KEY",
    "DAGSTER_PIPES_MESSAGES_CLI_ARGUMENT",
    "DAGSTER_PIPES_MESSAGES_ENV_VAR",
    "DAGSTER_PIPES_MESSAGES_WIDGET_KEY",
    "ESCAPE_CHARACTER",
    "PIPES_METADATA_TYPE_INFER",
    "PIPES_PROTOCOL_VERSION",
    "PIPES_PROTOCOL_VERSION_FIELD",
    "ChunkSink",
    "DagsterPipesError",
    "DagsterPipesMessageLossError",
    "DagsterPipesTerminated",
    "DagsterPipesWarning",
    "DbutilsFileStore",
    "DeliveryOptions",
    "ExcThread",
    "FileStore",
    "FuseFileStore",
    "MemoryFileStore",
    "Method",
    "PermanentStorageError",
    "PipesAssetCheckSeverity",
    "PipesAutoParamsLoader",
    "PipesAzureBlobStorageContextLoader",
    "PipesAzureBlobStorageMessageWriter",
    "PipesAzureBlobStorageMessageWriterChannel",
    "PipesBlobStoreMessageWriter",
    "PipesBlobStoreMessageWriterChannel",
    "PipesBufferedFilesystemMessageWriterChannel",
    "PipesBufferedStreamMessageWriterChannel",
    "PipesCliArgsParamsLoader",
    "PipesContext",
    "PipesContextData",
    "PipesContextLoader",
    "PipesDataProvenance",
    "PipesDatabricksContextLoader",
    "PipesDatabricksMessageWriter",
    "PipesDatabricksNotebookWidgetsParamsLoader",
    "PipesDbfsContextLoader",
    "PipesDbfsMessageWriter",
    "PipesDefaultContextLoader",
    "PipesDefaultLogWriter",
    "PipesDefaultLogWriterChannel",
    "PipesDefaultMessageWriter",
    "PipesEnvVarParamsLoader",
    "PipesException",
    "PipesExtras",
    "PipesFileMessageWriterChannel",
    "PipesFileStoreMessageWriterChannel",
    "PipesGCSContextLoader",
    "PipesGCSMessageWriter",
    "PipesGCSMessageWriterChannel",
    "PipesLogWriter",
    "PipesLogWriterChannel",
    "PipesLogWriterOpenedData",
    "PipesMappingParamsLoader",
    "PipesMessage",
    "PipesMessageWriter",
    "PipesMessageWriterChannel",
    "PipesMetadataRawValue",
    "PipesMetadataType",
    "PipesMetadataValue",
    "PipesOpenedData",
    "PipesParams",
    "PipesParamsLoader",
    "PipesPartitionKeyRange",
    "PipesPrefectLogsMessageWriter",
    "PipesPrefectLogsMessageWriterChannel",
    "PipesS3ContextLoader",
    "PipesS3MessageWriter",
    "PipesS3MessageWriterChannel",
    "PipesStdioFileLogWriter",
    "PipesStdioFileLogWriterChannel",
    "PipesStdioLogWriter",
    "PipesStdioLogWriterChannel",
    "PipesStreamMessageWriterChannel",
    "PipesTimeWindow",
    "PipesUnityCatalogVolumesContextLoader",
    "PipesUnityCatalogVolumesMessageWriter",
    "RetryPolicy",
    "SdkDbfsFileStore",
    "SdkVolumesFileStore",
    "StorageNotFoundError",
    "T_BlobStoreMessageWriterChannel",
    "T_LogChannel",
    "T_MessageChannel",
    "TransientStorageError",
    "__version__",
    "decode_env_var",
    "decode_param",
    "encode_env_var",
    "encode_param",
    "open_dagster_pipes",
    "to_asset_key_path",
]
