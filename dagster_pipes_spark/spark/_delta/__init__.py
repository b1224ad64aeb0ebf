"""Delta Lake specifics for the Spark write hooks, kept apart so they can be checked on a workspace.

What lives here and nowhere else:

* how Delta shows up in Spark plans: the simple class names of Delta's write commands (open-source
  ``org.apache.spark.sql.delta.commands.*`` and Databricks' ``com.databricks.sql.transaction.tahoe``
  variants, some of which carry an ``Edge`` suffix), of its V2 table, its data source and its file
  indexes, with the accessor chains that lead from each command to its target table or path;
* how ``DESCRIBE HISTORY`` rows look (the ``DeltaHistory`` case class: ``version``, ``timestamp``,
  ``userId``, ``userName``, ``operation``, ``operationParameters``, ``job``, ``notebook``,
  ``clusterId``, ``readVersion``, ``isolationLevel``, ``isBlindAppend``, ``operationMetrics``,
  ``userMetadata``, ``engineInfo``) and what the per-operation metric names mean
  (``DeltaOperationMetrics``: ``numOutputRows``, ``numFiles``, ``numOutputBytes`` for writes;
  ``numTargetRows*`` for ``MERGE``; ``numUpdatedRows`` / ``numDeletedRows`` for ``UPDATE`` /
  ``DELETE``; ``numAddedFiles`` / ``numAddedBytes``). Metric values are strings in the history;
* which commits are ours: while a hook block is open, the session's Delta commits carry a per-block
  tag in ``userMetadata`` (``spark.databricks.delta.commitInfo.userMetadata``), so a concurrent
  writer's commits (another thread's session, another process) are never taken for ours;
* which Delta commands are maintenance (``OPTIMIZE``, ``VACUUM``, ``REORG``): no materialization;
* where the commits are read on exit: the commit files of every Delta target with a known location
  in one JSON scan of their ``_delta_log`` directories; ``DESCRIBE HISTORY`` (one job per table)
  where that cannot serve a target.

One concept per module: ``_plans`` (how Delta shows up in plans), ``_tags`` (which commits are
ours), ``_history`` (history rows and what they give a write), ``_log`` (the commits read from
the transaction logs), ``_lookups`` (the look-ups on exit).
Nothing here imports pyspark.
"""

from dagster_pipes_spark.spark._delta._history import (
    DeltaCommit,
    apply_commit,
    apply_operation_metrics,
    commit_matches,
    history_sql,
    match_commits,
    parse_history_row,
)
from dagster_pipes_spark.spark._delta._log import log_key, read_commit_logs
from dagster_pipes_spark.spark._delta._lookups import enrich_from_delta_history
from dagster_pipes_spark.spark._delta._plans import (
    DELTA_COMMANDS,
    DELTA_DATA_SOURCE_CLASSES,
    DELTA_FILE_INDEX_PREFIXES,
    DELTA_PROVIDER,
    DELTA_TABLE_CLASSES,
    MAINTENANCE_COMMANDS,
    MERGE_BUILDER_CLASS,
    MERGE_BUILDER_MODULE,
    MERGE_BUILDER_TARGET_CLASS,
    REPLACE_WHERE_OPTION,
    DeltaCommandSpec,
    is_delta_class_name,
    is_delta_provider,
    maintenance_note,
    maintenance_statement,
)
from dagster_pipes_spark.spark._delta._tags import COMMIT_TAG_CONF, TAG_PREFIX, CommitTagger, new_commit_tag

__all__ = [
    "COMMIT_TAG_CONF",
    "DELTA_COMMANDS",
    "DELTA_DATA_SOURCE_CLASSES",
    "DELTA_FILE_INDEX_PREFIXES",
    "DELTA_PROVIDER",
    "DELTA_TABLE_CLASSES",
    "MAINTENANCE_COMMANDS",
    "MERGE_BUILDER_CLASS",
    "MERGE_BUILDER_MODULE",
    "MERGE_BUILDER_TARGET_CLASS",
    "REPLACE_WHERE_OPTION",
    "TAG_PREFIX",
    "CommitTagger",
    "DeltaCommandSpec",
    "DeltaCommit",
    "apply_commit",
    "apply_operation_metrics",
    "commit_matches",
    "enrich_from_delta_history",
    "history_sql",
    "is_delta_class_name",
    "is_delta_provider",
    "log_key",
    "maintenance_note",
    "maintenance_statement",
    "match_commits",
    "new_commit_tag",
    "parse_history_row",
    "read_commit_logs",
]
