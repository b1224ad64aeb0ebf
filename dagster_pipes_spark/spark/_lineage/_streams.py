"""Structured Streaming sources in printed plans: the markers and multi-line catalog tables of a
streamed plan's text, and the rules of its source nodes."""

from __future__ import annotations

import re
from collections.abc import Sequence

from dagster_pipes_spark.spark._lineage._expressions import arguments, closing
from dagster_pipes_spark.spark._lineage._nodes import table_columns
from dagster_pipes_spark.spark._lineage._tree import (
    CLOSE,
    OPEN,
    Node,
    UnreadableError,
    attributes,
    split_items,
)
from dagster_pipes_spark.spark._lineage._walker import NONE, NodeHandler, Output, Scope, Walker
from dagster_pipes_spark.spark._lineage_types import LineageSource
from dagster_pipes_spark.spark._targets import normalize_path, split_identifier

#: streaming sources whose rows the source makes up itself: no dataset, so no source column
_GENERATED_STREAMS = frozenset({"rate", "rate-micro-batch", "socket", "memory"})
#: how the running sources of those print (``StreamingExecutionRelation`` / ``...V2ScanRelation``)
_GENERATED_STREAM_PREFIXES = ("RateStream", "RatePerMicroBatch", "TextSocket", "MemoryStream")
#: a streamed node is printed ``~Project ...`` (``isStreaming``)
_STREAMING_MARK = re.compile(r"^((?::  |   )*(?:\+- |:- )?)~", re.MULTILINE)
_QUOTED_IDENTIFIER = re.compile(r"`(?:[^`]|``)*`(?:\.`(?:[^`]|``)*`)*")
_PLAN_LINE = (":  ", "   ", "+- ", ":- ")


def _quoted(parts: Sequence[str]) -> str:
    return ".".join("`" + part.replace("`", "``") + "`" for part in parts)


def streaming_text(text: str) -> str:
    """A streamed plan's text printed like the others: without the ``~`` marking streamed nodes, and
    with the catalog table a ``StreamingRelation`` prints over several lines (``...,Some(CatalogTable(
    \\nCatalog: c\\nDatabase: d\\nTable: t\\n...)), delta, [...]``) as its name, on the node's line:
    ``CatalogTable(`c`.`d`.`t`)``. Text it cannot rewrite with certainty is left as it is (and does
    not parse)."""
    if "~" in text:
        text = _STREAMING_MARK.sub(r"\1", text)
    if "StreamingRelation DataSource(" not in text or "CatalogTable(\n" not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "StreamingRelation DataSource(" not in line or not line.endswith("CatalogTable("):
            out.append(line)
            continue
        depth, rest = 1, None
        fields: dict[str, str] = {}
        for j in range(i, len(lines)):
            body = lines[j]
            if body.startswith(_PLAN_LINE):
                break  # a plan line before the table's end: not a catalog table's text
            for k, ch in enumerate(body):
                depth += 1 if ch in OPEN else -1 if ch in CLOSE else 0
                if depth == 0:
                    rest, body = body[k + 1 :], body[:k]
                    break
            key, sep, value = body.partition(": ")
            if sep and key in ("Catalog", "Database", "Table"):
                fields.setdefault(key, value.strip())
            if rest is not None:
                i = j + 1
                break
        if rest is None or "Table" not in fields:
            return text
        parts = [fields[k] for k in ("Catalog", "Database", "Table") if k in fields]
        out.append(f"{line}{_quoted(parts)}){rest}")
    return "\n".join(out)


def _datasource_path(datasource: str) -> str | None:
    """The ``path`` option of a printed ``DataSource(session,class,paths,schema,partitionColumns,
    bucketSpec,options,catalogTable)``, when its options read unambiguously."""
    if not (datasource.startswith("DataSource(") and datasource.endswith(")")):
        return None
    spans = arguments(datasource, len("DataSource"))
    if len(spans) != 8:
        return None
    options = datasource[slice(*spans[6])]
    match = re.fullmatch(r"\w*Map\((.*)\)", options, re.DOTALL)
    if match is None:
        return None
    found = None
    for entry in split_items(match.group(1)):
        key, sep, value = entry.partition(" -> ")
        if not sep:
            return None  # a value holding ", ": the entries cannot be told apart
        if key.lower() == "path":
            found = value
    return found


