"""DQX 0.17's row-level check functions as Spark SQL: for each, the condition that flags a row
(NULL flags nothing), its message, and the name DQX gives a rule that has none. Registered in
:data:`ROW_FUNCTIONS`."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster_pipes_spark.spark._checks._dqx._logic import (
    REQUIRED,
    Arguments,
    Built,
    Function,
    JsonSchemaLogic,
    RowLogic,
    RuleError,
    registrar,
)
from dagster_pipes_spark.spark._checks._dqx._patterns import (
    DECIMAL_NUMBER,
    EMAIL_ADDRESS,
    IPV4_ADDRESS,
    IPV4_CIDR_BLOCK,
    ISO_STANDARDS,
    NATIONAL_IDS,
    SUBDIVISIONS,
    URL,
    UUID,
    UUID_STRICT,
    codes,
    python_pattern,
)
from dagster_pipes_spark.spark._checks._dqx._schema import json_schema_sql
from dagster_pipes_spark.spark._checks._dqx._sql import (
    as_string,
    column_name,
    column_sql,
    limit_sql,
    literal,
    message,
    normalize,
    null_text,
    text,
    unquote,
)

ROW_FUNCTIONS: dict[str, Function] = {}


_register = registrar(ROW_FUNCTIONS, "row")


class Col:
    """A rule's column string: its SQL, display text and normalized name."""

    def __init__(self, column: Any, key: str = "column") -> None:
        if not isinstance(column, str) or not column.strip():
            raise RuleError(f"argument {key!r} must be a column name or SQL expression, got {column!r}")
        self.raw = column
        self.sql = column_sql(column)
        self.display = unquote(column)
        self.name = column_name(column)

    def value(self) -> str:
        """The value as text (NULL stays NULL)."""
        return as_string(self.sql)


def _row(col: Col, fail: str, msg: str, suffix: str, udfs: Mapping[str, Any] | None = None) -> Built:
    return Built(RowLogic(fail, msg), f"{col.name}_{suffix}".replace(".", "_"), (col.display,), udfs or {})


def _says(col: Col, what: str) -> str:
    """``Column '<c>' <what>`` as a SQL literal."""
    return text(f"Column '{col.display}' {what}")


def _value_says(col: Col, what: str, *more: str, value: str | None = None) -> str:
    """``Value '<v>' in Column '<c>' <what>...`` as SQL."""
    return message(text("Value '"), value or col.value(), text(f"' in Column '{col.display}' {what}"), *more)


def _trimmed(col: Col, args: Arguments) -> str:
    return f"trim({col.sql})" if args.flag("trim_strings") else col.sql


# --- null and empty ------------------------------------------------------------------------------


@_register("is_not_null", column=REQUIRED)
def _is_not_null(args: Arguments) -> Built:
    col = Col(args["column"])
    return _row(col, f"{col.sql} IS NULL", _says(col, "value is null"), "is_null")


@_register("is_null", column=REQUIRED)
def _is_null(args: Arguments) -> Built:
    col = Col(args["column"])
    return _row(col, f"{col.sql} IS NOT NULL", _says(col, "value is not null"), "is_not_null")


@_register("is_not_empty", column=REQUIRED, trim_strings=False)
def _is_not_empty(args: Arguments) -> Built:
    col = Col(args["column"])
    value = _trimmed(col, args)
    return _row(col, f"CAST({value} AS STRING) = ''", _says(col, "value is empty"), "is_empty")


@_register("is_empty", column=REQUIRED, trim_strings=False)
def _is_empty(args: Arguments) -> Built:
    col = Col(args["column"])
    value = _trimmed(col, args)
    return _row(col, f"CAST({value} AS STRING) != ''", _says(col, "value is not empty"), "is_not_empty")


@_register("is_not_null_and_not_empty", column=REQUIRED, trim_strings=False)
def _is_not_null_and_not_empty(args: Arguments) -> Built:
    col = Col(args["column"])
    value = _trimmed(col, args)
    fail = f"{value} IS NULL OR CAST({value} AS STRING) IS NULL OR CAST({value} AS STRING) = ''"
    return _row(col, fail, _says(col, "value is null or empty"), "is_null_or_empty")


