"""Transports: how messages and contexts travel between the external process and Dagster.

* :mod:`.blob` — the chunked ("blob store") message channel, paced to what the orchestrator's
  readers drain; every object store and workspace file store writes through it.
* :mod:`.object_stores` — S3, GCS and Azure Blob loaders and writers (one small store class each).
* :mod:`.databricks` — DBFS and Unity Catalog Volumes loaders and writers over a :class:`FileStore`.
* :mod:`.file_store` — the ``FileStore`` interface; :mod:`.fuse`, :mod:`.dbutils`, :mod:`.sdk` and
  :mod:`.memory` implement it, one backend per module.
* :mod:`.retry` — the one retry policy every storage operation goes through (classification of
  failures, backoff, deadlines).

Nothing outside this package imports a backend directly: the public names are re-exported lazily by
``dagster_pipes_spark/__init__.py``.
"""
