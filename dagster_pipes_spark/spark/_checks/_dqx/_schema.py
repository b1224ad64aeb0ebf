"""``has_valid_schema``: the data's schema against an expected one (a DDL string, or another table's
or DataFrame's schema), strictly (names, order, types, nullability) or permissively (the expected
columns present, with compatible types: numbers with numbers, strings with strings, dates and
timestamps together, containers by their elements, a variant with anything). Made before the job:
the rule flags every row or none. Imports pyspark when called."""

from __future__ import annotations

from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark.spark._checks._dqx._logic import JsonSchemaLogic, SchemaLogic

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import DataType, StructType


def _compatible_atomic(actual: DataType, expected: DataType) -> bool:
    from pyspark.sql import types as t

    families = (
        (t.ByteType, t.ShortType, t.IntegerType, t.LongType, t.DecimalType, t.FloatType, t.DoubleType),
        (t.CharType, t.VarcharType, t.StringType),
        (t.DateType, t.TimestampNTZType, t.TimestampType),
    )
    return actual == expected or any(type(actual) in f and type(expected) in f for f in families)


def compatible(actual: DataType, expected: DataType) -> bool:
    """Whether a column of type ``actual`` passes for ``expected`` (permissive comparison)."""
    from pyspark.sql import types as t

    if actual == expected:
        return True
    if isinstance(actual, t.AtomicType) and isinstance(expected, t.AtomicType):
        return _compatible_atomic(actual, expected)
    if isinstance(actual, t.ArrayType) and isinstance(expected, t.ArrayType):
        return compatible(actual.elementType, expected.elementType)
    if isinstance(actual, t.MapType) and isinstance(expected, t.MapType):
        return compatible(actual.keyType, expected.keyType) and compatible(
            actual.valueType, expected.valueType
        )
    if isinstance(actual, t.StructType) and isinstance(expected, t.StructType):
        return len(actual.fields) == len(expected.fields) and all(
            a.name == e.name and compatible(a.dataType, e.dataType)
            for a, e in zip(actual.fields, expected.fields, strict=True)
        )
    return isinstance(actual, t.VariantType)


def _strict(actual: StructType, expected: StructType) -> list[str]:
    if actual == expected:
        return []
    errors = []
    for i, (a, e) in enumerate(zip_longest(actual.fields, expected.fields)):
        if a is None:
            errors.append(f"Column '{e.name}' in expected schema not present in checked data")
            continue
        if e is None:
            errors.append(f"Column '{a.name}' in checked data not present in expected schema")
            continue
        if a.name != e.name:
            errors.append(f"Column with index {i} has incorrect name, expected '{e.name}', got '{a.name}'")
        if a.dataType != e.dataType:
            errors.append(
                f"Column '{a.name}' has incorrect type, expected '{e.dataType.typeName()}', got"
                f" '{a.dataType.typeName()}'"
            )
        if a.nullable != e.nullable:
            errors.append(
                f"Column '{a.name}' has incorrect nullability, expected '{e.nullable}', got '{a.nullable}'"
            )
    return errors


def _permissive(actual: StructType, expected: StructType) -> list[str]:
    fields = {f.name: f for f in actual.fields}
    errors = []
    for e in expected.fields:
        a = fields.get(e.name)
        if a is None:
            errors.append(f"Column '{e.name}' in expected schema not present in checked data")
        elif not compatible(a.dataType, e.dataType):
            errors.append(
                f"Column '{e.name}' has incompatible type, expected '{e.dataType.typeName()}', got"
                f" '{a.dataType.typeName()}'"
            )
    return errors


def schema_errors(df: DataFrame, logic: SchemaLogic, to: Any) -> list[str]:
    """What differs between ``df``'s schema and the expected one (empty: valid)."""
    if logic.expected is not None:  # the DDL parsed by Spark itself, classic or Connect
        expected = df.sparkSession.createDataFrame([], logic.expected).schema
    elif isinstance(to, str):
        expected = df.sparkSession.table(to).schema
    else:
        expected = to.schema
    if logic.exclude:  # DQX: the selected (or all) columns but the excluded ones, by name
        selected = [c for c in (logic.columns or tuple(df.columns)) if c not in set(logic.exclude)]
        actual = df.select(*selected).schema
    else:
        actual = df.select(*logic.columns).schema if logic.columns else df.schema
    return _strict(actual, expected) if logic.strict else _permissive(actual, expected)


def _presence(schema: StructType, ref: str, depth: int = 0) -> list[str]:
    """SQL TRUE when each NOT NULL field (nested ones when their parent is there) is present."""
    from pyspark.sql import types as t

    if depth > MAX_JSON_DEPTH:
        return []
    out = []
    for f in schema.fields:
        field = f"{ref}.`{f.name.replace('`', '``')}`"
        if not f.nullable:
            out.append(f"{field} IS NOT NULL")
        if isinstance(f.dataType, t.StructType):
            children = _presence(f.dataType, field, depth + 1)
            out += [f"({field} IS NULL OR {c})" if f.nullable else c for c in children]
    return out


#: nested struct levels whose NOT NULL fields are checked
MAX_JSON_DEPTH = 10
_CORRUPT = "__pipes_dqx_corrupt_record"


def json_schema_sql(
    df: DataFrame, logic: JsonSchemaLogic, invalid: str, invalid_message: str
) -> tuple[str, str]:
    """``(fail, message)`` SQL of ``has_valid_json_schema``: the text parsed with the schema (a
    record Spark cannot read marks itself), every NOT NULL field present; NULL passes."""
    from pyspark.sql import types as t

    from dagster_pipes_spark.spark._checks._dqx._sql import message, null_text, text

    expected = df.sparkSession.createDataFrame([], logic.schema).schema
    extended = t.StructType([*expected.fields, t.StructField(_CORRUPT, t.StringType(), True)])
    parsed = (
        f"from_json({logic.column}, {text(extended.simpleString())},"
        f" map('columnNameOfCorruptRecord', '{_CORRUPT}'))"
    )
    present = [f"coalesce({p}, FALSE)" for p in _presence(expected, parsed)]
    missing = f"array_contains(array({', '.join(present)}), FALSE)" if present else "FALSE"
    conforms = f"NOT {invalid} AND {parsed}.{_CORRUPT} IS NULL AND NOT {missing}"
    fail = f"NOT (({conforms}) OR {logic.column} IS NULL)"
    shown = message(
        text("Value '"),
        null_text(logic.column),
        text(
            f"' in Column '{logic.display}' does not conform to expected JSON schema: {expected.simpleString()}"
        ),
    )
    return fail, f"CASE WHEN {invalid} THEN {invalid_message} ELSE {shown} END"
