"""How the Spark test jobs end: past pyspark 3.5's Connect client teardown.

pyspark 3.5's Connect client can hang forever at interpreter exit: ``SparkSession.__del__`` closes
the gRPC channel again while a daemon thread of its execution-release pool (frozen by the
interpreter's shutdown) holds the channel's lock (seen here as a job stuck in ``grpc._channel.close``
under ``session.__del__`` after its last line; pyspark 4 releases differently). A job calls
:func:`finish` after its Pipes context closed: everything is reported and flushed, so a 3.x Connect
client's process ends without that teardown. Other sessions exit normally.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def finish(spark: Any) -> None:
    """End the process now if ``spark`` is a pyspark 3.x Connect session (see the module docstring)."""
    import pyspark

    connect = type(spark).__module__.startswith("pyspark.sql.connect")
    if connect and pyspark.__version__.startswith("3."):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
