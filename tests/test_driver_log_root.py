"""`opened` carries cluster_driver_log_root when a Databricks Spark session has log delivery on; never fails."""

import json
import subprocess
import sys

from _helpers import external_env

SCRIPT = r"""
import json, sys
from pyspark.sql import SparkSession
import dagster_pipes_spark as dps
from dagster_pipes_spark import FuseFileStore, PipesDbfsMessageWriter

root = sys.argv[1]
writer = PipesDbfsMessageWriter(store=FuseFileStore("dbfs", root=root))
results = {"no_session": writer.get_opened_extras()}
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
results["plain_session"] = writer.get_opened_extras()
tag = "spark.databricks.clusterUsageTags."
spark.conf.set(tag + "clusterLogDeliveryEnabled", "false")
spark.conf.set(tag + "clusterLogDestination", "dbfs:/cluster-logs")
spark.conf.set(tag + "clusterId", "0101-abc")
results["delivery_false"] = writer.get_opened_extras()
spark.conf.set(tag + "clusterLogDeliveryEnabled", "true")
results["delivery_true"] = writer.get_opened_extras()
spark.conf.unset(tag + "clusterId")
results["missing_id"] = writer.get_opened_extras()
print(json.dumps(results))
"""


def test_cluster_driver_log_root(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**__import__("os").environ, **external_env()},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results == {
        "no_session": {},
        "plain_session": {},
        "delivery_false": {},
        "delivery_true": {"cluster_driver_log_root": "dbfs:/cluster-logs/0101-abc/driver"},
        "missing_id": {},
    }
