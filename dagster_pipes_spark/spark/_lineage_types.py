"""The column lineage a write carries: the sources a write reads (``LineageSource``) and, per written
column, the source columns whose values flow into it (``ColumnLineage``). Computed by ``_lineage``;
kept here, below it, because ``SparkWrite`` carries them. Nothing here imports pyspark."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class LineageSource:
    """A table (name parts, as qualified as Spark printed them) or a path that a write reads."""

    table: tuple[str, ...] | None = None
    path: str | None = None

    @property
    def target(self) -> str:
        """Dotted table name, or the path (what an ``assets=`` callable receives)."""
        return ".".join(self.table) if self.table else (self.path or "")


SourceColumn = tuple[LineageSource, str]
#: the source columns whose values flow into a column; ``None`` when that cannot be resolved
Deps = frozenset[SourceColumn] | None
#: written column -> its dependencies, in the order of the written columns
ColumnLineage = dict[str, Deps]
