"""Transports: how messages and contexts travel between the external process and Dagster.

* :mod:`.blob` — the chunked ("blob store") message channel and writer base, composed with a
  :mod:`.sinks` ``ChunkSink`` (where chunks go; a subclass's ``upload_messages_chunk`` is wrapped in
  an ``UploadMethodSink``); every object store and workspace file store writes through it.
* :mod:`.delivery` — delivering chunks to a sink at the reader's pace (flush, retry, loss); its
  settings are one :mod:`.options` ``DeliveryOptions``; :mod:`.pending` its bounded queue.
* :mod:`.object_stores` — S3, GCS and Azure Blob loaders and sinks (one small class each).
* :mod:`.errors` — the package's own storage errors; every backend translates into them.
* :mod:`.databricks` — DBFS and Unity Catalog Volumes loaders and writers over a :class:`FileStore`.
* :mod:`.file_store` — the ``FileStore`` interface; :mod:`.fuse`, :mod:`.dbutils`, :mod:`.sdk` and
  :mod:`.memory` implement it, one backend per module.
* :mod:`.retry` — the one retry policy every storage operation goes through (classification of
  the package's storage errors, backoff, deadlines).

Nothing outside this package imports a backend directly: the public names are re-exported lazily by
``dagster_pipes_spark/__init__.py``.
"""
