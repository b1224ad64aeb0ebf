"""TPC-H at a tiny scale, for tests and benchmarks: a seeded pure-Python generator of the eight
tables (:func:`generate`, :func:`create_tables`) and the 22 queries as Spark SQL (:data:`QUERIES`;
:data:`WORKLOAD` adds window and set-operation queries TPC-H lacks).

Nothing here imports pyspark or dagster: :func:`create_tables` takes the session it writes with.
"""

from ._data import SCHEMAS, TABLES, Scale, TpchData, create_tables, generate
from ._queries import EXTRA_QUERIES, QUERIES, WORKLOAD

__all__ = [
    "EXTRA_QUERIES",
    "QUERIES",
    "SCHEMAS",
    "TABLES",
    "WORKLOAD",
    "Scale",
    "TpchData",
    "create_tables",
    "generate",
]
