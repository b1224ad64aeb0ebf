"""The write commands: one registry of the plan nodes that write data, read by every consumer.

A write shows up in an analysed plan as a command node whose name says what it does. This module is
the only list of those names; every consumer reads it:

* the classic mechanism (``_classic.write_from_plan``) reads each command's target through the
  handler it keeps for the command's name (Spark's own commands) or through the command's
  :class:`~dagster_pipes_spark.spark._delta.DeltaCommandSpec` (Delta's);
* column lineage (``_lineage``) looks through a write command to the query it writes
  (:func:`carries_query`);
* maintenance commands (``OPTIMIZE`` / ``VACUUM`` / ``REORG``) are recognised to be logged and not
  reported (:func:`maintenance_command`).

Spark's own commands are matched by exact name; a table format's commands also by name prefix, so
Databricks' suffixed variants (``MergeIntoCommandEdge`` ...) are covered. The format-specific fields
(accessor chains) stay with the format (``_delta``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster_pipes_spark.spark._delta import DELTA_COMMANDS, MAINTENANCE_COMMANDS, DeltaCommandSpec


@dataclass(frozen=True)
class WriteCommand:
    """A plan node that writes data."""

    name: str
    #: the accessor chains of a table format's command (``None``: one of Spark's own, read by the
    #: mechanism's handler for its name)
    delta: DeltaCommandSpec | None = None

    @property
    def operation(self) -> str | None:
        """What a table format's command does (``OP_*``); Spark's own commands say it through their
        handler (insert or overwrite by mode, CTAS, ...)."""
        return self.delta.operation if self.delta is not None else None


#: Spark's own write commands (``org.apache.spark.sql.execution.command`` / ``datasources``, Hive's,
#: and the V2 logical writes, row-level ones included), by node name.
SPARK_COMMANDS: dict[str, WriteCommand] = {
    name: WriteCommand(name)
    for name in (
        "InsertIntoHadoopFsRelationCommand",
        "CreateDataSourceTableAsSelectCommand",
        "SaveIntoDataSourceCommand",
        "InsertIntoDataSourceCommand",
        "CreateHiveTableAsSelectCommand",
        "OptimizedCreateHiveTableAsSelectCommand",
        "InsertIntoHiveTable",
        "InsertIntoDataSourceDirCommand",
        "InsertIntoHiveDirCommand",
        "AppendData",
        "OverwriteByExpression",
        "OverwritePartitionsDynamic",
        "CreateTableAsSelect",
        "ReplaceTableAsSelect",
        "ReplaceData",
        "WriteDelta",
        "DeleteFromTable",
        "UpdateTable",
        "MergeIntoTable",
    )
}

#: Delta Lake's write commands, by node name (prefix).
FORMAT_COMMANDS: dict[str, WriteCommand] = {
    name: WriteCommand(name, delta=spec) for name, spec in DELTA_COMMANDS.items()
}

#: Every write command, by node name.
COMMANDS: dict[str, WriteCommand] = {**SPARK_COMMANDS, **FORMAT_COMMANDS}


def write_command(node_name: str) -> WriteCommand | None:
    """The write command a plan node is, or ``None`` for any other node."""
    command = COMMANDS.get(node_name)
    if command is not None:
        return command
    for prefix, candidate in FORMAT_COMMANDS.items():
        if node_name.startswith(prefix):
            return candidate
    return None


def maintenance_command(node_name: str) -> str | None:
    """``OPTIMIZE`` / ``VACUUM`` / ``REORG`` for a table maintenance command node, else ``None``:
    it rewrites files, not the table's rows, so it is no materialization."""
    for prefix, statement in MAINTENANCE_COMMANDS.items():
        if node_name.startswith(prefix):
            return statement
    return None


def carries_query(node_name: str) -> bool:
    """Whether a node is a command whose last child is the query it runs: every write command, and
    Spark's other ``...Command`` nodes (lineage looks through them to that query)."""
    return node_name.endswith("Command") or write_command(node_name) is not None


__all__ = [
    "COMMANDS",
    "FORMAT_COMMANDS",
    "SPARK_COMMANDS",
    "WriteCommand",
    "carries_query",
    "maintenance_command",
    "write_command",
]