@_register("is_null_or_empty", column=REQUIRED, trim_strings=False)
def _is_null_or_empty(args: Arguments) -> Built:
    col = Col(args["column"])
    value = _trimmed(col, args)
    fail = f"{value} IS NOT NULL AND CAST({value} AS STRING) IS NOT NULL AND CAST({value} AS STRING) != ''"
    return _row(col, fail, _says(col, "value is not null and not empty"), "is_not_null_and_not_empty")


@_register("is_not_null_and_not_empty_array", column=REQUIRED)
def _is_not_null_and_not_empty_array(args: Arguments) -> Built:
    col = Col(args["column"])
    fail = f"{col.sql} IS NULL OR size({col.sql}) = 0"
    return _row(col, fail, _says(col, "is null or empty array"), "is_null_or_empty_array")


# --- lists ---------------------------------------------------------------------------------------


def _items(args: Arguments, key: str) -> tuple[list[str], list[bool]]:
    """The SQL of each item of a list argument (strings are SQL expressions), and which are lists."""
    values = args[key]
    if not isinstance(values, list) or not values:
        raise RuleError(f"argument {key!r} must be a non-empty list, got {values!r}")
    out, arrays = [], []
    for value in values:
        arrays.append(isinstance(value, (list, tuple)))
        out.append(_array(value) if arrays[-1] else limit_sql(value))
    return out, arrays


def _array(values: Sequence[Any]) -> str:
    return f"array({', '.join(literal(v) for v in values)})"


def _lower(sql: str, is_array: bool) -> str:
    return f"transform({sql}, x -> lower(x))" if is_array else f"lower({sql})"


def _in_list(args: Arguments, key: str) -> tuple[Col, str, str]:
    """(column, SQL TRUE when the value is one of the items, the items as message text)."""
    col = Col(args["column"])
    items, arrays = _items(args, key)
    value = col.sql
    compared = items
    if not args.flag("case_sensitive"):
        value = _lower(col.sql, any(arrays))
        compared = [_lower(item, is_array) for item, is_array in zip(items, arrays, strict=True)]
    listed = f"concat_ws(', ', {', '.join(as_string(i) for i in items)})"
    return col, f"{value} IN ({', '.join(compared)})", listed


@_register("is_in_list", column=REQUIRED, allowed=REQUIRED, case_sensitive=True)
def _is_in_list(args: Arguments) -> Built:
    col, found, listed = _in_list(args, "allowed")
    msg = _value_says(col, "is not in the allowed list: [", listed, text("]"), value=null_text(col.sql))
    return _row(col, f"NOT ({found})", msg, "is_not_in_the_list")


@_register("is_not_null_and_is_in_list", column=REQUIRED, allowed=REQUIRED, case_sensitive=True)
def _is_not_null_and_is_in_list(args: Arguments) -> Built:
    col, found, listed = _in_list(args, "allowed")
    msg = _value_says(
        col, "is null or not in the allowed list: [", listed, text("]"), value=null_text(col.sql)
    )
    return _row(col, f"{col.sql} IS NULL OR NOT ({found})", msg, "is_null_or_is_not_in_the_list")


@_register("is_not_in_list", column=REQUIRED, forbidden=REQUIRED, case_sensitive=True)
def _is_not_in_list(args: Arguments) -> Built:
    col, found, listed = _in_list(args, "forbidden")
    msg = _value_says(col, "is in the forbidden list: [", listed, text("]"), value=null_text(col.sql))
    return _row(col, found, msg, "is_in_the_forbidden_list")


# --- comparisons ---------------------------------------------------------------------------------


def _with_nulls(args: Arguments, col: Col, fail: str, msg: str, suffix: str) -> Built:
    """``allow_nulls: false`` also flags NULL values (with their own message and name)."""
    if args.flag("allow_nulls"):
        return _row(col, fail, msg, suffix)
    null_msg = f"CASE WHEN {col.sql} IS NULL THEN {_says(col, 'value is null')} ELSE {msg} END"
    return _row(col, f"{col.sql} IS NULL OR ({fail})", null_msg, f"is_null_or_{suffix}")


def _limit(args: Arguments, key: str) -> str:
    value = args.given_value(key)
    if value is None:
        raise RuleError(f"argument {key!r} is not given (DQX: the limit is not provided)")
    return limit_sql(value)


