"""Other data joined into the checked data before the one aggregation (analysis only, no job):
the distinct keys a ``relationships`` check or a DQX ``foreign_key`` looks values up in (a marker
column, TRUE where found), the query of a DQX ``sql_query`` / ``has_no_gaps_per_time_window``
(its condition per key, or its one row for every row), and the reference rows a DQX
``compare_datasets`` pairs with the data's (its verdict and message per row)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._checks._analysis import columns_of, error_message, explain_error
from dagster_pipes_spark.spark._checks._groups import sql_column
from dagster_pipes_spark.spark._checks._model import Columns, Compiled, in_scope
from dagster_pipes_spark.spark._sql import string_literal

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


# --- a DQX compare_datasets: each row paired with a row of the reference data --------------------


def _key_sql(name: str) -> str:
    """A key column as ``F.col`` reads its name (a dotted path, unless quoted)."""
    return name if "`" in name else ".".join(_quoted(part) for part in name.split("."))


def _number(value: float | int) -> str:
    """A tolerance as the literal ``F.lit`` makes of it (a DOUBLE for a float)."""
    return str(value) if isinstance(value, int) else f"CAST({float(value)!r} AS DOUBLE)"


def _changed(a: str, b: str, numeric: bool, q: Any) -> str:
    """SQL TRUE when the data's value ``a`` differs from the reference's ``b``, as DQX compares them."""
    if numeric and (q.abs_tolerance > 0 or q.rel_tolerance > 0):
        diff = f"abs({a} - {b})"
        within = (
            f"({diff} <= {_number(q.abs_tolerance)} OR"
            f" {diff} <= {_number(q.rel_tolerance)} * greatest(abs({a}), abs({b})))"
        )
        if q.null_safe_values:
            return f"NOT (({a} IS NULL AND {b} IS NULL) OR (NOT ({a} IS NULL OR {b} IS NULL) AND {within}))"
        return f"NOT (({a} IS NULL OR {b} IS NULL) OR {within})"
    return f"NOT ({a} <=> {b})" if q.null_safe_values else f"{a} != {b}"


def join_compare(df: DataFrame, data: DataFrame, c: Compiled, to: Any) -> DataFrame:
    """``data`` with ``<marker>`` (TRUE where the row has no partner in the reference data or a
    compared value differs) and ``<marker>_message`` (DQX's JSON of the differences) of ``c``'s
    comparison (a ``CompareLogic``), every row of ``data`` kept once.

    The compared columns are the data's columns also in the reference, neither keys, excluded nor
    maps. Rows pair on the keys and a per-key sequence number: without a filter the position in the
    order of the compared values (numbers by value, other values as text, NULLs first); with one,
    in-scope rows first take reference rows with the same compared values, the other rows pair by
    position, and a row out of scope pairs only when its key has no row in scope."""
    from pyspark.sql.types import MapType, NumericType

    q = c.query
    m = f"__pipes_{c.index}_compare"
    if isinstance(to, str):
        try:
            ref = df.sparkSession.table(to)
            _ = ref.schema
        except Exception as exc:
            raise DagsterPipesError(f"cannot read the reference table {to}: {error_message(exc)}") from None
    else:
        ref = to
    ours = {f.name: f.dataType for f in df.schema.fields}
    theirs = {f.name: f.dataType for f in ref.schema.fields}
    maps = {n for fields in (ours, theirs) for n, t in fields.items() if isinstance(t, MapType)}
    compared = [
        n for n in df.columns if n in theirs and n not in q.keys and n not in q.exclude and n not in maps
    ]
    numeric = [isinstance(ours[n], NumericType) for n in compared]
    both_numeric = [isinstance(ours[n], NumericType) and isinstance(theirs[n], NumericType) for n in compared]
    keys = [f"{m}_k{j}" for j in range(len(q.keys))]
    rkeys = [f"{m}_rk{j}" for j in range(len(q.keys))]
    values = [_quoted(n) for n in compared]
    rvalues = [f"{m}_rv{i}" for i in range(len(compared))]
    scope, rn, rrn = f"{m}_scope", f"{m}_rn", f"{m}_rrn"

    def order(cols: list[str]) -> str:
        parts = [
            f"{v} ASC NULLS FIRST" if native else f"CAST({v} AS STRING) ASC NULLS FIRST"
            for v, native in zip(cols, both_numeric, strict=True)
        ]
        return ", ".join(parts) or "CAST(1 AS INT)"

    def same_key(left: list[str], right: list[str]) -> str:
        eq = "<=>" if q.null_safe_rows else "="
        return " AND ".join(f"{a} {eq} {b}" for a, b in zip(left, right, strict=True))

    source = data.selectExpr(
        "*",
        *[f"{_key_sql(k)} AS {n}" for k, n in zip(q.keys, keys, strict=True)],
        f"{in_scope(q.data_filter)} AS {scope}",
    )
    try:
        other = ref.selectExpr(
            *[f"{_key_sql(k)} AS {n}" for k, n in zip(q.ref_keys, rkeys, strict=True)],
            *[f"{v} AS {r}" for v, r in zip(values, rvalues, strict=True)],
        )
        _ = other.schema
    except Exception as exc:
        raise DagsterPipesError(f"cannot read the keys of the reference data: {error_message(exc)}") from None
    part, rpart = ", ".join(keys), ", ".join(rkeys)
    helpers = [*keys, scope]
    duplicates = _duplicates(source, other, q, m, keys, rkeys) if q.raise_on_duplicates else None
    if not q.data_filter:
        source = source.selectExpr(
            "*", f"row_number() OVER (PARTITION BY {part} ORDER BY {order(values)}) AS {rn}"
        )
        other = other.selectExpr(
            "*", f"row_number() OVER (PARTITION BY {rpart} ORDER BY {order(rvalues)}) AS {rrn}"
        )
        on = f"{same_key(keys, rkeys)} AND {rn} = {rrn}"
        helpers.append(rn)
    else:
        source, other, on, more = _exact_first(
            source, other, q, m, keys, rkeys, values, rvalues, order, same_key
        )
        helpers += more
    joined = source.join(other, on=sql_column(source, on), how="left")
    entries = [
        f"CASE WHEN {_changed(a, b, num, q)} THEN named_struct('k', {string_literal(n)}, 'v',"
        f" named_struct('df', CAST({a} AS STRING), 'ref', CAST({b} AS STRING))) END"
        for n, a, b, num in zip(compared, values, rvalues, numeric, strict=True)
    ]
    changed = (
        f"map_from_entries(filter(array({', '.join(entries)}), x -> x IS NOT NULL))"
        if entries
        else "CAST(map() AS MAP<STRING, STRING>)"
    )
    extra = f"{rrn} IS NULL"
    fail = f"{extra} OR size({m}_changed) > 0"
    if duplicates is not None:  # DQX's eager uniqueness check, as an error of this check when run
        joined = joined.crossJoin(duplicates)
        fail = f"CASE WHEN {m}_dup IS NOT NULL THEN raise_error({m}_dup) ELSE {fail} END"
        helpers.append(f"{m}_dup")
    result = joined.selectExpr("*", f"{changed} AS {m}_changed").selectExpr(
        "*",
        f"{fail} AS {m}",
        f"to_json(named_struct('row_missing', FALSE, 'row_extra', {extra}, 'changed', {m}_changed)) AS {m}_message",
    )
    return result.drop(*helpers, *rkeys, *rvalues, rrn, f"{m}_changed", *other.columns)


def _duplicates(
    source: DataFrame, other: DataFrame, q: Any, m: str, keys: list[str], rkeys: list[str]
) -> DataFrame:
    """One row: ``<m>_dup``, DQX's error when the keys of the in-scope rows or of the reference rows
    are not unique (rows with a NULL key part left out unless ``null_safe_rows``), else NULL."""
    counts = []
    for what, side, names, given in (
        ("source", source.where(f"{m}_scope"), keys, q.keys),
        ("reference", other, rkeys, q.ref_keys),
    ):
        if not q.null_safe_rows:
            side = side.where(" AND ".join(f"{k} IS NOT NULL" for k in names))
        error = string_literal(
            f"The {what} dataset contains duplicate matching keys for columns: {', '.join(given)}."
        )
        counts.append(
            side.groupBy(*names)
            .count()
            .selectExpr(f"CASE WHEN max(count) > 1 THEN {error} END AS {m}_dup_{what}")
        )
    first, second = f"{m}_dup_source", f"{m}_dup_reference"
    return counts[0].crossJoin(counts[1]).selectExpr(f"coalesce({first}, {second}) AS {m}_dup")


def _exact_first(
    source: DataFrame,
    other: DataFrame,
    q: Any,
    m: str,
    keys: list[str],
    rkeys: list[str],
    values: list[str],
    rvalues: list[str],
    order: Any,
    same_key: Any,
) -> tuple[DataFrame, DataFrame, str, list[str]]:
    """The sequence numbers of a filtered comparison: a row in scope and a reference row with the
    same key and compared values pair first (as many as both sides have), in a phase of their own;
    the rest pair by position, in-scope rows first; a row out of scope pairs only when its key has no
    row in scope. Returns both sides, the join condition and the data's helper columns."""
    scope, rn, rrn = f"{m}_scope", f"{m}_rn", f"{m}_rrn"
    phase, rphase, any_in = f"{m}_phase", f"{m}_rphase", f"{m}_keyin"
    count, rcount, exact, rexact = f"{m}_n", f"{m}_rn_n", f"{m}_exact", f"{m}_rexact"
    erank, rerank = f"{m}_er", f"{m}_rer"
    ck = [f"{m}_ck{j}" for j in range(len(keys))]
    cv = [f"{m}_cv{i}" for i in range(len(values))]
    counted = source.where(scope)
    counted_ref = other
    if not q.null_safe_rows:
        counted = counted.where(" AND ".join(f"{k} IS NOT NULL" for k in keys))
        counted_ref = counted_ref.where(" AND ".join(f"{k} IS NOT NULL" for k in rkeys))
    # how many rows of the other side have each key and compared values
    source_counts = (
        counted.selectExpr(*[f"{a} AS {b}" for a, b in zip(keys + values, ck + cv, strict=True)])
        .groupBy(*ck, *cv)
        .count()
        .withColumnRenamed("count", rcount)
    )
    ref_counts = (
        counted_ref.selectExpr(*[f"{a} AS {b}" for a, b in zip(rkeys + rvalues, ck + cv, strict=True)])
        .groupBy(*ck, *cv)
        .count()
        .withColumnRenamed("count", count)
    )
    same_values = [f"{a} <=> {b}" for a, b in zip(values, cv, strict=True)]
    on = " AND ".join([same_key(keys, ck), *same_values])
    source = (
        source.join(ref_counts, on=sql_column(source, on), how="left")
        .selectExpr("*", f"coalesce({count}, 0) AS {m}_opp")
        .drop(*ck, *cv, count)
    )
    rsame_values = [f"{a} <=> {b}" for a, b in zip(rvalues, cv, strict=True)]
    ron = " AND ".join([same_key(rkeys, ck), *rsame_values])
    other = (
        other.join(source_counts, on=sql_column(other, ron), how="left")
        .selectExpr("*", f"coalesce({rcount}, 0) AS {m}_ropp")
        .drop(*ck, *cv, rcount)
    )
    part, rpart = ", ".join(keys), ", ".join(rkeys)
    by_values, rby_values = ", ".join([*keys, *values]), ", ".join([*rkeys, *rvalues])
    source = source.selectExpr(
        "*",
        f"max(CAST({scope} AS INT)) OVER (PARTITION BY {part}) AS {any_in}",
        f"row_number() OVER (PARTITION BY {by_values} ORDER BY {scope} DESC) AS {erank}",
    ).selectExpr("*", f"{scope} AND {erank} <= {m}_opp AS {exact}")
    source = source.selectExpr(
        "*",
        f"CAST({exact} AS INT) AS {phase}",
        f"CASE WHEN {exact} THEN {erank} ELSE row_number() OVER (PARTITION BY {part}, {exact}"
        f" ORDER BY {scope} DESC, {order(values)}) END AS {rn}",
    )
    other = other.selectExpr(
        "*", f"row_number() OVER (PARTITION BY {rby_values} ORDER BY CAST(1 AS INT)) AS {rerank}"
    ).selectExpr("*", f"{rerank} <= {m}_ropp AS {rexact}")
    other = other.selectExpr(
        "*",
        f"CAST({rexact} AS INT) AS {rphase}",
        f"CASE WHEN {rexact} THEN {rerank} ELSE row_number() OVER (PARTITION BY {rpart}, {rexact}"
        f" ORDER BY {order(rvalues)}) END AS {rrn}",
    )
    conditions = [
        same_key(keys, rkeys),
        f"{phase} = {rphase}",
        f"{rn} = {rrn}",
        f"({scope} OR {any_in} = 0)",
        *[f"({phase} = 0 OR {a} <=> {b})" for a, b in zip(values, rvalues, strict=True)],
    ]
    helpers = [f"{m}_opp", any_in, erank, exact, phase, rn]
    return source, other, " AND ".join(conditions), helpers
