"""Data checks, one concept per module: what a check is (``_model``: the data's columns, the base
classes, a check's compiled SQL, its ``where=`` scope and verdict), the kinds by concept
(``_row_conditions``: ``expect``, ``not_null``, ``accepted_values``, ``in_range``, ``matches``;
``_key_checks``: ``unique``, ``relationships``; ``_table_checks``: ``row_count``, ``fresh``,
``expect_aggregate``, ``has_columns``; ``_basic`` / ``_kinds`` keep the former import paths), the
checks mapping and results (``_results``), checks kept in files (``_files``), and their evaluation in
one Spark action: analysis before any job (``_analysis``), the run (``_run``), reporting
(``_reporting``) and the entry points (``_evaluation``). The public names are exported by
``dagster_pipes_spark.spark``."""