def _tolerances(args: Arguments) -> tuple[float, float]:
    tolerances = []
    for key in ("abs_tolerance", "rel_tolerance"):
        value = args.given_value(key)
        value = 0.0 if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RuleError(f"argument {key!r} must be a non-negative number, got {value!r}")
        tolerances.append(float(value))
    return tolerances[0], tolerances[1]


def within_tolerance(value: str, limit: str, absolute: float, relative: float) -> str:
    """SQL TRUE when ``value`` is within the absolute or relative tolerance of ``limit``."""
    diff = f"abs({value} - {limit})"
    return (
        f"({diff} <= {literal(absolute)} OR"
        f" {diff} <= {literal(relative)} * greatest(abs({value}), abs({limit})))"
    )


def _equality(args: Arguments, equal: bool) -> Built:
    col = Col(args["column"])
    value = _limit(args, "value")
    absolute, relative = _tolerances(args)
    numeric = isinstance(args.given_value("value"), (int, float)) and not isinstance(
        args.given_value("value"), bool
    )
    if (absolute > 0 or relative > 0) and numeric:
        match = within_tolerance(col.sql, value, absolute, relative)
        fail = f"NOT {match}" if equal else match
    else:
        fail = f"{col.sql} != {value}" if equal else f"{col.sql} = {value}"
    what = "is not equal to value: " if equal else "is equal to value: "
    msg = _value_says(col, what, as_string(value))
    return _with_nulls(args, col, fail, msg, "not_equal_to_value" if equal else "equal_to_value")


_EQUALITY = {
    "column": REQUIRED,
    "value": None,
    "abs_tolerance": None,
    "rel_tolerance": None,
    "allow_nulls": True,
}


@_register("is_equal_to", **_EQUALITY)
def _is_equal_to(args: Arguments) -> Built:
    return _equality(args, equal=True)


@_register("is_not_equal_to", **_EQUALITY)
def _is_not_equal_to(args: Arguments) -> Built:
    return _equality(args, equal=False)


@_register("is_not_less_than", column=REQUIRED, limit=None, allow_nulls=True)
def _is_not_less_than(args: Arguments) -> Built:
    col, limit = Col(args["column"]), _limit(args, "limit")
    msg = _value_says(col, "is less than limit: ", as_string(limit))
    return _with_nulls(args, col, f"{col.sql} < {limit}", msg, "less_than_limit")


@_register("is_not_greater_than", column=REQUIRED, limit=None, allow_nulls=True)
def _is_not_greater_than(args: Arguments) -> Built:
    col, limit = Col(args["column"]), _limit(args, "limit")
    msg = _value_says(col, "is greater than limit: ", as_string(limit))
    return _with_nulls(args, col, f"{col.sql} > {limit}", msg, "greater_than_limit")


def _range(args: Arguments, inside: bool) -> Built:
    col = Col(args["column"])
    low, high = _limit(args, "min_limit"), _limit(args, "max_limit")
    if inside:
        fail, what, suffix = f"{col.sql} >= {low} AND {col.sql} <= {high}", "in range: [", "in_range"
    else:
        fail, what, suffix = f"{col.sql} < {low} OR {col.sql} > {high}", "not in range: [", "not_in_range"
    msg = _value_says(col, what, as_string(low), text(", "), as_string(high), text("]"))
    return _with_nulls(args, col, fail, msg, suffix)


_RANGE = {"column": REQUIRED, "min_limit": None, "max_limit": None, "allow_nulls": True}


@_register("is_in_range", **_RANGE)
def _is_in_range(args: Arguments) -> Built:
    return _range(args, inside=False)


@_register("is_not_in_range", **_RANGE)
def _is_not_in_range(args: Arguments) -> Built:
    return _range(args, inside=True)


