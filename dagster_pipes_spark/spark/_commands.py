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
from typing import Literal

from dagster_pipes_spark.spark._delta import DELTA_COMMANDS, MAINTENANCE_COMMANDS, DeltaCommandSpec
from dagster_pipes_spark.spark._record import (
    OP_CTAS,
    OP_DELETE,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_UPDATE,
    OP_WRITE,
)

#: How a command names its target: a V1 file or data-source relation, a Hive table, a directory,
#: a V2 catalog table (``DataSourceV2Relation``), a V2 row-level operation, or a table format's own.
Family = Literal["v1", "hive", "directory", "v2", "row-level", "delta"]


@dataclass(frozen=True)
class WriteCommand:
    """A plan node that writes data."""

    name: str
    #: what it does (``OP_*``); ``None`` when the node itself says (``ReplaceData``, ``WriteDelta``,
    #: a save that inserts or overwrites by its mode)
    operation: str | None
    family: Family
    #: the accessor chains of a table format's command
    delta: DeltaCommandSpec | None = None


def _spark(name: str, operation: str | None, family: Family) -> tuple[str, WriteCommand]:
    return name, WriteCommand(name, operation, family)


#: Spark's own write commands (``org.apache.spark.sql.execution.command`` / ``datasources``, Hive's,
#: and the V2 logical writes), by node name.
SPARK_COMMANDS: dict[str, WriteCommand] = dict(
    [
        _spark("InsertIntoHadoopFsRelationCommand", None, "v1"),
        _spark("CreateDataSourceTableAsSelectCommand", OP_CTAS, "v1"),
        _spark("SaveIntoDataSourceCommand", OP_WRITE, "v1"),
        _spark("InsertIntoDataSourceCommand", None, "v1"),
        _spark("CreateHiveTableAsSelectCommand", OP_CTAS, "hive"),
        _spark("OptimizedCreateHiveTableAsSelectCommand", OP_CTAS, "hive"),
        _spark("InsertIntoHiveTable", None, "hive"),
        _spark("InsertIntoDataSourceDirCommand", OP_WRITE, "directory"),
        _spark("InsertIntoHiveDirCommand", OP_WRITE, "directory"),
        _spark("AppendData", OP_INSERT, "v2"),
        _spark("OverwriteByExpression", OP_INSERT_OVERWRITE, "v2"),
        _spark("OverwritePartitionsDynamic", OP_INSERT_OVERWRITE, "v2"),
        _spark("CreateTableAsSelect", OP_CTAS, "v2"),
        _spark("ReplaceTableAsSelect", OP_RTAS, "v2"),
        _spark("ReplaceData", None, "row-level"),
        _spark("WriteDelta", None, "row-level"),
        _spark("DeleteFromTable", OP_DELETE, "row-level"),
        _spark("UpdateTable", OP_UPDATE, "row-level"),
        _spark("MergeIntoTable", OP_MERGE, "row-level"),
    ]
)

#: Delta Lake's write commands, by node name (prefix).
FORMAT_COMMANDS: dict[str, WriteCommand] = {
    name: WriteCommand(name, spec.operation, "delta", delta=spec) for name, spec in DELTA_COMMANDS.items()
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
    "Family",
    "WriteCommand",
    "carries_query",
    "maintenance_command",
    "write_command",
]
