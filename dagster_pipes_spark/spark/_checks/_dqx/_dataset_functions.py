"""DQX 0.17's dataset-level check functions as Spark SQL: uniqueness and aggregates (groups failing
as a whole), foreign keys (keys looked up in other data), queries over the data, time windows and
the schema. Registered in :data:`DATASET_FUNCTIONS`; a function this project cannot honour is
registered with the reason, so a rule using it is refused at load naming it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._checks._dqx._logic import (
    REQUIRED,
    Arguments,
    Built,
    CompareLogic,
    Function,
    GroupLogic,
    LookupLogic,
    QueryLogic,
    RuleError,
    SchemaLogic,
    registrar,
)
from dagster_pipes_spark.spark._checks._dqx._row_functions import Col, within_tolerance
from dagster_pipes_spark.spark._checks._dqx._sql import (
    as_string,
    column_name,
    column_sql,
    is_star,
    limit_sql,
    literal,
    message,
    normalize,
    null_text,
    text,
    unquote,
)
from dagster_pipes_spark.spark._checks._model import in_scope

DATASET_FUNCTIONS: dict[str, Function] = {}
#: functions that load nowhere here: name -> why
UNSUPPORTED: dict[str, str] = {}


_register = registrar(DATASET_FUNCTIONS, "dataset")


def _path(name: str) -> str:
    """SQL of a column named as ``F.col`` reads a name (a dotted path)."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


# --- uniqueness ----------------------------------------------------------------------------------


@_register("is_unique", columns=REQUIRED, nulls_distinct=True, trim_strings=False)
def _is_unique(args: Arguments) -> Built:
    columns = args.names("columns")
    nulls_distinct, trim = args.flag("nulls_distinct"), args.flag("trim_strings")
    keys = tuple(_path(c) for c in columns)
    if len(columns) == 1:
        display, value = columns[0], keys[0]
    else:
        display, value = f"struct({', '.join(columns)})", f"struct({', '.join(keys)})"
    scope = " AND ".join(f"{k} IS NOT NULL" for k in keys) if nulls_distinct else None
    shown = as_string(value) if nulls_distinct else null_text(value)
    msg = message(
        text("Value '"),
        shown,
        text(f"' in column '{display}' is not unique, found "),
        as_string("{count}"),
        text(" duplicates"),
    )
    logic = GroupLogic(
        keys,
        (("count", "count(1)"),),
        "{count} > 1",
        msg,
        scope=scope,
        trim_keys=tuple(columns) if trim else (),
    )
    return Built(logic, f"{normalize(display)}_is_not_unique", tuple(columns))


# --- foreign keys --------------------------------------------------------------------------------


def _reference_keys(args: Arguments) -> tuple[list[str], list[str], Any, Any]:
    """The key columns paired with the reference's (same length) and where the reference comes from
    (exactly one of ``ref_df_name`` and ``ref_table``), as ``foreign_key`` and ``compare_datasets``
    take them."""
    columns, ref_columns = args.names("columns"), args.names("ref_columns")
    if len(columns) != len(ref_columns):
        raise RuleError(
            f"'columns' has {len(columns)} entries but 'ref_columns' has {len(ref_columns)}; both must have"
            " the same length"
        )
    by_name, table = args.given_value("ref_df_name"), args.given_value("ref_table")
    if (by_name is None) == (table is None):
        raise RuleError("give exactly one of 'ref_df_name' and 'ref_table'")
    return list(columns), list(ref_columns), by_name, table


@_register(
    "foreign_key",
    columns=REQUIRED,
    ref_columns=REQUIRED,
    ref_df_name=None,
    ref_table=None,
    negate=False,
    null_safe=False,
    broadcast_ref=False,
)
def _foreign_key(args: Arguments) -> Built:
    columns, ref_columns, by_name, table = _reference_keys(args)
    negate, null_safe = args.flag("negate"), args.flag("null_safe")
    args.flag("broadcast_ref")  # a planning hint: the keys are broadcast whenever the session allows
    if len(columns) == 1 and not null_safe:
        source, source_name = columns[0], column_name(columns[0])
        reference, reference_name = ref_columns[0], column_name(ref_columns[0])
        shown = null_text(column_sql(columns[0]))
    else:
        source = f"struct({', '.join(f'{c} AS {c}' for c in columns)})"
        reference = f"struct({', '.join(f'{r} AS {c}' for r, c in zip(ref_columns, columns, strict=True))})"
        source_name, reference_name = normalize(source), normalize(reference)
        shown = null_text(f"struct({', '.join(f'{_path(c)} AS `{c}`' for c in columns)})")
    op = "exists_in" if negate else "not_exists_in"
    msg = message(
        text("Value '"),
        shown,
        text(f"' in column '{source}' {'' if negate else 'not '}found in reference column '"),
        text(reference),
        text("'"),
    )
    logic = LookupLogic(
        tuple(_path(c) for c in columns),
        tuple(ref_columns),
        by_name if by_name is not None else table,
        by_name is not None,
        negate,
        null_safe,
        msg,
    )
    return Built(logic, f"{source_name}_{op}_ref_{reference_name}", tuple(columns))