@_register("has_num_decimal_places", column=REQUIRED, limit=None, allow_nulls=True)
def _has_num_decimal_places(args: Arguments) -> Built:
    col, limit = Col(args["column"]), _limit(args, "limit")
    value = as_string(col.sql)
    pattern = text(DECIMAL_NUMBER)
    integer = f"regexp_extract({value}, {pattern}, 1)"
    fraction = f"regexp_extract({value}, {pattern}, 2)"
    exponent = f"regexp_extract({value}, {pattern}, 3)"
    exponent_value = f"CASE WHEN {exponent} = '' THEN 0 ELSE CAST({exponent} AS DOUBLE) END"
    zeros = text(r"0+\z")
    significand = f"regexp_replace(concat({integer}, {fraction}), {zeros}, '')"
    trailing = f"(length({integer}) + length({fraction}) - length({significand}))"
    places = (
        f"CASE WHEN {significand} = '' THEN 0"
        f" ELSE greatest(length({fraction}) - {trailing} - {exponent_value}, 0) END"
    )
    null_limit = f"({col.sql} IS NOT NULL AND {limit} IS NULL)"
    numeric = f"{value} RLIKE {pattern}"
    fail = f"{null_limit} OR NOT ({numeric}) OR ({places}) > {limit}"
    msg = (
        f"CASE WHEN {null_limit} THEN {_value_says(col, 'has a null limit', value=value)}"
        f" WHEN NOT ({numeric}) THEN {_value_says(col, 'is not numeric', value=value)}"
        f" ELSE {_value_says(col, 'has more than ', as_string(limit), text(' decimal places'), value=value)} END"
    )
    return _with_nulls(args, col, fail, msg, "num_decimal_places_greater_than_limit")


@_register("sql_expression", expression=REQUIRED, msg=None, name=None, negate=False, columns=None)
def _sql_expression(args: Arguments) -> Built:
    expression = args.text("expression")
    negate = args.flag("negate")
    if negate:
        fail, shown = f"({expression})", f"~({expression})"
        msg = text(f"Value is matching expression: {shown}")
        default = normalize(expression)
    else:
        fail = f"NOT ({expression})"
        msg = text(f"Value is not matching expression: {expression}")
        default = normalize(f"!({expression})")
    given_msg = args.given_value("msg")
    if given_msg is not None:
        if not isinstance(given_msg, str):
            raise RuleError(f"argument 'msg' must be a string, got {given_msg!r}")
        msg = text(given_msg)
    columns = args.names("columns") if args.given_value("columns") is not None else []
    name = args.given_value("name")
    if not name:
        name = default
        if columns:
            name = normalize("_".join(column_name(c) for c in columns) + "_" + default)
    return Built(RowLogic(fail, msg), str(name), tuple(unquote(c) for c in columns))


@_register("regex_match", column=REQUIRED, regex=REQUIRED, negate=False)
def _regex_match(args: Arguments) -> Built:
    col, regex = Col(args["column"]), args.text("regex")
    if args.flag("negate"):
        return _row(col, f"{col.sql} RLIKE {text(regex)}", _says(col, "is matching regex"), "matching_regex")
    fail = f"NOT ({col.sql} RLIKE {text(regex)})"
    return _row(col, fail, _says(col, "is not matching regex"), "not_matching_regex")


# --- strings -------------------------------------------------------------------------------------

_CASES = ("lower", "sentence", "title", "upper")
#: the regular expression of a literal dot, as SQL
_DOT = text(r"\.")


@_register("has_valid_string_case", column=REQUIRED, case=REQUIRED)
def _has_valid_string_case(args: Arguments) -> Built:
    col, case = Col(args["column"]), args["case"]
    if case not in _CASES:
        raise RuleError(f"argument 'case' must be one of {list(_CASES)}, got {case!r}")
    value = as_string(col.sql)
    if case in ("upper", "lower"):
        normalized = f"{case}({value})"
    elif case == "title":
        normalized = (
            f"array_join(transform(split({value}, ' '),"
            " w -> concat(upper(substring(w, 1, 1)), substring(w, 2, length(w)))), ' ')"
        )
    else:
        lead = "length(regexp_extract(s, '^(\\\\s*)', 1))"
        normalized = (
            f"array_join(transform(split({value}, {_DOT}), s -> concat(substring(s, 1, {lead}),"
            f" upper(substring(s, {lead} + 1, 1)), substring(s, {lead} + 2, length(s)))), '.')"
        )
    msg = _value_says(col, f"does not have valid '{case}' string case", value=value)
    return _row(col, f"{value} != {normalized}", msg, f"has_invalid_{case}_string_case")


# --- dates and times -----------------------------------------------------------------------------


