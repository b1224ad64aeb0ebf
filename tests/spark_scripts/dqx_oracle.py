"""DQX's side of the DQX-oracle comparison: one table built to hit every DQX 0.17 check function's
edge cases (seeded, a few hundred rows) with the reference DataFrames its rules name, and DQX's own
engine (``DQEngineCore.apply_checks_by_metadata``, a mocked workspace client) applying the rules of
``tests/dqx/checks.yml`` to it: per rule the row ids DQX flags.

Kept apart from the library's side (``dqx_parity_job.py``) because DQX's verdicts are a function of
this module, the rules and DQX's environment alone: ``tests/test_dqx_parity.py`` keys its recorded
verdicts on their digest, and an edit here runs DQX again.

Nothing here depends on the clock: every date is in the year 2000 or 2200.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import time
from decimal import Decimal
from typing import Any

SEED = 20240617
N = 360

# --- the data -------------------------------------------------------------------------------------

# fmt: off  (one line per edge-case list)
TEXT = [
    None,
    "",
    " ",
    "  ",
    "\t",
    "abc",
    "ABC",
    "Abc",
    "Hello World",
    "hello world",
    "Hello world. next one",
    "hello. World",
    "Hello.world",
    "x",
    "ÄÖü",
    "äöü",
    "123",
    "Hello  World",
    " lead",
    "trail ",
    "A1 b2",
    "UPPER CASE",
    "lower case",
    "Title Case Words",
    "Hello\tworld",
    "e.g. this",
]
STATUS = [None, "", "a", "b", "c", "A", "B", "x", " a", "a ", "C", "b"]
NUM_STR = [
    "1",
    "1.25",
    "-1.25",
    "+1.",
    ".5",
    "1.5e3",
    "1.0E-4",
    "abc",
    " 1.5",
    "NaN",
    "",
    None,
    "1.250",
    "1e-10",
    "12.3456",
    "-0.001",
    "Infinity",
    "1,5",
    "0.10",
    "100",
]
DECIMALS = [
    Decimal("1.5"),
    Decimal("1.25"),
    Decimal("1.12345678"),
    Decimal("0"),
    Decimal("-3.1"),
    None,
    Decimal("100.10000000"),
    Decimal("2.125"),
    Decimal("-0.00000001"),
    Decimal("99999999.99"),
]
DATE_STR = [
    "2000-01-31",
    "2000-02-30",
    "2000-02-29",
    "2001-02-29",
    "31/01/2000",
    "2000-1-5",
    "",
    None,
    "abc",
    "2000-13-01",
    " 2000-01-01",
    "20000131",
    "01/31/2000",
    "2200-12-31",
    "2000-01-31T00:00:00",
]
TS_STR = [
    "2000-01-31 10:00:00",
    "2000-01-31T10:00:00",
    "2000-01-31 25:00:00",
    "2000-01-31",
    "31/01/2000 10:00",
    "",
    None,
    "abc",
    "2000-01-31 10:00:00.123",
    "2200-06-01 00:00:00",
    "2000-02-30 10:00:00",
    "2000-01-31 10:61:00",
    "01/31/2000 10:00:00",
    "2000-01-31 10:00",
]
IPV4 = [
    "0.0.0.0",
    "255.255.255.255",
    "256.1.1.1",
    "192.168.1.1",
    "192.168.01.1",
    "010.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    "",
    None,
    " 1.2.3.4",
    "10.0.0.255",
    "10.0.1.0",
    "10.0.0.0",
    "9.255.255.255",
    "172.16.0.1",
    "a.b.c.d",
    "1.2.3.04",
    "192.168.1.1 ",
    "10.255.255.255",
    "11.0.0.0",
    "-1.2.3.4",
    "1..2.3",
]
IPV6 = [
    "::",
    "::1",
    "::ffff:192.168.1.1",
    "fe80::1%eth0",
    "2001:db8::1",
    "2001:DB8::1",
    "2001:db8:0:0:0:0:0:1",
    "2001:db8::g",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db9::",
    "",
    None,
    ":::",
    "fe80::",
    "::ffff:10.0.0.1",
    "2001:0db8:0000::0001",
    "1::2::3",
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
    "::ffff:0.0.0.0",
    "1.2.3.4",
    "02001:db8::1",
    " ::1",
    "2001:db8::/32",
    "fe80::1%25eth0",
    "::ffff:256.1.1.1",
    "1:2:3:4:5:6:1.2.3.4",
]
EMAIL = [
    "a@b.com",
    "a.b+c@d.co.uk",
    "a@b",
    "@b.com",
    "a b@c.com",
    "",
    None,
    "A@B.COM",
    "a@@b.com",
    "a@b..com",
    "first.last@sub.example.org",
    "a@b.c",
    "a_b-c@d-e.io",
    "a@-b.com",
    ".a@b.com",
]
URL = [
    "http://example.com",
    "https://example.com/a?b=c",
    "ftp://x.org",
    "example.com",
    "http://",
    "",
    None,
    "https://sub.domain.co.uk:8080/path",
    "http://localhost",
    "http://256.1.1.1",
    "HTTPS://EXAMPLE.COM",
    "https://exa mple.com",
    "mailto:a@b.com",
    "http://[::1]:80/",
    "https://a.b/c#d",
]
UUIDS = [
    "123e4567-e89b-12d3-a456-426614174000",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "123E4567-E89B-12D3-A456-426614174000",
    "123e4567e89b12d3a456426614174000",
    "123e4567-e89b-92d3-a456-426614174000",
    "123e4567-e89b-12d3-c456-426614174000",
    "",
    None,
    "not-a-uuid",
    "{123e4567-e89b-12d3-a456-426614174000}",
    "123e4567-e89b-42d3-8456-42661417400g",
    "123e4567-e89b-42d3-8456-426614174000",
]
NATIONAL_ID = [
    "123-45-6789",
    "123 45 6789",
    "123456789",
    "123-45 6789",
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "123-00-6789",
    "123-45-0000",
    "",
    None,
    "AB123456C",
    "QQ123456C",
    "AB123456E",
    "ABCPD1234E",
    "ABCXD1234E",
    "abcpd1234e",
    "ab123456c",
    "1234-5-6789",
    "078-05-1120",
]
COUNTRY = [
    "US",
    "us",
    "GB",
    "XX",
    "USA",
    "usa",
    "840",
    "999",
    "",
    None,
    "DE",
    " US",
    "GBR",
    "826",
    "Us",
    "ZZZ",
]
CURRENCY = ["USD", "usd", "EUR", "XXX", "ABC", "840", "978", "000", "", None, "US", "GBP", "Eur", "826"]
SUBDIVISION = [
    "US-CA",
    "us-ca",
    "GB-ENG",
    "DE-BY",
    "US-BY",
    "US-XX",
    "",
    None,
    "CA",
    "FR-75",
    "US-NY",
    "gb-eng",
]
SUB_COUNTRY = ["US", "GB", "US", "DE", "US", "US", "US", None, "US", "FR", "us", "GB", "DE"]
LANGUAGE = ["en", "EN", "fr", "xx", "eng", "fra", "zzz", "", None, "en-US", "De", "deu", "ger", "qaa"]
JSON = [
    '{"a": 1, "b": "x"}',
    '{"a": 1}',
    '{"b": 2}',
    "[1,2]",
    '{"a": null, "b": null}',
    "{a:1}",
    "",
    None,
    "null",
    '"str"',
    "123",
    '{"a": {"c": 1}}',
    '{"a": "x", "b": 1}',
    '{"a": 1,}',
    '{"A": 1, "B": 2}',
    '{"a": 1, "b": "x", "c": [1]}',
    '  {"a": 2}  ',
    "{}",
]
ARRAYS: list[Any] = [None, [], [1], [1, 2], [None], [None, None]]
NAMES = ["x", "x ", "X", " x", None, "y", "z", "", "y"]
GROUPS = ["g1", "g2", "g3", None]
# fmt: on


def _cycle(values: list[Any], i: int, stride: int = 1) -> Any:
    return values[(i * stride) % len(values)]


def rows() -> list[dict[str, Any]]:
    """The checked table's rows (seeded; ``id`` is the row's identity)."""
    rng = random.Random(SEED)
    out = []
    base = dt.datetime(2000, 1, 1)
    for i in range(N):
        far = i % 9 == 4  # a tenth of the dates in 2200
        day = dt.date(2200, 3, 1) if far else dt.date(2000, 1, 1)
        d = day + dt.timedelta(days=rng.randrange(0, 90))
        d2 = d + dt.timedelta(days=rng.randrange(-20, 20))
        ts = dt.datetime.combine(d, dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60)))
        hour = i if i % 37 not in (5, 6, 7) else i + 400  # gaps in the hourly series
        out.append(
            {
                "id": i,
                "grp": _cycle(GROUPS, i),
                "k1": None if i % 23 == 0 else i % 50,
                "k2": None if i % 19 == 0 else _cycle(["p", "q"], i // 50),
                "uname": _cycle(NAMES, i, 7),
                "s_text": _cycle(TEXT, i),
                "status": _cycle(STATUS, i, 5),
                "val_a": None if i % 13 == 0 else rng.randrange(-5, 26),
                "val_b": None if i % 17 == 0 else rng.randrange(-5, 26),
                "amount": None
                if i % 29 == 0
                else (float("nan") if i == 101 else round(rng.uniform(-10, 110), 3)),
                "dec": _cycle(DECIMALS, i, 3),
                "num_str": _cycle(NUM_STR, i),
                "d": None if i % 31 == 0 else d,
                "d2": None if i % 41 == 0 else d2,
                "ts": None if i % 43 == 0 else ts,
                "ts2": ts - dt.timedelta(minutes=rng.randrange(0, 3000)),
                "event_ts": base + dt.timedelta(hours=hour // 2, minutes=rng.randrange(0, 60)),
                "date_str": _cycle(DATE_STR, i),
                "ts_str": _cycle(TS_STR, i),
                "ip4": _cycle(IPV4, i),
                "ip6": _cycle(IPV6, i),
                "email": _cycle(EMAIL, i),
                "url": _cycle(URL, i),
                "uuid": _cycle(UUIDS, i),
                "national_id": _cycle(NATIONAL_ID, i),
                "country": _cycle(COUNTRY, i),
                "currency": _cycle(CURRENCY, i),
                "subdivision": _cycle(SUBDIVISION, i),
                "sub_country": _cycle(SUB_COUNTRY, i),
                "language": _cycle(LANGUAGE, i),
                "payload": _cycle(JSON, i),
                "arr": _cycle(ARRAYS, i),
                "fk": None if i % 27 == 0 else i % 40,
                "fk_s": None if i % 27 == 1 else f"k{i % 35}",
                "flag": i % 5 != 0,
            }
        )
    return out


SCHEMA = (
    "id BIGINT, grp STRING, k1 INT, k2 STRING, uname STRING, s_text STRING, status STRING, val_a INT, "
    "val_b INT, amount DOUBLE, dec DECIMAL(20,8), num_str STRING, d DATE, d2 DATE, ts TIMESTAMP, "
    "ts2 TIMESTAMP, event_ts TIMESTAMP, date_str STRING, ts_str STRING, ip4 STRING, ip6 STRING, "
    "email STRING, url STRING, uuid STRING, national_id STRING, country STRING, currency STRING, "
    "subdivision STRING, sub_country STRING, language STRING, payload STRING, arr ARRAY<INT>, fk INT, "
    "fk_s STRING, flag BOOLEAN"
)


def frames(spark: Any) -> tuple[Any, dict[str, Any]]:
    """The checked DataFrame and the reference DataFrames the rules name (``ref_df_name``)."""
    data = rows()
    df = spark.createDataFrame([tuple(r.values()) for r in data], SCHEMA)
    keys = spark.createDataFrame([(k, f"k{k}") for k in range(30)] + [(None, None)], "key INT, key_s STRING")
    # compare_datasets: the same rows 0..299 with some values changed, some rows missing, some added
    changed = []
    for r in data[:300]:
        if r["id"] % 50 == 7:
            continue  # missing from the reference
        val_a = r["val_a"]
        if r["id"] % 25 == 3:
            val_a = None if val_a is not None else 1
        elif r["id"] % 30 == 11 and val_a is not None:
            val_a = val_a + 1
        status = r["status"].upper() if r["id"] % 45 == 2 and r["status"] else r["status"]
        changed.append(
            (
                r["id"],
                val_a,
                status,
                r["amount"] + 0.001
                if r["amount"] == r["amount"] and r["amount"] is not None and r["id"] % 33 == 5
                else r["amount"],
            )
        )
    changed += [(1000 + i, i, "a", 1.0) for i in range(3)]
    reference = spark.createDataFrame(changed, "id BIGINT, val_a INT, status STRING, amount DOUBLE")
    upstream = spark.createDataFrame(
        [(g, i) for i in range(120) for g in ("g1", "g2")]
        + [("g3", i) for i in range(90)]
        + [(None, i) for i in range(90)],
        "grp STRING, n INT",
    )
    schema_ref = spark.createDataFrame([], "id BIGINT, grp STRING, k1 INT, amount DOUBLE")
    refs = {"keys": keys, "reference": reference, "upstream": upstream, "schema_ref": schema_ref}
    # stored and read back, as a job checks tables: a DataFrame of local rows carries its rows in its
    # plan, and a rule that reads the data again (a join, a query) would copy them each time
    stored = tempfile.mkdtemp(prefix="dqx-parity-data-")
    out = []
    for name, frame in [("data", df), *refs.items()]:
        path = os.path.join(stored, name)
        frame.write.parquet(path)
        out.append(spark.read.schema(frame.schema).parquet(path))
    return out[0], dict(zip(refs, out[1:], strict=True))


# --- running both sides ---------------------------------------------------------------------------

ID = "id"


def flagged_ids(df: Any) -> tuple[dict[str, dict[str, list[Any]]], list[Any]]:
    """Per rule name, the ids of the rows whose ``_errors`` / ``_warnings`` items name it, and every
    row's id (one action: the 360 rows' ids and item names are collected)."""
    from pyspark.sql import functions as sf

    out: dict[str, dict[str, list[Any]]] = {}
    rows = df.select(
        sf.col(ID), sf.col("_errors.name").alias("error"), sf.col("_warnings.name").alias("warn")
    ).collect()
    for row in rows:
        for level in ("error", "warn"):
            for name in row[level] or ():
                out.setdefault(str(name), {"error": [], "warn": []})[level].append(row[ID])
    for entry in out.values():
        for ids in entry.values():
            ids.sort(key=lambda v: (v is None, v))
    return out, [row[ID] for row in rows]


def item_fields(df: Any, column: str) -> list[list[str]]:
    field = df.schema[column]
    element = field.dataType.elementType
    return [[f.name, f.dataType.simpleString()] for f in element.fields]


def run_dqx(spark: Any, df: Any, rules: list[dict[str, Any]], refs: dict[str, Any]) -> dict[str, Any]:
    """DQX's verdicts: the row-level rules in one ``apply_checks_by_metadata``, each dataset-level rule
    in one of its own. A rule's flags do not depend on the others (no rule here changes the rows),
    and DQX stacks each dataset-level rule's plan on the previous one's: the ~40 of this file in one
    call ran for over 15 minutes on ``local[1]`` (a few seconds each alone)."""
    from unittest.mock import MagicMock

    from databricks.labs.dqx import check_funcs
    from databricks.labs.dqx.checks_serializer import deserialize_checks
    from databricks.labs.dqx.engine import DQEngineCore
    from databricks.labs.dqx.rule import CHECK_FUNC_REGISTRY
    from databricks.sdk import WorkspaceClient

    started = time.perf_counter()
    engine = DQEngineCore(MagicMock(spec=WorkspaceClient), spark)
    names = [rule.name for rule in deserialize_checks(rules)]
    names_by_rule = [[r.name for r in deserialize_checks([rule])] for rule in rules]
    row_level = [r for r in rules if CHECK_FUNC_REGISTRY[r["check"]["function"]] == "row"]
    batches = [row_level] + [[r] for r in rules if r not in row_level]
    flags: dict[str, dict[str, list[Any]]] = {}
    for batch in batches:
        checked = engine.apply_checks_by_metadata(df, batch, ref_dfs=refs)
        found, ids = flagged_ids(checked)
        flags.update(found)
        if batch is row_level:
            fields = {column: item_fields(checked, column) for column in ("_errors", "_warnings")}
            columns = [c for c in checked.columns if c not in ("_errors", "_warnings")]
        elif len(ids) != N:
            raise RuntimeError(f"DQX rule {batch[0]} returned {len(ids)} rows, not {N}")
    errors = {i for entry in flags.values() for i in entry["error"]}
    warnings = {i for entry in flags.values() for i in entry["warn"]}
    return {
        "names": names,
        "names_by_rule": names_by_rule,
        "functions": sorted(  # DQX's core check functions (not its geo, PII and anomaly modules)
            name
            for name in CHECK_FUNC_REGISTRY
            if getattr(getattr(check_funcs, name, None), "__module__", None) == check_funcs.__name__
        ),
        "flags": flags,
        "rows": len(ids),
        # apply_checks_and_split's rule (its docs): valid = the rows without an error, without the
        # result columns; invalid = the rows with an error or a warning
        "split": {
            "valid": sorted(i for i in ids if i not in errors),
            "invalid": sorted(i for i in ids if i in errors or i in warnings),
            "valid_columns": columns,
        },
        "errors_fields": fields["_errors"],
        "warnings_fields": fields["_warnings"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def session(mechanism: str) -> Any:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.config("spark.ui.enabled", "false").config(
        "spark.sql.shuffle.partitions", "2"
    )
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    if mechanism == "connect":
        return builder.remote("local[1]").getOrCreate()
    return builder.master("local[1]").getOrCreate()