# --- aggregates ----------------------------------------------------------------------------------

CURATED = {
    "count": "Count",
    "sum": "Sum",
    "avg": "Average",
    "min": "Min",
    "max": "Max",
    "count_distinct": "Distinct count",
    "approx_count_distinct": "Approximate distinct count",
    "count_if": "Conditional count",
    "stddev": "Standard deviation",
    "stddev_pop": "Population standard deviation",
    "stddev_samp": "Sample standard deviation",
    "variance": "Variance",
    "var_pop": "Population variance",
    "var_samp": "Sample variance",
    "median": "Median",
    "mode": "Mode",
    "skewness": "Skewness",
    "kurtosis": "Kurtosis",
    "percentile": "Percentile",
    "approx_percentile": "Approximate percentile",
}
#: aggr_params each function takes, in the SQL function's argument order
_PARAMS = {
    "percentile": ("percentile",),
    "approx_percentile": ("percentile", "accuracy"),
    "approx_count_distinct": ("rsd",),
}


def _aggregate(args: Arguments, aggr: str, value: str) -> str:
    params = args.given_value("aggr_params") or {}
    if not isinstance(params, dict):
        raise RuleError(f"argument 'aggr_params' must be a mapping, got {params!r}")
    accepted = _PARAMS.get(aggr, ())
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise args.refuse(
            "aggr_params",
            f"{aggr} takes {', '.join(accepted) or 'no parameters'} here, not {unknown[0]!r}",
        )
    if aggr in ("percentile", "approx_percentile") and "percentile" not in params:
        raise RuleError(f"{aggr!r} needs aggr_params with 'percentile' (e.g. {{'percentile': 0.95}})")
    if aggr == "count_distinct":
        return f"count(DISTINCT {value})"
    extra = [str(params[k]) for k in accepted if k in params]
    return f"{aggr}({', '.join([value, *extra])})"


def _compare(op_name: str, label: str, fail: Callable[[str, str, Arguments], str], **extra: Any):  # type: ignore[no-untyped-def]
    def build(args: Arguments) -> Built:
        column, aggr = args["column"], args["aggr_type"]
        if not isinstance(aggr, str) or not aggr.replace("_", "").isalnum():
            raise RuleError(f"argument 'aggr_type' must name an aggregate function, got {aggr!r}")
        col = Col(column)
        star = is_star(column)
        if star and aggr not in ("count", "count_distinct"):
            raise RuleError(f"column '*' is only supported with 'count' (got {aggr!r})")
        if star and aggr == "count_distinct" and args.row_filter:
            raise RuleError("column '*' with a filter is only supported with 'count'")
        value = "1" if star else col.sql
        if star and aggr == "count_distinct":
            raise args.refuse("aggr_type", "count_distinct of '*' (every column) is not evaluated here")
        limit = limit_sql(args["limit"])
        group_by = args.names("group_by") if args.given_value("group_by") is not None else []
        name_part = "" if star else col.name
        display = "*" if star else col.display
        if group_by:
            name = f"{name_part}_{aggr.lower()}_group_by_{'_'.join(group_by)}_{op_name}_limit".lstrip("_")
        else:
            name = f"{name_part}_{aggr.lower()}_{op_name}_limit".lstrip("_")
        shown = CURATED.get(aggr, f"'{aggr}'")
        params = args.given_value("aggr_params")
        if params:
            shown += f" ({', '.join(f'{k}={v}' for k, v in params.items())})"
        per_group = f" per group of columns '{', '.join(group_by)}'" if group_by else ""
        msg = message(
            text(f"{shown} value "),
            as_string("{metric}"),
            text(f" in column '{display}'{per_group} is {label} limit: "),
            as_string(limit),
        )
        logic = GroupLogic(
            tuple(_path(g) for g in group_by),
            (("metric", _aggregate(args, aggr, value)),),
            fail("{metric}", limit, args),
            msg,
        )
        return Built(logic, name, (display,))

    return build