def _valid_time(args: Arguments, key: str, what: str) -> Built:
    col = Col(args["column"])
    fmt = args.given_value(key)
    parsed = (
        f"try_to_timestamp({col.sql})" if fmt is None else f"try_to_timestamp({col.sql}, {text(str(fmt))})"
    )
    fail = f"CASE WHEN {col.sql} IS NULL THEN NULL ELSE {parsed} IS NULL END"
    said = f"is not a valid {what}" + (f" with format '{fmt}'" if fmt is not None else "")
    return _row(col, fail, _value_says(col, said), f"is_not_valid_{what}")


@_register("is_valid_date", column=REQUIRED, date_format=None)
def _is_valid_date(args: Arguments) -> Built:
    return _valid_time(args, "date_format", "date")


@_register("is_valid_timestamp", column=REQUIRED, timestamp_format=None)
def _is_valid_timestamp(args: Arguments) -> Built:
    return _valid_time(args, "timestamp_format", "timestamp")


def _no_column_argument(args: Arguments, key: str) -> None:
    if args.given_value(key) is not None:
        raise args.refuse(key, "DQX takes a Column object here, which a rule file cannot give")


@_register("is_not_in_future", column=REQUIRED, offset=0, curr_timestamp=None)
def _is_not_in_future(args: Arguments) -> Built:
    _no_column_argument(args, "curr_timestamp")
    col, offset = Col(args["column"]), args.integer("offset")
    limit = f"from_unixtime(unix_timestamp(current_timestamp()) + {offset})"
    msg = _value_says(col, "is greater than time '", limit, text("'"))
    return _row(col, f"{col.sql} > {limit}", msg, "in_future")


@_register("is_not_in_near_future", column=REQUIRED, offset=0, curr_timestamp=None)
def _is_not_in_near_future(args: Arguments) -> Built:
    _no_column_argument(args, "curr_timestamp")
    col, offset = Col(args["column"]), args.integer("offset")
    near = f"from_unixtime(unix_timestamp(current_timestamp()) + {offset})"
    fail = f"{col.sql} > current_timestamp() AND {col.sql} < {near}"
    msg = _value_says(
        col,
        "is greater than '",
        as_string("current_timestamp()"),
        text(" and smaller than '"),
        near,
        text("'"),
    )
    return _row(col, fail, msg, "in_near_future")


@_register("is_older_than_n_days", column=REQUIRED, days=REQUIRED, curr_date=None, negate=False)
def _is_older_than_n_days(args: Arguments) -> Built:
    _no_column_argument(args, "curr_date")
    col, days = Col(args["column"]), args.integer("days")
    date = f"to_date({col.sql})"
    kept = f"{date} >= date_sub(current_date(), {days})"
    today = as_string("current_date()")
    if args.flag("negate"):
        msg = message(
            text("Value '"),
            as_string(date),
            text(f"' in Column '{col.display}' is less than current date '"),
            today,
            text(f"' for {days} or more days"),
        )
        return Built(
            RowLogic(f"NOT ({kept})", msg), f"is_col_{col.name}_not_older_than_n_days", (col.display,)
        )
    msg = message(
        text("Value '"),
        as_string(date),
        text(f"' in Column '{col.display}' is not less than current date '"),
        today,
        text(f"' for more than {days} days"),
    )
    return Built(RowLogic(kept, msg), f"is_col_{col.name}_older_than_n_days", (col.display,))


@_register("is_older_than_col2_for_n_days", column1=REQUIRED, column2=REQUIRED, days=0, negate=False)
def _is_older_than_col2_for_n_days(args: Arguments) -> Built:
    one, two, days = Col(args["column1"], "column1"), Col(args["column2"], "column2"), args.integer("days")
    first, second = f"to_date({one.sql})", f"to_date({two.sql})"
    kept = f"{first} >= date_sub({second}, {days})"
    columns = (one.display, two.display)
    if args.flag("negate"):
        msg = message(
            text("Value '"),
            as_string(first),
            text(f"' in Column '{one.display}' is less than Value '"),
            as_string(second),
            text(f"' in Column '{two.display}' for {days} or more days"),
        )
        name = f"is_col_{one.name}_not_older_than_{two.name}_for_n_days"
        return Built(RowLogic(f"NOT ({kept})", msg), name, columns)
    msg = message(
        text("Value '"),
        as_string(first),
        text(f"' in Column '{one.display}' is not less than Value '"),
        as_string(second),
        text(f"' in Column '{two.display}' for more than {days} days"),
    )
    return Built(RowLogic(kept, msg), f"is_col_{one.name}_older_than_{two.name}_for_n_days", columns)


