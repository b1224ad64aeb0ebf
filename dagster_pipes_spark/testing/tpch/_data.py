"""A seeded, tiny generator of the eight TPC-H tables, in pure Python.

The rows follow the specification's shapes (keys, domains of the text columns, date rules between a
line's ship, commit and receipt dates, an order's status and total from its lines) at a scale of a
few thousand rows, plus a handful of planted rows so that every one of the 22 queries, run with the
specification's validation parameters, returns rows: the parts and lines Q2, Q17, Q19, Q20 and Q21
look for are rare at this size, and Q18 needs an order of more than 300 units.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Row = tuple[Any, ...]

#: ``name -> Spark DDL schema`` of the eight tables (the specification's columns and types).
SCHEMAS: dict[str, str] = {
    "region": "r_regionkey INT, r_name STRING, r_comment STRING",
    "nation": "n_nationkey INT, n_name STRING, n_regionkey INT, n_comment STRING",
    "supplier": (
        "s_suppkey INT, s_name STRING, s_address STRING, s_nationkey INT, s_phone STRING,"
        " s_acctbal DECIMAL(12,2), s_comment STRING"
    ),
    "customer": (
        "c_custkey INT, c_name STRING, c_address STRING, c_nationkey INT, c_phone STRING,"
        " c_acctbal DECIMAL(12,2), c_mktsegment STRING, c_comment STRING"
    ),
    "part": (
        "p_partkey INT, p_name STRING, p_mfgr STRING, p_brand STRING, p_type STRING, p_size INT,"
        " p_container STRING, p_retailprice DECIMAL(12,2), p_comment STRING"
    ),
    "partsupp": (
        "ps_partkey INT, ps_suppkey INT, ps_availqty INT, ps_supplycost DECIMAL(12,2), ps_comment STRING"
    ),
    "orders": (
        "o_orderkey INT, o_custkey INT, o_orderstatus STRING, o_totalprice DECIMAL(12,2),"
        " o_orderdate DATE, o_orderpriority STRING, o_clerk STRING, o_shippriority INT, o_comment STRING"
    ),
    "lineitem": (
        "l_orderkey INT, l_partkey INT, l_suppkey INT, l_linenumber INT, l_quantity DECIMAL(12,2),"
        " l_extendedprice DECIMAL(12,2), l_discount DECIMAL(12,2), l_tax DECIMAL(12,2),"
        " l_returnflag STRING, l_linestatus STRING, l_shipdate DATE, l_commitdate DATE,"
        " l_receiptdate DATE, l_shipinstruct STRING, l_shipmode STRING, l_comment STRING"
    ),
}
#: the tables in the order they are created
TABLES: tuple[str, ...] = tuple(SCHEMAS)

REGIONS = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")
#: ``(name, region key)`` by nation key, as the specification lists them
NATIONS = (
    ("ALGERIA", 0), ("ARGENTINA", 1), ("BRAZIL", 1), ("CANADA", 1), ("EGYPT", 4),
    ("ETHIOPIA", 0), ("FRANCE", 3), ("GERMANY", 3), ("INDIA", 2), ("INDONESIA", 2),
    ("IRAN", 4), ("IRAQ", 4), ("JAPAN", 2), ("JORDAN", 4), ("KENYA", 0),
    ("MOROCCO", 0), ("MOZAMBIQUE", 0), ("PERU", 1), ("CHINA", 2), ("ROMANIA", 3),
    ("SAUDI ARABIA", 4), ("VIETNAM", 2), ("RUSSIA", 3), ("UNITED KINGDOM", 3), ("UNITED STATES", 1),
)  # fmt: skip
SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD")
PRIORITIES = ("1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW")
INSTRUCTIONS = ("DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN")
MODES = ("REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB")
TYPE_1 = ("STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO")
TYPE_2 = ("ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED")
TYPE_3 = ("TIN", "NICKEL", "BRASS", "STEEL", "COPPER")
CONTAINER_1 = ("SM", "LG", "MED", "JUMBO", "WRAP")
CONTAINER_2 = ("CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM")
COLORS = (
    "almond", "antique", "aquamarine", "azure", "beige", "bisque", "black", "blanched", "blue",
    "blush", "brown", "burlywood", "chartreuse", "chiffon", "chocolate", "coral", "cornflower",
    "cream", "cyan", "dark", "deep", "dim", "dodger", "drab", "firebrick", "forest", "frosted",
    "gainsboro", "ghost", "goldenrod", "green", "grey", "honeydew", "hot", "indian", "ivory",
    "khaki", "lace", "lavender", "lawn", "lemon", "light", "lime", "linen", "magenta", "maroon",
)  # fmt: skip
WORDS = (
    "furiously", "quickly", "carefully", "blithely", "slyly", "final", "pending", "regular",
    "express", "ironic", "bold", "even", "silent", "accounts", "deposits", "packages", "foxes",
    "ideas", "theodolites", "pinto", "beans", "instructions", "dependencies", "requests",
)  # fmt: skip

START = datetime.date(1992, 1, 1)
#: the last order date: the specification's end date less 151 days
LAST_ORDER = datetime.date(1998, 8, 2)
#: lines received by this date are returned (R) or accepted (A); lines shipped after it are open
CURRENT = datetime.date(1995, 6, 17)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Scale:
    """Row counts: ``lineitem`` gets 1 to 7 lines per order (4 on average)."""

    parts: int = 200
    suppliers: int = 25
    customers: int = 150
    orders: int = 1000
    #: suppliers per part in ``partsupp``
    suppliers_per_part: int = 4


@dataclass
class TpchData:
    """The generated rows of each table, by table name."""

    rows: dict[str, list[Row]] = field(default_factory=dict)

    def count(self, table: str) -> int:
        return len(self.rows[table])


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _comment(rng: random.Random, words: int = 5) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _phone(rng: random.Random, nation: int) -> str:
    return f"{nation + 10}-{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"


def supplier_of(part: int, i: int, scale: Scale) -> int:
    """The ``i``-th supplier of ``part`` (the specification's spread of a part's suppliers)."""
    return (part - 1 + i * (scale.suppliers // scale.suppliers_per_part)) % scale.suppliers + 1


def retail_price(part: int) -> Decimal:
    return (Decimal(90000 + (part // 10) % 20001 + 100 * (part % 1000)) / 100).quantize(CENT)


#: Parts given fixed attributes so the rare combinations of the queries exist (and the queries'
#: planted lines below): ``part key -> (name, brand, type, size, container)``; ``None`` keeps the
#: generated value.
PLANTED_PARTS: dict[int, tuple[str | None, str | None, str | None, int | None, str | None]] = {
    1: (None, None, "LARGE BRUSHED BRASS", 15, None),  # Q2: supplied from EUROPE (FRANCE)
    2: (None, "Brand#23", None, None, "MED BOX"),  # Q17
    3: (None, "Brand#12", None, 3, "SM CASE"),  # Q19, first branch
    5: (None, "Brand#23", None, 5, "MED BAG"),  # Q19, second branch
    6: (None, "Brand#34", None, 10, "LG BOX"),  # Q19, third branch
    7: (None, None, "ECONOMY ANODIZED STEEL", None, None),  # Q8
    11: ("forest green lace ivory khaki", None, None, None, None),  # Q20: supplied from CANADA
}


def _part_rows(rng: random.Random, scale: Scale) -> list[Row]:
    rows: list[Row] = []
    for key in range(1, scale.parts + 1):
        m, n = rng.randint(1, 5), rng.randint(1, 5)
        name = " ".join(rng.sample(COLORS, 5))
        brand = f"Brand#{m}{n}"
        kind = f"{rng.choice(TYPE_1)} {rng.choice(TYPE_2)} {rng.choice(TYPE_3)}"
        size = rng.randint(1, 50)
        container = f"{rng.choice(CONTAINER_1)} {rng.choice(CONTAINER_2)}"
        planted = PLANTED_PARTS.get(key)
        if planted is not None:
            p_name, p_brand, p_kind, p_size, p_container = planted
            name = p_name if p_name is not None else name
            brand = p_brand if p_brand is not None else brand
            kind = p_kind if p_kind is not None else kind
            size = p_size if p_size is not None else size
            container = p_container if p_container is not None else container
        rows.append(
            (
                key,
                name,
                f"Manufacturer#{m}",
                brand,
                kind,
                size,
                container,
                retail_price(key),
                _comment(rng, 3),
            )
        )
    return rows


@dataclass
class _Order:
    key: int
    customer: int
    date: datetime.date
    lines: list[dict[str, Any]]


def _line(
    rng: random.Random,
    order_date: datetime.date,
    part: int,
    supplier: int,
    quantity: int,
    *,
    ship_days: int | None = None,
    commit_days: int | None = None,
    receipt_days: int | None = None,
    mode: str | None = None,
    instruction: str | None = None,
) -> dict[str, Any]:
    ship = order_date + datetime.timedelta(days=ship_days if ship_days is not None else rng.randint(1, 121))
    commit = order_date + datetime.timedelta(
        days=commit_days if commit_days is not None else rng.randint(30, 90)
    )
    receipt = ship + datetime.timedelta(days=receipt_days if receipt_days is not None else rng.randint(1, 30))
    return {
        "part": part,
        "supplier": supplier,
        "quantity": quantity,
        "discount": _money(rng.randint(0, 10) / 100),
        "tax": _money(rng.randint(0, 8) / 100),
        "ship": ship,
        "commit": commit,
        "receipt": receipt,
        "mode": mode or rng.choice(MODES),
        "instruction": instruction or rng.choice(INSTRUCTIONS),
    }


def _planted_orders(rng: random.Random, scale: Scale, first_key: int) -> list[_Order]:
    """Orders whose lines the rare predicates need (keys after the generated ones)."""
    day = datetime.date
    s = _nth_supplier(scale)
    orders = [
        # Q17: part 2's lines, one far below a fifth of the part's average quantity
        _Order(0, 1, day(1996, 3, 3), [_line(rng, day(1996, 3, 3), 2, s(2, k), q) for k, q in enumerate((1, 40, 45, 50))]),
        # Q18: more than 300 units in one order
        _Order(0, 2, day(1997, 5, 20), [_line(rng, day(1997, 5, 20), 20 + k, s(20 + k, 0), 50) for k in range(7)]),
        # Q19: one line per branch: brand, container, quantity, size, air shipment delivered in person
        _Order(0, 4, day(1996, 1, 10), [
            _line(rng, day(1996, 1, 10), 3, s(3, 0), 5, mode="AIR", instruction="DELIVER IN PERSON"),
            _line(rng, day(1996, 1, 10), 5, s(5, 1), 15, mode="AIR", instruction="DELIVER IN PERSON"),
            _line(rng, day(1996, 1, 10), 6, s(6, 2), 25, mode="AIR", instruction="DELIVER IN PERSON"),
        ]),
        # Q20: the forest part shipped in 1994 by its Canadian supplier (supplier 4)
        _Order(0, 5, day(1994, 2, 1), [_line(rng, day(1994, 2, 1), 11, 4, 10, ship_days=20)]),
        # Q21: a finished order where the Saudi supplier (21) alone was late
        _Order(0, 7, day(1994, 3, 1), [
            _line(rng, day(1994, 3, 1), 9, 21, 12, ship_days=40, commit_days=30, receipt_days=5),
            _line(rng, day(1994, 3, 1), 9, 9, 8, ship_days=10, commit_days=60, receipt_days=5),
        ]),
        # Q8: the ECONOMY ANODIZED STEEL part bought in AMERICA (customer 8's nation is set below)
        _Order(0, 8, day(1995, 7, 7), [_line(rng, day(1995, 7, 7), 7, s(7, 0), 20)]),
    ]  # fmt: skip
    for i, order in enumerate(orders):
        order.key = first_key + i
    return orders


def _nth_supplier(scale: Scale) -> Callable[[int, int], int]:
    """``(part, i) -> the i-th supplier of part`` at ``scale``."""
    return lambda part, i: supplier_of(part, i, scale)


#: customers whose nation is fixed: ``customer key -> nation key`` (Q8's buyer in BRAZIL)
PLANTED_CUSTOMER_NATIONS = {8: 2}


def generate(seed: int = 7, scale: Scale | None = None) -> TpchData:
    """The eight tables' rows, the same for the same ``seed`` and ``scale``."""
    scale = scale or Scale()
    rng = random.Random(seed)
    data = TpchData()
    data.rows["region"] = [(k, name, _comment(rng)) for k, name in enumerate(REGIONS)]
    data.rows["nation"] = [(k, name, region, _comment(rng)) for k, (name, region) in enumerate(NATIONS)]
    suppliers = []
    for key in range(1, scale.suppliers + 1):
        nation = (key - 1) % len(NATIONS)
        comment = _comment(rng)
        if key % 10 == 3:  # a few suppliers with complaints (Q16 leaves them out)
            comment = f"{comment} Customer slyly Complaints"
        suppliers.append(
            (key, f"Supplier#{key:09d}", f"addr {rng.randint(1, 9999)}", nation, _phone(rng, nation),
             _money(rng.uniform(-999.99, 9999.99)), comment)
        )  # fmt: skip
    data.rows["supplier"] = suppliers
    customers = []
    for key in range(1, scale.customers + 1):
        nation = PLANTED_CUSTOMER_NATIONS.get(key, rng.randrange(len(NATIONS)))
        customers.append(
            (key, f"Customer#{key:09d}", f"addr {rng.randint(1, 9999)}", nation, _phone(rng, nation),
             _money(rng.uniform(-999.99, 9999.99)), rng.choice(SEGMENTS), _comment(rng))
        )  # fmt: skip
    data.rows["customer"] = customers
    parts = _part_rows(rng, scale)
    data.rows["part"] = parts
    data.rows["partsupp"] = [
        (part, supplier_of(part, i, scale), rng.randint(1, 9999), _money(rng.uniform(1.0, 1000.0)), _comment(rng))
        for part in range(1, scale.parts + 1)
        for i in range(scale.suppliers_per_part)
    ]  # fmt: skip
    ordering = [c for c in range(1, scale.customers + 1) if c % 3 != 0]  # a third never order
    span = (LAST_ORDER - START).days
    orders: list[_Order] = []
    for key in range(1, scale.orders + 1):
        date = START + datetime.timedelta(days=rng.randint(0, span))
        lines = []
        for _ in range(rng.randint(1, 7)):
            part = rng.randint(1, scale.parts)
            supplier = supplier_of(part, rng.randrange(scale.suppliers_per_part), scale)
            lines.append(_line(rng, date, part, supplier, rng.randint(1, 50)))
        orders.append(_Order(key, rng.choice(ordering), date, lines))
    orders += _planted_orders(rng, scale, scale.orders + 1)
    data.rows["orders"], data.rows["lineitem"] = _order_rows(rng, orders)
    return data