def _tolerant(equal: bool) -> Callable[[str, str, Arguments], str]:
    def fail(metric: str, limit: str, args: Arguments) -> str:
        tolerances = []
        for key in ("abs_tolerance", "rel_tolerance"):
            value = args.given_value(key) or 0.0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise RuleError(f"argument {key!r} must be a non-negative number, got {value!r}")
            tolerances.append(float(value))
        if tolerances[0] > 0 or tolerances[1] > 0:
            match = within_tolerance(metric, limit, tolerances[0], tolerances[1])
            return f"NOT {match}" if equal else match
        return f"{metric} != {limit}" if equal else f"{metric} = {limit}"

    return fail


_AGGR = {"column": REQUIRED, "limit": REQUIRED, "aggr_type": "count", "group_by": None, "aggr_params": None}
_TOLERANCES = {"abs_tolerance": None, "rel_tolerance": None}

for _name, _op, _label, _fail, _params in (
    ("is_aggr_not_greater_than", "greater_than", "greater than", lambda m, lim, a: f"{m} > {lim}", {}),
    ("is_aggr_not_less_than", "less_than", "less than", lambda m, lim, a: f"{m} < {lim}", {}),
    ("is_aggr_equal", "not_equal_to", "not equal to", _tolerant(equal=True), _TOLERANCES),
    ("is_aggr_not_equal", "equal_to", "equal to", _tolerant(equal=False), _TOLERANCES),
):
    _register(_name, **_AGGR, **_params)(_compare(_op, _label, _fail))


# --- queries -------------------------------------------------------------------------------------


@_register(
    "sql_query",
    query=REQUIRED,
    merge_columns=None,
    msg=None,
    name=None,
    negate=False,
    condition_column="condition",
    input_placeholder="input_view",
)
def _sql_query(args: Arguments) -> Built:
    query, condition = args.text("query"), args.text("condition_column")
    merge = args.names("merge_columns") if args.given_value("merge_columns") else []
    negate = args.flag("negate")
    given_name = args.given_value("name")
    if given_name:
        name = str(given_name)
    elif merge:
        name = "_".join(merge) + f"_query_{condition}_violation"
    else:
        name = f"query_{condition}_violation"
    default = f"Value is {'matching' if negate else 'not matching'} query: '{query}'"
    msg = text(str(args.given_value("msg") or default))
    keys = tuple(_path(m) for m in merge)
    logic = QueryLogic(
        query, args.text("input_placeholder"), args.row_filter, keys, tuple(merge), condition, negate, msg
    )
    return Built(logic, name, tuple(merge))


# --- time windows --------------------------------------------------------------------------------


def _window(col: Col, minutes: int) -> str:
    return f"window(coalesce(CAST({col.sql} AS TIMESTAMP), TIMESTAMP '1900-01-01 00:00:00'), '{minutes} minutes')"