@_register("is_data_fresh", column=REQUIRED, max_age_minutes=REQUIRED, base_timestamp=None)
def _is_data_fresh(args: Arguments) -> Built:
    col, minutes = Col(args["column"]), args.integer("max_age_minutes")
    given = args.given_value("base_timestamp")
    base = "current_timestamp()" if given is None else limit_sql(given)
    fail = f"{col.sql} < {base} - INTERVAL {minutes} MINUTES"
    msg = _value_says(
        col, f"is older than {minutes} minutes from base timestamp '", as_string(base), text("'")
    )
    return _row(col, fail, msg, "is_data_fresh")


# --- patterns ------------------------------------------------------------------------------------


def _pattern(col: Col, name: str, pattern: str) -> Built:
    fail = f"CASE WHEN {col.sql} IS NOT NULL THEN NOT ({col.sql} RLIKE {text(pattern)}) END"
    msg = _value_says(col, f"does not match pattern '{name}'")
    return _row(col, fail, msg, f"does_not_match_pattern_{name.lower()}")


@_register("is_valid_ipv4_address", column=REQUIRED)
def _is_valid_ipv4_address(args: Arguments) -> Built:
    return _pattern(Col(args["column"]), "IPV4_ADDRESS", IPV4_ADDRESS)


@_register("is_valid_email", column=REQUIRED)
def _is_valid_email(args: Arguments) -> Built:
    return _pattern(Col(args["column"]), "EMAIL_ADDRESS", EMAIL_ADDRESS)


@_register("is_valid_url", column=REQUIRED)
def _is_valid_url(args: Arguments) -> Built:
    return _pattern(Col(args["column"]), "URL", URL)


@_register("is_valid_uuid", column=REQUIRED, strict=False)
def _is_valid_uuid(args: Arguments) -> Built:
    if args.flag("strict"):
        return _pattern(Col(args["column"]), "UUID_STRICT", UUID_STRICT)
    return _pattern(Col(args["column"]), "UUID", UUID)


@_register("is_valid_national_id", column=REQUIRED, country="US")
def _is_valid_national_id(args: Arguments) -> Built:
    country = args["country"]
    if not isinstance(country, str) or country.upper() not in NATIONAL_IDS:
        raise RuleError(f"argument 'country' must be one of {sorted(NATIONAL_IDS)}, got {country!r}")
    name, pattern = NATIONAL_IDS[country.upper()]
    return _pattern(Col(args["column"]), name, pattern)


def _ipv4_bits(sql: str, pattern: str) -> str:
    matched = f"split(regexp_extract({sql}, {text(pattern)}, 0), {_DOT})"
    octets = [f"lpad(conv({matched}[{i}], 10, 2), 8, '0')" for i in range(4)]
    return f"concat({', '.join(octets)})"


@_register("is_ipv4_address_in_cidr", column=REQUIRED, cidr_block=REQUIRED)
def _is_ipv4_address_in_cidr(args: Arguments) -> Built:
    cidr = args.text("cidr_block")
    match = re.match(python_pattern(IPV4_CIDR_BLOCK), cidr)
    if not match:
        raise RuleError(f"argument 'cidr_block': {cidr!r} is not a valid IPv4 CIDR block")
    col = Col(args["column"])
    prefix = int(match.group(5))
    network = "".join(f"{int(octet):08b}" for octet in match.groups()[:4])[:prefix].ljust(32, "0")
    invalid = f"CASE WHEN {col.sql} IS NOT NULL THEN NOT ({col.sql} RLIKE {text(IPV4_ADDRESS)}) END"
    ours = f"rpad(substring({_ipv4_bits(col.sql, IPV4_ADDRESS)}, 1, {prefix}), 32, '0')"
    fail = f"coalesce({invalid}, false) OR {ours} != {text(network)}"
    not_ip = _value_says(col, "does not match pattern 'IPV4_ADDRESS'")
    outside = _value_says(col, f"is not in the CIDR block '{cidr}'")
    msg = f"CASE WHEN coalesce({invalid}, false) THEN {not_ip} ELSE {outside} END"
    return _row(col, fail, msg, "is_not_ipv4_in_cidr")


