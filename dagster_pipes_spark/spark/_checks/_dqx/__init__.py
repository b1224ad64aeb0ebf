"""Databricks Labs DQX 0.17 rules with DQX's own meaning: each core check function as Spark SQL
(``_row_functions``, ``_dataset_functions``; the shapes they build in ``_logic``, DQX's patterns and
ISO code lists in ``_patterns`` / ``iso/``, column strings and limits in ``_sql``), a rule as a check
of this project (``_rule``), and rules read from a checks file (``_loading``)."""

from dagster_pipes_spark.spark._checks._dqx._loading import load_rules, supported_functions
from dagster_pipes_spark.spark._checks._dqx._rule import DqxRule

__all__ = ["DqxRule", "load_rules", "supported_functions"]