def _positive(args: Arguments, key: str) -> int:
    value = args[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RuleError(f"argument {key!r} must be a positive integer, got {value!r}")
    return value


@_register(
    "is_data_fresh_per_time_window",
    column=REQUIRED,
    window_minutes=REQUIRED,
    min_records_per_window=REQUIRED,
    lookback_windows=None,
    curr_timestamp=None,
)
def _is_data_fresh_per_time_window(args: Arguments) -> Built:
    if args.given_value("curr_timestamp") is not None:
        raise args.refuse("curr_timestamp", "DQX takes a Column object here, which a rule file cannot give")
    col = Col(args["column"])
    minutes, least = _positive(args, "window_minutes"), _positive(args, "min_records_per_window")
    scope = [f"{col.sql} <= current_timestamp()"]
    if args.given_value("lookback_windows") is not None:
        back = _positive(args, "lookback_windows") * minutes * 60
        scope.append(f"{col.sql} >= from_unixtime(unix_timestamp(current_timestamp()) - {back})")
    msg = message(
        text("Data arrival completeness check failed: only "),
        as_string("{count}"),
        text(f" records found in {minutes}-minute interval starting at "),
        as_string("{start}"),
        text(" and ending at "),
        as_string("{end}"),
        text(f", expected at least {least} records"),
    )
    window = _window(col, minutes)
    logic = GroupLogic(
        (window,),
        (("count", "count(1)"), ("start", f"min({window}.start)"), ("end", f"min({window}.end)")),
        f"{{count}} < {least}",
        msg,
        scope=" AND ".join(scope),
    )
    return Built(logic, f"{col.name}_is_data_fresh_per_time_window", (col.display,))


@_register(
    "has_no_gaps_per_time_window",
    column=REQUIRED,
    window_minutes=REQUIRED,
    group_by=None,
    trailing_gap=False,
    curr_timestamp=None,
)
def _has_no_gaps_per_time_window(args: Arguments) -> Built:
    if args.given_value("curr_timestamp") is not None:
        raise args.refuse("curr_timestamp", "DQX takes a Column object here, which a rule file cannot give")
    col, minutes = Col(args["column"]), _positive(args, "window_minutes")
    group_by = args.names("group_by") if args.given_value("group_by") is not None else []
    trailing = args.flag("trailing_gap")
    groups = [_path(g) for g in group_by]
    start = f"{_window(col, minutes)}.start"
    names = [f"__pipes_g{j}" for j in range(len(groups))]
    order = f"PARTITION BY {', '.join(names)} ORDER BY ws" if names else "ORDER BY ws"
    following = f"lead(ws) OVER ({order})"
    anchor = f"window(CAST(current_timestamp() AS TIMESTAMP), '{minutes} minutes').start"
    nxt = f"coalesce({following}, {anchor})" if trailing else following
    selected = ", ".join([*(f"{g} AS {n}" for g, n in zip(groups, names, strict=True)), f"{start} AS ws"])
    query = (
        f"SELECT *, nws IS NOT NULL AND unix_timestamp(nws) - unix_timestamp(ws) > {minutes * 60} AS condition"
        f" FROM (SELECT *, {nxt} AS nws, {following} IS NULL AS trailing"
        f" FROM (SELECT DISTINCT {selected} FROM {{{{ data }}}} WHERE {col.sql} IS NOT NULL))"
    )
    phrase = text(" and the next present window starting at ")
    if trailing:
        phrase = f"CASE WHEN {{trailing}} THEN {text(' and the current time; the current window starts at ')} ELSE {phrase} END"
    msg = message(
        text("Gap in time series: no data between the window starting at "),
        as_string("{ws}"),
        phrase,
        as_string("{nws}"),
    )
    logic = QueryLogic(query, "data", None, (*groups, start), (*names, "ws"), "condition", False, msg)
    return Built(logic, f"{col.name}_has_no_gaps_per_time_window", (col.display,))


# --- schema --------------------------------------------------------------------------------------


@_register(
    "has_valid_schema",
    expected_schema=None,
    ref_df_name=None,
    ref_table=None,
    columns=None,
    strict=False,
    exclude_columns=None,
)
def _has_valid_schema(args: Arguments) -> Built:
    sources = [k for k in ("expected_schema", "ref_df_name", "ref_table") if args.given_value(k) is not None]
    if len(sources) != 1:
        raise RuleError("give exactly one of 'expected_schema', 'ref_df_name' and 'ref_table'")
    if args.row_filter:
        raise RuleError("has_valid_schema takes no filter")
    columns = tuple(args.names("columns")) if args.given_value("columns") is not None else ()
    expected = args.given_value("expected_schema")
    if expected is not None and not isinstance(expected, str):
        raise RuleError(f"argument 'expected_schema' must be a DDL string, got {expected!r}")
    ref = args.given_value("ref_table") or args.given_value("ref_df_name")
    exclude = tuple(args.names("exclude_columns")) if args.given_value("exclude_columns") is not None else ()
    logic = SchemaLogic(
        expected, ref, args.given_value("ref_df_name") is not None, columns, args.flag("strict"), exclude
    )
    return Built(logic, "has_invalid_schema", tuple(unquote(c) for c in columns))


# --- statistics ----------------------------------------------------------------------------------

_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double")


@_register("has_no_outliers", column=REQUIRED)
def _has_no_outliers(args: Arguments) -> Built:
    col = Col(args["column"])
    value = _path(args["column"])
    base = f"SELECT {value} AS v FROM {{{{ data }}}} WHERE {in_scope(args.row_filter)}"
    query = (
        "SELECT CAST(median AS DOUBLE) - 3.5 * CAST(mad AS DOUBLE) AS lo,"
        " CAST(median AS DOUBLE) + 3.5 * CAST(mad AS DOUBLE) AS hi, TRUE AS condition"
        " FROM (SELECT first(median) AS median, percentile_approx(abs(v - median), 0.5) AS mad"
        f" FROM ({base}) CROSS JOIN (SELECT percentile_approx(v, 0.5) AS median FROM ({base})))"
    )
    msg = message(
        text("Value '"), as_string(value), text(f"' in Column '{col.display}' is an outlier as per MAD.")
    )
    logic = QueryLogic(
        query,
        "data",
        None,
        (),
        (),
        "condition",
        False,
        msg,
        row_condition=f"({value} < {{lo}} OR {value} > {{hi}})",
    )
    return Built(logic, f"{col.name}_has_outliers", (col.display,))


@_register(
    "is_in_distribution", column=REQUIRED, distribution=REQUIRED, distance=REQUIRED, case_sensitive=True
)
def _is_in_distribution(args: Arguments) -> Built:
    col = Col(args["column"])
    distribution, distance = args["distribution"], args.number("distance")
    if not isinstance(distribution, dict) or not distribution:
        raise RuleError(
            f"argument 'distribution' must be a non-empty mapping of value -> share, got {distribution!r}"
        )
    shares = list(distribution.values())
    if (
        any(isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0 for p in shares)
        or sum(shares) > 1 + 1e-9
    ):
        raise RuleError(
            "argument 'distribution': the shares must be non-negative numbers adding up to at most 1"
        )
    sensitive = args.flag("case_sensitive")
    value = col.sql if sensitive else f"lower({col.sql})"
    keys = [k.lower() if isinstance(k, str) and not sensitive else k for k in distribution]
    aggregates = [
        (f"c{i}", f"count(CASE WHEN {value} = {literal(k)} THEN 1 END)") for i, k in enumerate(keys)
    ]
    aggregates.append(("total", f"count({value})"))
    listed = " + ".join(f"{{c{i}}}" for i in range(len(keys)))
    terms = [f"abs({float(p)!r} - {{c{i}}} / {{total}})" for i, p in enumerate(shares)]
    terms.append(f"abs({1.0 - math.fsum(shares)!r} - ({{total}} - ({listed})) / {{total}})")
    tvd = f"(0.5 * ({' + '.join(terms)}))"
    fail = f"CASE WHEN {{total}} = 0 THEN FALSE ELSE {tvd} > {distance!r} AND NOT abs({tvd} - {distance!r}) <= 1e-9 END"
    head = text(f"Column '{col.display}' actual distribution deviates from expected by TVD=")
    tail = text(f", which exceeds the allowed distance={args['distance']}.")
    msg = f"concat({head}, format_string('%.6f', {tvd}), {tail})"
    return Built(
        GroupLogic((), tuple(aggregates), fail, msg), f"{col.name}_is_not_in_distribution", (col.display,)
    )


def _reference_view(args: Arguments) -> str:
    """SQL naming the reference data: its table, or the view of a DataFrame of ``dataframes=``."""
    table, frame = args.given_value("ref_table"), args.given_value("ref_df_name")
    if (table is None) == (frame is None):
        raise RuleError("give exactly one of 'ref_df_name' and 'ref_table'")
    return str(table) if table is not None else f"{{{{ {frame} }}}}"


@_register(
    "aggr_matches_dataset",
    column=REQUIRED,
    ref_table=None,
    ref_df_name=None,
    ref_column=None,
    aggr_type="count",
    aggr_params=None,
    group_by=None,
    ref_group_by=None,
    ref_row_filter=None,
    abs_tolerance=None,
    rel_tolerance=None,
)
def _aggr_matches_dataset(args: Arguments) -> Built:
    col, aggr = Col(args["column"]), args["aggr_type"]
    if not isinstance(aggr, str) or not aggr.replace("_", "").isalnum():
        raise RuleError(f"argument 'aggr_type' must name an aggregate function, got {aggr!r}")
    group_by = args.names("group_by") if args.given_value("group_by") is not None else []
    ref_group_by = args.names("ref_group_by") if args.given_value("ref_group_by") is not None else group_by
    if len(ref_group_by) != len(group_by):
        raise RuleError("'ref_group_by' must name as many columns as 'group_by'")
    reference = _reference_view(args)
    ref_column = args.given_value("ref_column") or args["column"]
    star = is_star(args["column"])
    ours = "1" if star else _path(args["column"])
    if args.row_filter:
        ours = f"CASE WHEN {args.row_filter} THEN {ours} END"
    theirs = "1" if is_star(ref_column) else _path(ref_column)
    ref_filter = args.given_value("ref_row_filter")
    names = [f"__pipes_g{j}" for j in range(len(group_by))]
    mine = ", ".join(
        [
            *(f"{_path(g)} AS {n}" for g, n in zip(group_by, names, strict=True)),
            f"{_aggregate(args, aggr, ours)} AS m",
        ]
    )
    other = ", ".join(
        [
            *(f"{_path(g)} AS {n}" for g, n in zip(ref_group_by, names, strict=True)),
            f"{_aggregate(args, aggr, theirs)} AS r",
        ]
    )
    grouping = f" GROUP BY {', '.join(names)}" if names else ""
    where = f" WHERE {ref_filter}" if ref_filter else ""
    on = " AND ".join(f"d.{n} <=> x.{n}" for n in names) or "TRUE"
    unequal = _tolerant(equal=True)("m", "r", args)
    query = (
        f"SELECT {', '.join(f'd.{n}' for n in names) + ', ' if names else ''}d.m, x.r,"
        f" CASE WHEN d.m IS NULL AND x.r IS NULL THEN FALSE WHEN d.m IS NULL OR x.r IS NULL THEN TRUE"
        f" ELSE {unequal} END AS condition"
        f" FROM (SELECT {mine} FROM {{{{ data }}}}{grouping}) d"
        f" LEFT JOIN (SELECT {other} FROM {reference}{where}{grouping}) x ON {on}"
    )
    shown = CURATED.get(aggr, f"'{aggr}'")
    params = args.given_value("aggr_params")
    if params:
        shown += f" ({', '.join(f'{k}={v}' for k, v in params.items())})"
    per_group = f" per group of columns '{', '.join(group_by)}'" if group_by else ""
    table = args.given_value("ref_table")
    where_from = f"table '{table}'" if table else f"DataFrame '{args.given_value('ref_df_name')}'"
    msg = message(
        text(f"{shown} value "),
        as_string("{m}"),
        text(f" in column '{'*' if star else col.display}'{per_group}"),
        text(f" is not equal to {where_from} column '{unquote(str(ref_column))}' limit: "),
        as_string("{r}"),
    )
    logic = QueryLogic(
        query, "data", None, tuple(_path(g) for g in group_by), tuple(names), "condition", False, msg
    )
    suffix = f"_group_by_{'_'.join(group_by)}" if group_by else ""
    name = f"{'' if star else col.name}_{aggr}{suffix}_not_equal_to_upstream_limit".lstrip("_")
    return Built(logic, name, ("*" if star else col.display,))


_INTERVALS = ("minute", "hour", "day", "week", "month")


@_register(
    "has_no_aggr_outliers",
    column=REQUIRED,
    time_column=REQUIRED,
    aggr_type="avg",
    sigma=3.0,
    lookback_num_intervals=14,
    warmup_num_intervals=7,
    time_interval="day",
    group_by=None,
    aggr_params=None,
)
def _has_no_aggr_outliers(args: Arguments) -> Built:
    col, aggr = Col(args["column"]), args["aggr_type"]
    if not isinstance(aggr, str) or not aggr.replace("_", "").isalnum():
        raise RuleError(f"argument 'aggr_type' must name an aggregate function, got {aggr!r}")
    interval = args["time_interval"]
    if interval not in _INTERVALS:
        raise RuleError(f"argument 'time_interval' must be one of {list(_INTERVALS)}, got {interval!r}")
    sigma = args.number("sigma")
    lookback, warmup = args.integer("lookback_num_intervals"), args.integer("warmup_num_intervals")
    if sigma <= 0 or lookback < 2 or not 1 <= warmup <= lookback:
        raise RuleError(
            "need sigma > 0, lookback_num_intervals >= 2 and 1 <= warmup_num_intervals <= lookback"
        )
    group_by = args.names("group_by") if args.given_value("group_by") is not None else []
    names = [f"__pipes_g{j}" for j in range(len(group_by))]
    star = is_star(args["column"])
    value = "1" if star else _path(args["column"])
    if args.row_filter:
        value = f"CASE WHEN {args.row_filter} THEN {value} END"
    keys = ", ".join(f"{_path(g)} AS {n}" for g, n in zip(group_by, names, strict=True))
    part = f"PARTITION BY {', '.join(names)} " if names else ""
    grouped = ", ".join(names)
    query = (
        "SELECT *, CASE WHEN n IS NULL OR n < {w} THEN FALSE WHEN sd IS NULL OR sd = 0 THEN FALSE"
        " WHEN cur IS NULL THEN FALSE ELSE abs(cur - mu) > {s} * sd END AS condition FROM ("
        "SELECT {sel}max(CASE WHEN rn = 1 THEN metric END) AS cur,"
        " avg(CASE WHEN rn BETWEEN 2 AND {lb} THEN metric END) AS mu,"
        " stddev_pop(CASE WHEN rn BETWEEN 2 AND {lb} THEN metric END) AS sd,"
        " nullif(count(CASE WHEN rn BETWEEN 2 AND {lb} THEN metric END), 0) AS n FROM ("
        "SELECT *, row_number() OVER ({part}ORDER BY grain DESC) AS rn FROM ("
        "SELECT {keys}date_trunc('{iv}', {tc}) AS grain, {agg} AS metric FROM {{{{ data }}}} GROUP BY {gb}"
        ")){group})"
    ).format(
        w=warmup,
        s=repr(sigma),
        sel=f"{grouped}, " if grouped else "",
        lb=lookback + 1,
        part=part,
        keys=f"{keys}, " if keys else "",
        iv=interval,
        tc=_path(str(args["time_column"])),
        agg=_aggregate(args, aggr, value),
        gb=", ".join([*names, "grain"]) if names else "grain",
        group=f" GROUP BY {grouped}" if grouped else "",
    )
    msg = message(
        text(f"{aggr}({col.display}): current="),
        as_string("{cur}"),
        text(", baseline="),
        as_string("{mu}"),
        text(", stddev="),
        as_string("{sd}"),
        text(", delta="),
        as_string("abs({cur} - {mu})"),
        text(f" exceeds {sigma!r} x stddev (lookback={lookback} intervals)"),
    )
    logic = QueryLogic(
        query, "data", None, tuple(_path(g) for g in group_by), tuple(names), "condition", False, msg
    )
    suffix = f"_group_by_{'_'.join(group_by)}" if group_by else ""
    name = f"{'' if star else col.name}_{aggr}_outlier{suffix}".lstrip("_")
    return Built(logic, name, (col.display,))


# --- comparison with a reference dataset ---------------------------------------------------------


def _tolerance(args: Arguments, key: str) -> float | int:
    value = args.given_value(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RuleError(f"argument {key!r} must be a non-negative number, got {value!r}")
    return value


@_register(
    "compare_datasets",
    columns=REQUIRED,
    ref_columns=REQUIRED,
    ref_df_name=None,
    ref_table=None,
    check_missing_records=False,
    exclude_columns=None,
    null_safe_row_matching=True,
    null_safe_column_value_matching=True,
    abs_tolerance=None,
    rel_tolerance=None,
    raise_on_duplicate_keys=False,
)
def _compare_datasets(args: Arguments) -> Built:
    columns, ref_columns, by_name, table = _reference_keys(args)
    if args.flag("check_missing_records"):
        raise args.refuse(
            "check_missing_records",
            "it adds a row for each reference row missing from the data, and a check of one DataFrame"
            " annotates exactly its rows; leave it false (DQX's default) and check the reference's keys"
            " against the data with a foreign_key rule on the reference instead",
        )
    exclude = args.names("exclude_columns") if args.given_value("exclude_columns") is not None else []
    logic = CompareLogic(
        tuple(columns),
        tuple(ref_columns),
        by_name if by_name is not None else table,
        by_name is not None,
        tuple(exclude),
        args.flag("null_safe_row_matching"),
        args.flag("null_safe_column_value_matching"),
        _tolerance(args, "abs_tolerance"),
        _tolerance(args, "rel_tolerance"),
        args.row_filter,
        args.flag("raise_on_duplicate_keys"),
    )
    name = normalize(f"datasets_diff_pk_{'_'.join(logic.keys)}_ref_{'_'.join(logic.ref_keys)}")
    return Built(logic, name, logic.keys)