def ipv6_functions() -> tuple[Callable[[Any], bool], Callable[[Any, Any], bool]]:
    """Whether a value is an IPv6 address as Python's ``ipaddress`` reads one (what DQX asks), and
    whether it is one in a network (host bits allowed). Built here, not at module level, so that
    Spark ships them by value to Python workers that do not have this package."""

    def is_ipv6(value: Any) -> bool:
        import ipaddress

        if value is None:
            return False
        try:
            ipaddress.IPv6Address(str(value))
        except (ipaddress.AddressValueError, TypeError, ValueError):
            return False
        return True

    def ipv6_in_network(value: Any, cidr: Any) -> bool:
        import ipaddress

        if value is None or cidr is None:
            return False
        try:
            return ipaddress.IPv6Address(str(value)) in ipaddress.IPv6Network(str(cidr), strict=False)
        except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, TypeError, ValueError):
            return False

    return is_ipv6, ipv6_in_network


IS_IPV6 = "__pipes_dqx_is_ipv6"
IPV6_IN_NETWORK = "__pipes_dqx_ipv6_in_network"


@_register("is_valid_ipv6_address", column=REQUIRED)
def _is_valid_ipv6_address(args: Arguments) -> Built:
    col = Col(args["column"])
    fail = f"CASE WHEN {col.sql} IS NOT NULL THEN NOT {IS_IPV6}({col.sql}) END"
    msg = _value_says(col, "does not match pattern 'IPV6_ADDRESS'")
    return _row(col, fail, msg, "does_not_match_pattern_ipv6_address", {IS_IPV6: ipv6_functions()[0]})


@_register("is_ipv6_address_in_cidr", column=REQUIRED, cidr_block=REQUIRED)
def _is_ipv6_address_in_cidr(args: Arguments) -> Built:
    cidr = args.text("cidr_block")
    try:
        valid = "/" in cidr and bool(ipaddress.IPv6Network(cidr, strict=False))
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        valid = False
    if not valid:
        raise RuleError(f"argument 'cidr_block': {cidr!r} is not a valid IPv6 CIDR block")
    col = Col(args["column"])
    fail = (
        f"CASE WHEN {col.sql} IS NULL THEN NULL WHEN NOT {IS_IPV6}({col.sql}) THEN TRUE"
        f" ELSE NOT {IPV6_IN_NETWORK}({col.sql}, {text(cidr)}) END"
    )
    not_ip = _value_says(col, "does not match pattern 'IPV6_ADDRESS'")
    outside = _value_says(col, f"is not in the CIDR block '{cidr}'")
    msg = f"CASE WHEN NOT {IS_IPV6}({col.sql}) THEN {not_ip} ELSE {outside} END"
    is_ipv6, in_network = ipv6_functions()
    udfs = {IS_IPV6: is_ipv6, IPV6_IN_NETWORK: in_network}
    return _row(col, fail, msg, "is_not_ipv6_in_cidr", udfs)


# --- codes ---------------------------------------------------------------------------------------


def _iso(args: Arguments, standard: str) -> Built:
    kind, files = ISO_STANDARDS[standard]
    fmt = args["code_format"]
    if not isinstance(fmt, str) or fmt.lower() not in files:
        raise RuleError(f"argument 'code_format' must be one of {sorted(files)}, got {fmt!r}")
    col = Col(args["column"])
    values = codes(files[fmt.lower()])
    if fmt.lower() == "numeric":
        value = as_string(col.sql)
    elif args.flag("case_sensitive"):
        value = col.sql
    else:
        value, values = f"lower({col.sql})", tuple(v.lower() for v in values)
    fail = f"NOT ({value} IN ({', '.join(text(v) for v in values)}))"
    msg = _value_says(col, f"is not a valid {standard} {kind} code")
    return _row(col, fail, msg, f"is_not_a_valid_{kind}_code")


@_register("is_valid_country_code", column=REQUIRED, code_format="alpha-2", case_sensitive=True)
def _is_valid_country_code(args: Arguments) -> Built:
    return _iso(args, "ISO 3166-1")


