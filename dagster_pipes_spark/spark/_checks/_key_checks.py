"""Keys: ``unique`` (no two rows share a key; the distinct keys counted apart, in the same action)
and ``relationships`` (every value is a key of other data, joined in as ``Lookup``). Row-level, with
``where=`` and thresholds like every row-level check. Nothing here imports pyspark."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._checks._model import (
    UNIQUE,
    Columns,
    Compiled,
    Lookup,
    RowLevel,
    SparkCheck,
    Verdict,
    as_int,
    column_names,
    format_args,
    scoped,
)


@dataclass(frozen=True)
class Unique(RowLevel):
    """No two rows share a key; rows with a NULL key column are not counted."""

    columns: tuple[str, ...]
    kind: ClassVar[str] = UNIQUE

    @property
    def definition(self) -> str:
        return f"unique({format_args(self.columns)}{self._options()})"

    def _problems(self) -> list[str]:
        return column_names(self.columns, "unique")

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        keys = tuple(columns.ref(c) for c in self.columns)
        complete = scoped(self.where, " AND ".join(f"{k} IS NOT NULL" for k in keys))
        return Compiled(
            name,
            self,
            index,
            # the distinct keys are counted apart (``grouped``), in the same action: a
            # count(DISTINCT) here would make Spark group the whole aggregation by the key
            aggregates={self._alias(index, "keyed"): f"count_if({complete})", **self._scope(index)},
            keys=keys,
            grouped=(complete, self._alias(index, "distinct")),
            reads=tuple(columns.name_of(c) for c in self.columns),
            where=self.where,
        )

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        keyed = as_int(figures[self._alias(compiled.index, "keyed")])
        distinct = as_int(figures[self._alias(compiled.index, "distinct")])
        verdict = self.verdict(compiled, figures, keyed - distinct)
        verdict.metadata["distinct_keys"] = typed_value(distinct, "int")
        return verdict


@dataclass(frozen=True)
class Relationships(RowLevel):
    """A row fails when its non-NULL value has no equal value in ``to``'s ``field``."""

    column: str
    to: Any
    field: str | None = None

    @property
    def definition(self) -> str:
        to = repr(self.to) if isinstance(self.to, str) else "<DataFrame>"
        field = f", field={self.field!r}" if self.field is not None else ""
        return f"relationships({self.column!r}, to={to}{field}{self._options()})"

    @property
    def target_field(self) -> str:
        """The column of ``to`` holding the keys."""
        return self.field if self.field is not None else self.column

    def _problems(self) -> list[str]:
        out = column_names([self.column], "relationships")
        if isinstance(self.to, str):
            if not self.to.strip():
                out.append("relationships: `to` must be a table name or a DataFrame, got ''")
        elif not (hasattr(self.to, "selectExpr") and hasattr(self.to, "schema")):
            out.append(
                f"relationships: `to` must be a table name or a DataFrame, got {type(self.to).__name__}"
            )
        if self.field is not None and (not isinstance(self.field, str) or not self.field.strip()):
            out.append(f"relationships: `field` must be a non-empty column name, got {self.field!r}")
        return out

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        fail = scoped(
            self.where, f"{columns.ref(self.column)} IS NOT NULL AND {self._alias(index, 'found')} IS NULL"
        )
        return Compiled(
            name,
            self,
            index,
            aggregates={self._alias(index, "failed"): f"count_if({fail})", **self._scope(index)},
            fail=fail,
            reads=(columns.name_of(self.column),),
            where=self.where,
            ref=Lookup(
                self.to, ((columns.ref(self.column), self.target_field),), self._alias(index, "found")
            ),
        )

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        return self.verdict(compiled, figures, as_int(figures[self._alias(compiled.index, "failed")]))


# --- constructors (the public names) ----------------------------------------------------------


def unique(
    *columns: str,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """No two rows share the key ``columns``. ``failed_rows`` counts every row beyond the first of
    each key; rows with a NULL key column are not counted (that is ``not_null``'s job). ``where=``
    and thresholds: see :func:`expect`."""
    return Unique(
        tuple(columns),
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )


def relationships(
    column: str,
    to: Any,
    field: str | None = None,
    *,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """A row fails when its non-NULL ``column`` value has no equal value in ``to``'s ``field``
    (default: the same name); ``to`` is a table name or a DataFrame. Evaluated in the same
    aggregation: the distinct keys of ``to`` are joined to the data. ``where=`` and thresholds: see
    :func:`~dagster_pipes_spark.spark.expect`."""
    return Relationships(
        column,
        to,
        field,
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )
