"""Test shim: `import dagster_pipes` in an external process resolves to dagster_pipes_spark.

Put this directory first on PYTHONPATH of the external process (never of the orchestrator).
"""

import sys

import dagster_pipes_spark

sys.modules["dagster_pipes"] = dagster_pipes_spark
