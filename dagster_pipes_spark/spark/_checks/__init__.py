"""Data checks, one concept per module: what a check is (``_model``: the data's columns, the base
classes, a check's compiled SQL and verdict), the kinds (``_basic``: ``expect``, ``not_null``,
``accepted_values``, ``unique``, ``row_count``, ``fresh``, ``has_columns``; ``_kinds``: ``in_range``,
``matches``, ``relationships``, ``expect_aggregate``), the checks mapping and results (``_results``),
checks kept in files (``_files``), and their evaluation in one Spark action: analysis before any job
(``_analysis``), the run (``_run``), reporting (``_reporting``) and the entry points
(``_evaluation``). The public names are exported by ``dagster_pipes_spark.spark``."""