def _order_rows(rng: random.Random, orders: Sequence[_Order]) -> tuple[list[Row], list[Row]]:
    """``orders`` and ``lineitem`` rows: a line's flags from its dates, an order's status and total
    from its lines."""
    order_rows: list[Row] = []
    line_rows: list[Row] = []
    for order in orders:
        total = Decimal(0)
        statuses = set()
        for number, line in enumerate(order.lines, start=1):
            price = (retail_price(line["part"]) * line["quantity"]).quantize(CENT)
            total += price * (1 + line["tax"]) * (1 - line["discount"])
            flag = rng.choice("RA") if line["receipt"] <= CURRENT else "N"
            status = "O" if line["ship"] > CURRENT else "F"
            statuses.add(status)
            line_rows.append(
                (order.key, line["part"], line["supplier"], number, Decimal(line["quantity"]).quantize(CENT),
                 price, line["discount"], line["tax"], flag, status, line["ship"], line["commit"],
                 line["receipt"], line["instruction"], line["mode"], _comment(rng, 3))
            )  # fmt: skip
        status = statuses.pop() if len(statuses) == 1 else "P"
        comment = _comment(rng)
        if order.key % 11 == 0:  # Q13 leaves out the orders with special requests
            comment = f"{comment} special packages requests"
        order_rows.append(
            (order.key, order.customer, status, total.quantize(CENT), order.date, rng.choice(PRIORITIES),
             f"Clerk#{rng.randint(1, 20):09d}", 0, comment)
        )  # fmt: skip
    return order_rows, line_rows


def create_tables(
    spark: Any,
    data: TpchData | None = None,
    *,
    database: str | None = None,
    fmt: str = "parquet",
    tables: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Create the eight tables in ``spark`` (classic or Connect) as ``fmt`` tables, in ``database``
    when given; ``tables`` renames them (``{"lineitem": "tpch_lineitem"}``). Returns the row count
    of each table, by its TPC-H name."""
    data = data or generate()
    counts: dict[str, int] = {}
    for name in TABLES:
        target = (tables or {}).get(name, name)
        if database:
            target = f"{database}.{target}"
        frame = spark.createDataFrame(data.rows[name], SCHEMAS[name])
        frame.write.format(fmt).mode("overwrite").saveAsTable(target)
        counts[name] = data.count(name)
    return counts