def _generated(columns: list[tuple[str, int]]) -> Output:
    return [(expr_id, name, NONE) for name, expr_id in columns]


def _streaming_relation(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # StreamingRelation DataSource(<session>,json,List(),Some(<schema>),List(),None,Map(path -> /p),None),
    #   FileSource[/p], [a#1, b#2]
    # a table: DataSource(...,Some(CatalogTable(`c`.`d`.`t`))), delta, [...] (see streaming_text)
    items = split_items(node.content[len("StreamingRelation ") :])
    if len(items) != 3 or not (items[2].startswith("[") and items[2].endswith("]")):
        raise UnreadableError("StreamingRelation without columns")
    datasource, name = items[0], items[1]
    columns = attributes(items[2][1:-1])
    table = re.search(r",Some\(CatalogTable\((" + _QUOTED_IDENTIFIER.pattern + r")\)\)\)$", datasource)
    if table is not None:
        return table_columns(LineageSource(table=tuple(split_identifier(table.group(1)))), columns)
    if name.startswith("FileSource[") and name.endswith("]"):
        return table_columns(LineageSource(path=normalize_path(name[len("FileSource[") : -1])), columns)
    path = _datasource_path(datasource)
    if path:
        return table_columns(LineageSource(path=normalize_path(path)), columns)
    if name.lower() in _GENERATED_STREAMS:
        return _generated(columns)
    return table_columns(None, columns)


def _streaming_relation_v2(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # StreamingRelationV2 <provider>@1, rate, <table>@2, [rowsPerSecond=5], [timestamp#1, value#2L]
    # (rate, socket, Kafka, ...; the provider is left out when there is none)
    items = split_items(node.content[len("StreamingRelationV2 ") :])
    first = 1 if items and re.fullmatch(r"[\w.$]+@[0-9a-f]+", items[0]) else 0
    columns = None
    for item in items[first + 1 :]:
        if item.startswith("[") and item.endswith("]"):
            try:
                found = attributes(item[1:-1])
            except UnreadableError:
                continue  # the options: [key=value, ...]
            if found and not any("=" in name for name, _ in found):
                columns = found
                break
    if columns is None or len(items) <= first:
        raise UnreadableError("StreamingRelationV2 without columns")
    if items[first].lower() in _GENERATED_STREAMS:
        return _generated(columns)
    return table_columns(None, columns)


def _streaming_execution_relation(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # a started query's source: StreamingExecutionRelation FileStreamSource[file:/p], [a#1, b#2]
    # / DeltaSource[file:/p], [a#1], `spark_catalog`.`default`.`t` / MemoryStream[a#1], [a#1]
    items = split_items(node.content[len("StreamingExecutionRelation ") :])
    if len(items) < 2 or not (items[1].startswith("[") and items[1].endswith("]")):
        raise UnreadableError("StreamingExecutionRelation without columns")
    source, columns = items[0], attributes(items[1][1:-1])
    if len(items) == 3 and _QUOTED_IDENTIFIER.fullmatch(items[2]):
        return table_columns(LineageSource(table=tuple(split_identifier(items[2]))), columns)
    for kind in ("FileStreamSource[", "DeltaSource["):
        if source.startswith(kind) and source.endswith("]"):
            return table_columns(LineageSource(path=normalize_path(source[len(kind) : -1])), columns)
    if source.startswith(_GENERATED_STREAM_PREFIXES):
        return _generated(columns)
    return table_columns(None, columns)


def _streaming_scan_relation(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # a started V2 source: StreamingDataSourceV2ScanRelation[a#1, b#2] RateStream(rowsPerSecond=5, ...)
    opened = len(node.name)
    if not node.content.startswith("[", opened):
        raise UnreadableError(f"{node.name} without columns")
    closed = closing(node.content, opened)
    columns = attributes(node.content[opened + 1 : closed])
    if node.content[closed + 1 :].strip().startswith(_GENERATED_STREAM_PREFIXES):
        return _generated(columns)
    return table_columns(None, columns)


#: The rule of each streamed source node, by node name.
STREAMING_NODES: dict[str, NodeHandler] = {
    "StreamingRelation": _streaming_relation,
    "StreamingRelationV2": _streaming_relation_v2,
    "StreamingExecutionRelation": _streaming_execution_relation,
    "StreamingDataSourceV2Relation": _streaming_scan_relation,
    "StreamingDataSourceV2ScanRelation": _streaming_scan_relation,
}
