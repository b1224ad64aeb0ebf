"""A DQX rule as a check of this project (:class:`DqxRule`): compiled into the one shared
aggregation like every check, with DQX's meaning -- a rule passes when it flags no row, and
``failed_rows`` counts the rows DQX flags (every row of a duplicated key or a failing group)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._checks._analysis import error_message, quiet_spark_errors
from dagster_pipes_spark.spark._checks._dqx._logic import (
    Built,
    CompareLogic,
    GroupLogic,
    JsonSchemaLogic,
    LookupLogic,
    QueryLogic,
    RowLogic,
    SchemaLogic,
)
from dagster_pipes_spark.spark._checks._dqx._row_functions import json_schema_condition
from dagster_pipes_spark.spark._checks._dqx._schema import schema_errors
from dagster_pipes_spark.spark._checks._model import (
    ROW,
    TOTAL,
    Columns,
    Compiled,
    Grouping,
    Lookup,
    SparkCheck,
    Verdict,
    as_int,
    in_scope,
)
from dagster_pipes_spark.spark._sql import string_literal

#: the criticality of a DQX rule -> the severity of the check
SEVERITY = {"error": "ERROR", "warn": "WARN"}


@dataclass(frozen=True, kw_only=True)
class DqxRule(SparkCheck):
    """A rule of a DQX checks file: its function applied to its arguments, its ``filter`` (rows
    outside it are never flagged), its ``criticality`` (``severity``) and ``user_metadata``."""

    function: str
    arguments: tuple[tuple[str, Any], ...]
    built: Built
    filter: str | None = None
    user_metadata: tuple[tuple[str, str], ...] = ()
    to: Any = None  # foreign keys: the table name or DataFrame the keys are looked up in
    kind: ClassVar[str] = ROW
    udf_names: tuple[str, ...] = field(default=())

    @property
    def definition(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments)
        where = f", filter={self.filter!r}" if self.filter else ""
        return f"dqx {self.function}({args}){where}"

    @property
    def criticality(self) -> str:
        """``error`` or ``warn``, as DQX says it."""
        return "warn" if self.level == "WARN" else "error"

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        logic = self.built.logic
        scope = in_scope(self.filter)
        failed = self._alias(index, "failed")
        aggregates = {self._alias(index, "scope"): f"count_if({scope})"} if self.filter else {}
        common: dict[str, Any] = {
            "reads": tuple(c for c in self.built.columns if columns.find(c)),
            "where": self.filter,
            "udfs": self.built.udfs,
        }
        if isinstance(logic, RowLogic):
            flag = f"{scope} AND coalesce(({logic.fail}), false)"
            aggregates[failed] = f"count_if({flag})"
            return Compiled(
                name,
                self,
                index,
                aggregates=aggregates,
                fail=flag,
                flag=flag,
                message=logic.message,
                **common,
            )
        if isinstance(logic, GroupLogic):
            return self._grouped(name, index, columns, logic, aggregates, common)
        if isinstance(logic, LookupLogic):
            marker = self._alias(index, "found")
            complete = " AND ".join(f"{c} IS NOT NULL" for c in logic.columns)
            found = f"{marker} IS NOT NULL" if logic.negate else f"{marker} IS NULL"
            key = "TRUE" if logic.null_safe else complete
            flag = f"{scope} AND {key} AND {found}"
            aggregates[failed] = f"count_if({flag})"
            pairs = tuple(zip(logic.columns, logic.ref_columns, strict=True))
            lookup = Lookup(self.to, pairs, marker, whole=logic.null_safe or len(pairs) > 1)
            return Compiled(
                name,
                self,
                index,
                aggregates=aggregates,
                fail=flag,
                flag=flag,
                message=logic.message,
                ref=lookup,
                **common,
            )
        if isinstance(logic, QueryLogic):
            marker = self._alias(index, "query")
            condition = f"NOT {marker}" if logic.negate else marker
            if logic.row_condition is not None:
                condition = _render(logic.row_condition, marker)
            flag = f"{scope} AND coalesce({condition}, false)"
            aggregates[failed] = f"count_if({flag})"
            return Compiled(
                name,
                self,
                index,
                aggregates=aggregates,
                flag=flag,
                message=_render(logic.message, marker),
                query=logic,
                **common,
            )
        if isinstance(logic, CompareLogic):  # the comparison is joined in: see ``join_compare``
            marker = self._alias(index, "compare")
            flag = f"{scope} AND coalesce({marker}, false)"
            aggregates[failed] = f"count_if({flag})"
            return Compiled(
                name,
                self,
                index,
                aggregates=aggregates,
                flag=flag,
                message=logic.message or f"{marker}_message",
                query=logic,
                **common,
            )
        if isinstance(logic, JsonSchemaLogic):  # made SQL before the job, once Spark parsed the schema
            return Compiled(name, self, index, aggregates=aggregates, flag="FALSE", schema=logic, **common)
        assert isinstance(logic, SchemaLogic)
        # the comparison is made before the job, which sets ``flag`` to TRUE or FALSE
        return Compiled(name, self, index, aggregates=aggregates, flag="FALSE", schema=logic, **common)

    def _grouped(
        self,
        name: str,
        index: int,
        columns: Columns,
        logic: GroupLogic,
        aggregates: dict[str, str],
        common: dict[str, Any],
    ) -> Compiled:
        keys = []
        for sql, raw in zip(logic.keys, [*logic.trim_keys, *([None] * len(logic.keys))], strict=False):
            column = columns.find(raw) if raw else None
            keys.append(f"trim({sql})" if column is not None and column[1] == "string" else sql)
        scope = (
            in_scope(self.filter) if logic.scope is None else f"{in_scope(self.filter)} AND ({logic.scope})"
        )
        grouping = Grouping(
            tuple(keys),
            scope,
            logic.aggregates,
            logic.fail,
            self._alias(index, "failed"),
            self._alias(index, "grouped"),
        )
        msg = logic.message
        for placeholder, _ in logic.aggregates:
            msg = msg.replace("{" + placeholder + "}", f"{grouping.failed}_{placeholder}")
        flag = f"{scope} AND coalesce({grouping.marker}, false)"
        return Compiled(
            name, self, index, aggregates=aggregates, group=grouping, flag=flag, message=msg, **common
        )

    def prepare(self, compiled: Compiled, df: Any) -> None:
        """A schema rule compares the schemas now (flagging every row or none); a JSON schema rule
        becomes SQL once Spark has parsed its schema."""
        logic = compiled.schema
        if logic is None:
            return
        failed = self._alias(compiled.index, "failed")
        try:
            with quiet_spark_errors():
                if isinstance(logic, SchemaLogic):
                    errors = schema_errors(df, logic, self.to)
                    compiled.flag = "TRUE" if errors else "FALSE"
                    compiled.message = string_literal("Schema validation failed: " + "; ".join(errors))
                else:
                    fail, compiled.message = json_schema_condition(df, logic)
                    compiled.flag = compiled.fail = f"{in_scope(self.filter)} AND coalesce(({fail}), false)"
        except Exception as exc:
            compiled.error = f"cannot read the expected schema: {error_message(exc)}"
            return
        compiled.aggregates[failed] = f"count_if({compiled.flag})"

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        total = as_int(figures[self._alias(compiled.index, "scope")] if self.filter else figures[TOTAL])
        failed = as_int(figures[self._alias(compiled.index, "failed")])
        md: dict[str, Any] = {"dqx_function": typed_value(self.function, "text")}
        if self.filter:
            md["filter"] = typed_value(self.filter, "text")
        if self.user_metadata:
            md["user_metadata"] = typed_value(dict(self.user_metadata), "json")
        if isinstance(compiled.query, CompareLogic):
            md["reads_other_data"] = typed_value("the reference data, joined in the same pass", "text")
        elif compiled.query is not None:
            md["reads_other_data"] = typed_value("the rule's query, joined in the same pass", "text")
        return Verdict(failed == 0, total, failed, metadata=md)


def _render(message: str, marker: str) -> str:
    """A query rule's message with ``{column}`` placeholders read from the joined query's columns."""
    out, i = [], 0
    while i < len(message):
        start = message.find("{", i)
        end = message.find("}", start + 1) if start >= 0 else -1
        if start < 0 or end < 0 or not message[start + 1 : end].isidentifier():
            out.append(message[i:])
            break
        out.append(message[i:start] + f"{marker}_{message[start + 1 : end]}")
        i = end + 1
    return "".join(out)
