"""Other data joined into the checked data before the one aggregation (analysis only, no job):
the distinct keys a ``relationships`` check or a DQX ``foreign_key`` looks values up in (a marker
column, TRUE where found), and the query of a DQX ``sql_query`` / ``has_no_gaps_per_time_window``
(its condition per key, or its one row for every row)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._checks._analysis import columns_of, error_message, explain_error
from dagster_pipes_spark.spark._checks._groups import sql_column
from dagster_pipes_spark.spark._checks._model import Columns, Compiled, in_scope

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")
#: the error a query without keys raises when it has several rows (DQX's condition)
MANY_ROWS = (
    "Dataset-level sql_query without merge_columns must return exactly one row. Provide merge_columns"
    " for row-level checks or aggregate the query to a single row."
)


def broadcasts(df: DataFrame) -> bool:
    """Whether the session broadcasts small join sides (``spark.sql.autoBroadcastJoinThreshold``
    not negative): then the keys looked up are broadcast whatever their estimate."""
    try:
        value = df.sparkSession.conf.get("spark.sql.autoBroadcastJoinThreshold")
    except Exception:
        return True
    return not str(value or "").strip().startswith("-")


def _other(df: DataFrame, to: Any) -> tuple[DataFrame, Columns, str]:
    """The other data, its columns and how messages name it."""
    if isinstance(to, str):
        what = f"`to` table {to}"
        try:
            target = df.sparkSession.table(to)
            return (
                target,
                Columns(tuple((f.name, f.dataType.simpleString()) for f in target.schema.fields)),
                what,
            )
        except Exception as exc:
            raise DagsterPipesError(f"cannot read the {what}: {error_message(exc)}") from None
    what = "`to` DataFrame"
    return to, columns_of(to, what), what


def join_lookup(df: DataFrame, data: DataFrame, c: Compiled, columns: Columns, broadcast: bool) -> DataFrame:
    """``data`` with the marker column of ``c``'s lookup: TRUE where the row's key is among the
    distinct keys of the other data (its parts cast to the data's types; or, ``whole``, compared as
    one struct value with NULL parts equal), else NULL."""
    lookup = c.ref
    assert lookup is not None
    marker = lookup.marker
    keys = [f"{marker}_k{j}" for j in range(len(lookup.pairs))]
    try:
        typed = df.selectExpr(*[f"{sql} AS {key}" for (sql, _), key in zip(lookup.pairs, keys, strict=True)])
        kinds = [f.dataType.simpleString() for f in typed.schema.fields]
    except Exception as exc:
        raise DagsterPipesError(explain_error(exc, columns)) from None
    target, target_columns, what = _other(df, lookup.to)
    refs = []
    for (_, field), kind in zip(lookup.pairs, kinds, strict=True):
        source = target_columns.find(field)
        if source is None:
            raise DagsterPipesError(
                f"the {what} has no column {field!r}; its columns: {target_columns.described()}"
            )
        ref = target_columns.ref(field)
        refs.append(ref if source[1] == kind or lookup.whole else f"try_cast({ref} AS {kind})")
    if lookup.whole:  # one struct value, as DQX compares a composite key
        ours = ", ".join(f"'k{j}', {sql}" for j, (sql, _) in enumerate(lookup.pairs))
        theirs = ", ".join(f"'k{j}', {ref}" for j, ref in enumerate(refs))
        keys = keys[:1]
        values = [f"named_struct({ours}) AS {keys[0]}"]
        selected = [f"named_struct({theirs}) AS {keys[0]}"]
    else:
        values = [f"{sql} AS {key}" for (sql, _), key in zip(lookup.pairs, keys, strict=True)]
        selected = [f"{ref} AS {key}" for ref, key in zip(refs, keys, strict=True)]
    try:
        found = target.selectExpr(*selected)
        _ = found.schema  # analysis only (Connect analyzes lazily)
    except Exception as exc:
        fields = ", ".join(repr(field) for _, field in lookup.pairs)
        raise DagsterPipesError(f"cannot read {fields} of the {what}: {error_message(exc)}") from None
    found = found.where(" AND ".join(f"{key} IS NOT NULL" for key in keys)).distinct()
    if len(keys) > 1 or lookup.whole or kinds[0] != "string":
        found = found.selectExpr("*", f"TRUE AS {marker}")
        if broadcast:  # the keys of a dimension are few: the data is never shuffled for the join
            found = found.hint("broadcast")
        return data.selectExpr("*", *values).join(found, on=keys, how="left")
    # one string key: joined on its 64-bit hash, a probe several times cheaper per row than one on
    # the string (Spark's join on a single long key); the keys sharing a hash are compared
    [key] = keys
    hashed, matched = f"{key}_hash", f"{key}_matched"
    found = (
        found.selectExpr(f"xxhash64({key}) AS {hashed}", key)
        .groupBy(hashed)
        .agg({key: "collect_list"})
        .toDF(hashed, matched)
    )
    if broadcast:
        found = found.hint("broadcast")
    return (
        data.selectExpr("*", *values, f"xxhash64({key}) AS {hashed}")
        .join(found, on=hashed, how="left")
        .selectExpr("*", f"IF(array_contains({matched}, {key}), TRUE, NULL) AS {marker}")
        .drop(hashed, matched)
    )


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def join_query(df: DataFrame, data: DataFrame, c: Compiled, dataframes: Mapping[str, Any]) -> DataFrame:
    """``data`` with the columns of ``c``'s query: ``<marker>`` its condition (the ``max`` per key),
    ``<marker>_<column>`` its other columns (the first per key) and its key columns, matched on the
    keys NULL-safely;
    a query without keys is one row for every row (none: FALSE; several: an error when run)."""
    q = c.query
    assert q is not None
    marker = f"__pipes_{c.index}_query"
    run = uuid.uuid4().hex[:12]
    views: dict[str, str] = {}
    source = df.where(in_scope(q.data_filter)) if q.data_filter else df
    views[q.placeholder] = f"__pipes_dqx_{run}_input"
    source.createOrReplaceTempView(views[q.placeholder])
    for name, frame in dataframes.items():
        if re.search(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", q.query):
            views[name] = f"__pipes_dqx_{run}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"
            frame.createOrReplaceTempView(views[name])
    text = _PLACEHOLDER.sub(lambda m: views.get(m.group(0).strip("{} \t"), m.group(0)), q.query)
    result = df.sparkSession.sql(text)
    condition = _quoted(q.condition)
    others = [n for n in result.columns if n != q.condition and n not in q.key_columns]
    if not q.keys:
        one = result.selectExpr(
            f"CASE WHEN count(1) = 0 THEN FALSE WHEN count(1) = 1 THEN first({condition})"
            f" ELSE raise_error('{MANY_ROWS}') END AS {marker}",
            *[f"first({_quoted(n)}) AS {marker}_{n}" for n in others],
        )
        return data.crossJoin(one)
    right = [f"{marker}_r{j}" for j in range(len(q.keys))]
    aggs = [sql_column(result, f"max({condition})").alias(marker)]
    aggs += [sql_column(result, f"first({_quoted(n)})").alias(f"{marker}_{n}") for n in others]
    grouped = result.groupBy(
        *[sql_column(result, _quoted(k)).alias(r) for k, r in zip(q.key_columns, right, strict=True)]
    ).agg(*aggs)
    left = [f"{marker}_l{j}" for j in range(len(q.keys))]
    keyed = data.selectExpr("*", *[f"({k}) AS {n}" for k, n in zip(q.keys, left, strict=True)])
    on = " AND ".join(f"{a} <=> {b}" for a, b in zip(left, right, strict=True))
    joined = keyed.join(grouped, on=sql_column(data, on), how="left")
    # the key columns too, by name, for the messages that show them (the right side's: NULL unmatched)
    shown = [f"{r} AS {marker}_{k}" for k, r in zip(q.key_columns, right, strict=True)]
    return joined.selectExpr("*", *shown).drop(*left, *right)
