"""Reading Spark's JVM objects through py4j: Scala ``Option`` / ``Seq`` / ``Map`` values, class
names, schemas, and an exception's first line."""

from __future__ import annotations

from typing import Any

from dagster_pipes_spark.spark._metadata import columns_from_schema_json

JavaObject = Any  # a py4j JavaObject (or a test double answering the same method names)


def opt(option: JavaObject) -> JavaObject | None:
    """The value of a ``scala.Option``, or ``None``."""
    if option is None:
        return None
    return option.get() if option.isDefined() else None


def call_chain(obj: JavaObject, names: tuple[str, ...]) -> JavaObject:
    """``obj.a().b()...`` for ``names`` ``("a", "b", ...)``."""
    for attr in names:
        obj = getattr(obj, attr)()
    return obj


def simple_name(obj: JavaObject) -> str:
    return str(obj.getClass().getSimpleName())


def plan_columns(plan: JavaObject) -> list[tuple[str, str]] | None:
    """Columns of a ``LogicalPlan`` or ``Dataset`` (anything with ``.schema()``)."""
    try:
        return columns_from_schema_json(str(plan.schema().json()))
    except Exception:
        return None


def struct_columns(struct: JavaObject) -> list[tuple[str, str]] | None:
    """Columns of a ``StructType``."""
    try:
        return columns_from_schema_json(str(struct.json()))
    except Exception:
        return None


def seq_items(seq: JavaObject) -> list[JavaObject]:
    """The elements of a Scala ``Seq``."""
    return [seq.apply(i) for i in range(seq.size())]


def scala_map(mapping: JavaObject) -> dict[str, str]:
    out: dict[str, str] = {}
    iterator = mapping.iterator()
    while iterator.hasNext():
        pair = iterator.next()
        out[str(pair._1())] = str(pair._2())
    return out


def option_of(options: JavaObject, key: str) -> str | None:
    """A write option by case-insensitive name from a Scala ``Map[String, String]``."""
    for name, value in scala_map(options).items():
        if name.lower() == key.lower():
            return value
    return None


def error_text(exception: JavaObject) -> str:
    try:
        text = str(exception.getMessage() or exception.toString())
    except Exception:
        text = str(exception)
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return first[:500]