@_register("is_valid_currency_code", column=REQUIRED, code_format="alphabetic", case_sensitive=True)
def _is_valid_currency_code(args: Arguments) -> Built:
    return _iso(args, "ISO 4217")


@_register("is_valid_language_code", column=REQUIRED, code_format="alpha-2", case_sensitive=True)
def _is_valid_language_code(args: Arguments) -> Built:
    return _iso(args, "ISO 639")


@_register("is_valid_subdivision_code", column=REQUIRED, case_sensitive=True, country_column=None)
def _is_valid_subdivision_code(args: Arguments) -> Built:
    col = Col(args["column"])
    values = codes(SUBDIVISIONS)
    sensitive = args.flag("case_sensitive")
    value = col.sql if sensitive else f"lower({col.sql})"
    if not sensitive:
        values = tuple(v.lower() for v in values)
    invalid = f"NOT ({value} IN ({', '.join(text(v) for v in values)}))"
    given = args.given_value("country_column")
    if given is None:
        msg = _value_says(col, "is not a valid ISO 3166-2 subdivision code")
        return _row(col, invalid, msg, "is_not_a_valid_subdivision_code")
    country = Col(given, "country_column")
    compared = country.sql if sensitive else f"lower({country.sql})"
    fail = f"{invalid} OR split({value}, '-')[0] != {compared}"
    msg = _value_says(
        col,
        "is not a valid ISO 3166-2 subdivision code for country '",
        null_text(country.sql),
        text(f"' in Column '{country.display}'"),
    )
    return _row(col, fail, msg, "is_not_a_valid_subdivision_code")


# --- JSON ----------------------------------------------------------------------------------------


def _invalid_json(col: Col) -> str:
    return f"NOT (CASE WHEN {col.sql} IS NOT NULL THEN try_parse_json({col.sql}) IS NOT NULL END)"


def _invalid_json_message(col: Col) -> str:
    return _value_says(col, "is not a valid JSON string")


@_register("is_valid_json", column=REQUIRED)
def _is_valid_json(args: Arguments) -> Built:
    col = Col(args["column"])
    return _row(col, _invalid_json(col), _invalid_json_message(col), "is_not_valid_json")


@_register("has_json_keys", column=REQUIRED, keys=REQUIRED, require_all=True)
def _has_json_keys(args: Arguments) -> Built:
    col, keys = Col(args["column"]), args["keys"]
    if not isinstance(keys, list) or not keys or any(not isinstance(k, str) for k in keys):
        raise RuleError(f"argument 'keys' must be a non-empty list of strings, got {keys!r}")
    found = f"json_object_keys({col.sql})"
    required = f"array_distinct({_array(keys)})"
    if args.flag("require_all"):
        valid = f"size(array_except({required}, {found})) = 0"
    else:
        valid = f"arrays_overlap({found}, {required})"
    invalid = f"coalesce({_invalid_json(col)}, false)"
    kept = f"(CASE WHEN NOT {invalid} THEN {valid} ELSE FALSE END) OR {col.sql} IS NULL"
    listed = f"concat_ws(', ', {_array(keys)})"
    missing = _value_says(col, "is missing keys in the list: [", listed, text("]"), value=null_text(col.sql))
    msg = f"CASE WHEN {invalid} THEN {_invalid_json_message(col)} ELSE {missing} END"
    return _row(col, f"NOT ({kept})", msg, "does_not_have_json_keys")


@_register("has_valid_json_schema", column=REQUIRED, schema=REQUIRED)
def _has_valid_json_schema(args: Arguments) -> Built:
    col, schema = Col(args["column"]), args.text("schema")
    logic = JsonSchemaLogic(col.sql, col.display, schema)
    return Built(logic, f"{col.name}_has_invalid_json_schema", (col.display,))


def json_schema_condition(df: Any, logic: JsonSchemaLogic) -> tuple[str, str]:
    """``(fail, message)`` SQL of a ``has_valid_json_schema`` rule (its schema parsed by ``df``'s
    session); invalid JSON is flagged with ``is_valid_json``'s message."""
    col = Col(logic.display if logic.column == column_sql(logic.display) else logic.column)
    col.sql, col.display = logic.column, logic.display
    invalid = f"coalesce({_invalid_json(col)}, false)"
    return json_schema_sql(df, logic, invalid, _invalid_json_message(col))
