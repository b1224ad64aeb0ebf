"""Reading DQX rules (the list of ``{criticality, name, filter, check: {function, arguments,
for_each_column}, user_metadata, message_expr}`` of a DQX checks file) into :class:`DqxRule` checks,
named as DQX names them. A rule whose meaning cannot be honoured is refused naming the rule, the
function and the argument."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dagster_pipes_spark.spark._checks._dqx._dataset_functions import DATASET_FUNCTIONS, UNSUPPORTED
from dagster_pipes_spark.spark._checks._dqx._logic import (
    Arguments,
    Built,
    CompareLogic,
    LookupLogic,
    QueryLogic,
    RowLogic,
    RuleError,
    SchemaLogic,
)
from dagster_pipes_spark.spark._checks._dqx._row_functions import ROW_FUNCTIONS
from dagster_pipes_spark.spark._checks._dqx._rule import SEVERITY, DqxRule
from dagster_pipes_spark.spark._checks._model import SparkCheck

FUNCTIONS = {**ROW_FUNCTIONS, **DATASET_FUNCTIONS}
#: the longest message DQX keeps from ``message_expr``
MAX_MESSAGE = 500


def supported_functions() -> list[str]:
    """The DQX check functions a rule may use here."""
    return sorted(FUNCTIONS)


def _targets(check: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The arguments of each rule a check block stands for (``for_each_column`` expanded)."""
    expansions = check.get("for_each_column")
    if expansions is None:
        return [dict(arguments)]
    if not isinstance(expansions, list) or not expansions:
        raise RuleError("'for_each_column' must be a non-empty list")
    out = []
    for item in expansions:
        args = dict(arguments)
        args["columns" if isinstance(item, list) else "column"] = item
        out.append(args)
    return out


def _with_message(built: Built, message_expr: Any) -> Built:
    if message_expr is None:
        return built
    if not isinstance(message_expr, str) or not message_expr.strip():
        raise RuleError(f"'message_expr' must be a SQL expression, got {message_expr!r}")
    custom = f"substr(({message_expr}), 1, {MAX_MESSAGE})"
    logic = built.logic
    if isinstance(logic, SchemaLogic):
        raise RuleError("'message_expr' is not supported with has_valid_schema")
    if isinstance(logic, RowLogic):
        logic = RowLogic(logic.fail, custom)
    else:
        logic = type(logic)(**{**logic.__dict__, "message": custom})
    return Built(logic, built.name, built.columns, built.udfs)


def _reference(logic: Any, dataframes: Mapping[str, Any]) -> Any:
    """What a rule reads besides the data: the table name or the DataFrame a key or schema comes
    from; the DataFrames a query names."""
    if isinstance(logic, QueryLogic):
        return dict(dataframes)
    if isinstance(logic, (LookupLogic, SchemaLogic, CompareLogic)):
        ref = logic.ref if isinstance(logic, SchemaLogic) else logic.to
        if ref is None:
            return None
        if logic.by_name:
            if ref not in dataframes:
                raise RuleError(
                    f"'ref_df_name: {ref}' is not among the DataFrames given (`dataframes=`:"
                    f" {', '.join(dataframes) or 'none'})"
                )
            return dataframes[ref]
        return ref
    return None


def load_rules(
    rules: Sequence[Any], dataframes: Mapping[str, Any]
) -> tuple[dict[str, SparkCheck], list[str]]:
    """DQX rules -> ``{name: DqxRule}`` and the problems found (each naming its rule)."""
    out: dict[str, SparkCheck] = {}
    problems: list[str] = []
    for i, rule in enumerate(rules):
        label = f"rule {i + 1}"
        try:
            if not isinstance(rule, Mapping):
                raise RuleError(f"expected a mapping with `check: {{function, arguments}}`, got {rule!r}")
            check = rule.get("check")
            if not isinstance(check, Mapping):
                raise RuleError("'check' field is missing or is not a mapping")
            function = check.get("function")
            label = f"rule {i + 1} ({rule.get('name') or function})"
            if function in UNSUPPORTED:
                raise RuleError(f"DQX function {function!r} is not supported: {UNSUPPORTED[function]}")
            if function not in FUNCTIONS:
                raise RuleError(
                    f"function {function!r} is not a DQX check function ({len(FUNCTIONS)} are supported)"
                )
            criticality = rule.get("criticality", "error")
            if criticality not in SEVERITY:
                raise RuleError(f"invalid 'criticality' value {criticality!r}; expected 'warn' or 'error'")
            arguments = check.get("arguments") or {}
            if not isinstance(arguments, Mapping):
                raise RuleError("'arguments' should be a mapping")
            if "column" in arguments and "columns" in arguments:
                raise RuleError("both 'column' and 'columns' cannot be given")
            row_filter = rule.get("filter")
            if row_filter is not None and (not isinstance(row_filter, str) or not row_filter.strip()):
                raise RuleError(f"'filter' must be a SQL predicate, got {row_filter!r}")
            metadata = rule.get("user_metadata") or {}
            if not isinstance(metadata, Mapping):
                raise RuleError(f"'user_metadata' must be a mapping, got {metadata!r}")
            for args in _targets(check, arguments):
                built = FUNCTIONS[function].build(Arguments(FUNCTIONS[function], args, row_filter or None))
                built = _with_message(built, rule.get("message_expr"))
                name = str(rule.get("name") or built.name)
                base, n = name, 2
                while name in out:
                    name, n = f"{base}_{n}", n + 1
                out[name] = DqxRule(
                    function=function,
                    arguments=tuple(sorted(args.items())),
                    built=built,
                    filter=row_filter or None,
                    user_metadata=tuple((str(k), _text(v)) for k, v in metadata.items()),
                    to=_reference(built.logic, dataframes),
                    severity=SEVERITY[criticality],
                    description=json.dumps(dict(metadata), sort_keys=True, default=str) if metadata else None,
                )
        except (RuleError, TypeError, ValueError) as exc:
            problems.append(f"{label}: {exc}")
    return out, problems


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
