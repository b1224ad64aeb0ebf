"""Data checks: their definitions (``_definitions``: the constructors, validation, the SQL each adds
to the shared aggregation, results; ``_kinds``: the kinds beyond the basic ones), checks kept in
files (``_files``), and their evaluation in one Spark action (``_evaluation``). The public names are
exported by ``dagster_pipes_spark.spark``."""
