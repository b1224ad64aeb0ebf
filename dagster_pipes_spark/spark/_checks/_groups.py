"""Dataset-level rules (:class:`~dagster_pipes_spark.spark._checks._model.Grouping`): the rows in a
rule's scope grouped by its keys, a group failing as a whole.

Rules grouping by the same keys share one ``groupBy`` (each rule's aggregates restricted to its own
scope with ``FILTER (WHERE ...)``). For the figures, each such ``groupBy`` is one more one-row part of
the one action (the sum of the rows in scope of the failing groups, per rule); for annotated data,
its failing groups are joined back to the rows (keys compared NULL-safely), one marker column per
rule. Only ``DataFrame`` methods and ``expr`` are used: classic and Connect alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark.spark._checks._model import PREFIX, Compiled, Grouping, in_scope

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def sql_column(df: DataFrame, sql: str) -> Column:
    """A column of ``df``'s kind (classic or Connect) from Spark SQL text."""
    if type(df).__module__.startswith("pyspark.sql.connect"):
        from pyspark.sql.connect.functions import expr
    else:
        from pyspark.sql.functions import expr
    return expr(sql)


def _by_keys(compiled: Sequence[Compiled]) -> dict[tuple[str, ...], list[Compiled]]:
    out: dict[tuple[str, ...], list[Compiled]] = {}
    for c in compiled:
        if c.group is not None:
            out.setdefault(c.group.keys, []).append(c)
    return out


def _key_alias(j: int) -> str:
    return f"{PREFIX}gk{j}"


def _aggregated(data: DataFrame, keys: tuple[str, ...], rules: Sequence[Compiled]) -> DataFrame:
    """One row per group of ``keys``: per rule, the rows in its scope and its aggregates (named
    ``<failed alias>_n`` / ``<failed alias>_<placeholder>``)."""
    keyed = data.selectExpr("*", *[f"({k}) AS {_key_alias(j)}" for j, k in enumerate(keys)]) if keys else data
    aggs: list[Any] = []
    for c in rules:
        g = c.group
        assert g is not None
        scope = in_scope(g.scope)
        aggs.append(sql_column(data, f"count_if({scope})").alias(f"{g.failed}_n"))
        for placeholder, aggregate in g.aggregates:
            filtered = f"{aggregate} FILTER (WHERE {scope})"
            aggs.append(sql_column(data, filtered).alias(f"{g.failed}_{placeholder}"))
    return keyed.groupBy(*[_key_alias(j) for j in range(len(keys))]).agg(*aggs)


def _failing(g: Grouping) -> str:
    names = {placeholder: f"{g.failed}_{placeholder}" for placeholder, _ in g.aggregates}
    return f"{g.failed}_n > 0 AND coalesce(({g.condition(names)}), false)"


def figure_parts(data: DataFrame, compiled: Sequence[Compiled]) -> list[DataFrame]:
    """One one-row DataFrame per distinct key tuple: each rule's failed-row count (its ``failed``
    alias), for the ``unionByName`` of the one action."""
    parts = []
    for keys, rules in _by_keys(compiled).items():
        grouped = _aggregated(data, keys, rules)
        sums = []
        for c in rules:
            g = c.group
            assert g is not None
            sums.append(f"CAST(coalesce(sum(IF({_failing(g)}, {g.failed}_n, 0)), 0) AS BIGINT) AS {g.failed}")
        parts.append(grouped.selectExpr(*sums))
    return parts


def join_markers(data: DataFrame, compiled: Sequence[Compiled], base: DataFrame) -> DataFrame:
    """``data`` with, per rule, its ``marker`` column (TRUE for a row of a failing group; whether
    the row is in the rule's scope is the rule's ``flag``) and its group's aggregates
    (``<failed alias>_<placeholder>``, which its message reads). The groups are aggregated from
    ``base`` (the checked data, which ``data`` extends): aggregating the growing ``data`` would put
    every earlier join into each later one, a plan that doubles with each key tuple."""
    for keys, rules in _by_keys(compiled).items():
        carried = []
        for c in rules:
            g = c.group
            assert g is not None
            carried.append(f"{_failing(g)} AS {g.marker}")
            carried += [f"{g.failed}_{placeholder}" for placeholder, _ in g.aggregates]
        names = [_key_alias(j) for j in range(len(keys))]
        failing = _aggregated(base, keys, rules).selectExpr(*names, *carried)
        if not keys:
            data = data.crossJoin(failing)
            continue
        right = [f"{name}_r" for name in names]
        failing = failing.toDF(*right, *failing.columns[len(names) :])
        keyed = data.selectExpr("*", *[f"({k}) AS {name}" for k, name in zip(keys, names, strict=True)])
        on = " AND ".join(f"{a} <=> {b}" for a, b in zip(names, right, strict=True))
        data = keyed.join(failing, on=sql_column(data, on), how="left").drop(*names, *right)
    return data
