"""The package's import-layer contract, checked (run by ``bash .ci/dev lint``).

    python .ci/layers.py [PACKAGE_DIR]      # default: dagster_pipes_spark next to .ci/

Layers, lowest first; a module imports its own layer or lower ones only::

    core         dagster_pipes_spark._*.py, version        (the protocol and the session)
    transports   dagster_pipes_spark._transports.*          (how contexts and messages travel)
    spark        dagster_pipes_spark.spark.*                (Spark hooks)      } independent of
    testing      dagster_pipes_spark.testing.*              (emulator, plugin) } each other

Every import counts: at module level, under ``if TYPE_CHECKING:``, and inside functions ("lazy").
The two entry points may reach higher, only where it costs nothing at import time:

* the package ``__init__`` (the drop-in façade) names the transports under ``TYPE_CHECKING`` and
  imports them on first use (PEP 562);
* ``cli`` imports transports and ``testing`` lazily, inside the command that needs them.

Inside ``spark``, each *unit* (a top-level module or folder of ``spark/``) sits in one of five
layers, lowest first, and imports only its own layer and lower ones (``SPARK_LAYERS``)::

    shared       _write_record, _lineage_types, _collector, _write_report, _targets, _sql,
                 _plan_facts, _patching, _parallel, _context_helpers   (what every part speaks)
    formats      _delta, _iceberg                 (table-format specifics; independent of each other)
    concepts     _commands, _lineage, _partitions, _metadata    (what a write is, reads, replaces, says)
    mechanisms   _classic, _connect, _streaming   (how writes are observed; independent of each other)
    entry        the package ``__init__``, _session, _checks    (report_spark_writes, the checks)

A unit of ``spark/`` in no layer is a violation too (a new one is placed with one line). One known
exception is tolerated, named in ``TOLERATED``: ``_streaming`` reaches the two mechanisms lazily.

And no import cycle between modules, counting module-level and ``TYPE_CHECKING`` imports (a cycle
hidden behind ``TYPE_CHECKING`` is still a cycle of the design). Exit status 1 lists every
violation with its file and line.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: layer -> the layers it may import (its own included)
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "transports": frozenset({"core", "transports"}),
    "spark": frozenset({"core", "transports", "spark"}),
    "testing": frozenset({"core", "transports", "testing"}),
}
#: entry point -> (layer it sits in, layers it may import only under TYPE_CHECKING or lazily)
ENTRY_POINTS: dict[str, tuple[str, frozenset[str]]] = {
    "": ("core", frozenset({"transports"})),
    "cli": ("core", frozenset({"transports", "testing"})),
}


@dataclass(frozen=True)
class SparkLayer:
    """One layer inside ``spark``: its units, and whether they may import each other."""

    name: str
    units: frozenset[str]
    siblings: bool  # False: the layer's units are independent of each other


#: ``spark``'s layers, lowest first; a unit imports its own layer (when ``siblings``) or lower ones
SPARK_LAYERS: tuple[SparkLayer, ...] = (
    SparkLayer(
        "shared",
        frozenset(
            {
                "_write_record",
                "_lineage_types",
                "_collector",
                "_write_report",
                "_targets",
                "_sql",
                "_plan_facts",
                "_patching",
                "_parallel",
                "_context_helpers",
            }
        ),
        siblings=True,
    ),
    SparkLayer("formats", frozenset({"_delta", "_iceberg"}), siblings=False),
    SparkLayer("concepts", frozenset({"_commands", "_lineage", "_partitions", "_metadata"}), siblings=True),
    SparkLayer("mechanisms", frozenset({"_classic", "_connect", "_streaming"}), siblings=False),
    SparkLayer("entry", frozenset({"__init__", "_session", "_checks"}), siblings=True),
)
#: (unit, unit it imports) -> why it is tolerated; lazy imports only
TOLERATED: dict[tuple[str, str], str] = {
    ("_streaming", "_classic"): "plan facts and path relations, until the mechanism gives them (issue 27)",
    ("_streaming", "_connect"): "plan facts, until the mechanism gives them (issue 27)",
}


@dataclass(frozen=True)
class Edge:
    """One import of a package module by another."""

    source: str  # module path inside the package ("" for the package itself)
    target: str
    file: Path
    line: int
    kind: str  # "module", "type-checking" or "lazy"


def layer_of(module: str) -> str:
    """The layer of a module path inside the package (``spark._write_record`` -> ``spark``)."""
    head = module.split(".", 1)[0]
    return {"_transports": "transports", "spark": "spark", "testing": "testing"}.get(head, "core")


def spark_unit(module: str) -> str:
    """The unit of a ``spark`` module path: ``spark._checks._model`` -> ``_checks``, ``spark`` ->
    ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _spark_layer(unit: str) -> int | None:
    return next((i for i, layer in enumerate(SPARK_LAYERS) if unit in layer.units), None)


def _modules(package_dir: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, package: str, known: set[str]
) -> list[str]:
    """Package-relative module paths an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = [package, *module.split(".")] if module else [package]
            if not is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = []
        for alias in node.names:
            candidate = f"{prefix}.{alias.name}"
            inner = candidate.removeprefix(f"{package}.")
            names.append(candidate if candidate != inner and inner in known else prefix)
    out = []
    for name in names:
        if name == package:
            out.append("")
        elif name.startswith(f"{package}."):
            inner = name.removeprefix(f"{package}.")
            while inner and inner not in known:  # `import pkg.mod.Name`-style paths
                inner = inner.rpartition(".")[0]
            out.append(inner)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING")


@dataclass(frozen=True)
class _Module:
    name: str
    path: Path
    is_package: bool


def _walk(node: ast.AST, kind: str, module: _Module, package: str, known: set[str]) -> Iterator[Edge]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, "lazy", module, package, known)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            guarded = "lazy" if kind == "lazy" else "type-checking"
            yield from _walk(ast.Module(body=child.body, type_ignores=[]), guarded, module, package, known)
            yield from _walk(ast.Module(body=child.orelse, type_ignores=[]), kind, module, package, known)
        elif isinstance(child, ast.Import | ast.ImportFrom):
            for target in _targets(child, module.name, module.is_package, package, known):
                if target != module.name:
                    yield Edge(module.name, target, module.path, child.lineno, kind)
        else:
            yield from _walk(child, kind, module, package, known)


def edges(package_dir: Path) -> Iterator[Edge]:
    """Every import of one package module by another, with where and how it happens."""
    package = package_dir.name
    modules = _modules(package_dir)
    known = set(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        yield from _walk(tree, "module", _Module(name, path, path.name == "__init__.py"), package, known)


def layer_violations(all_edges: list[Edge]) -> list[str]:
    """Imports that reach a layer the importing module may not use."""
    out = []
    for edge in all_edges:
        entry = ENTRY_POINTS.get(edge.source)
        source_layer = entry[0] if entry else layer_of(edge.source)
        target_layer = "core" if edge.target in ENTRY_POINTS else layer_of(edge.target)
        if edge.target in ENTRY_POINTS and edge.source not in ENTRY_POINTS and edge.target != "":
            out.append(
                f"{edge.file}:{edge.line}: {edge.source or '<package>'} imports the entry point {edge.target}"
            )
            continue
        if target_layer in ALLOWED[source_layer]:
            continue
        if entry and target_layer in entry[1] and edge.kind != "module":
            continue
        how = {"module": "", "type-checking": " (under TYPE_CHECKING)", "lazy": " (inside a function)"}[
            edge.kind
        ]
        rule = (
            f"{edge.source} may import {sorted(entry[1])} only lazily or under TYPE_CHECKING"
            if entry and target_layer in entry[1]
            else f"{source_layer} may import only {sorted(ALLOWED[source_layer])}"
        )
        out.append(
            f"{edge.file}:{edge.line}: {edge.source or '<package>'} ({source_layer}) imports {edge.target} ({target_layer}){how}: {rule}"
        )
    return out


def spark_violations(all_edges: list[Edge], modules: dict[str, Path]) -> list[str]:
    """Units of ``spark`` in no layer, and imports inside ``spark`` that reach a higher layer or a
    sibling the layer keeps independent."""
    out = []
    unplaced: dict[str, Path] = {}
    for name, path in modules.items():
        if layer_of(name) == "spark" and _spark_layer(spark_unit(name)) is None:
            unplaced.setdefault(spark_unit(name), path)
    order = " < ".join(layer.name for layer in SPARK_LAYERS)
    for unit, path in sorted(unplaced.items()):
        out.append(f"{path}:1: spark.{unit} is in no layer of spark/ ({order}): add it to SPARK_LAYERS")
    for edge in all_edges:
        if layer_of(edge.source) != "spark" or layer_of(edge.target) != "spark":
            continue
        source, target = spark_unit(edge.source), spark_unit(edge.target)
        low, high = _spark_layer(target), _spark_layer(source)
        if source == target or low is None or high is None or low < high:
            continue
        if low == high and SPARK_LAYERS[low].siblings:
            continue
        if low == high and edge.kind == "lazy" and (source, target) in TOLERATED:
            continue
        how = {"module": "", "type-checking": " (under TYPE_CHECKING)", "lazy": " (inside a function)"}[
            edge.kind
        ]
        rule = (
            f"the units of the {SPARK_LAYERS[low].name} layer are independent of each other"
            if low == high
            else f"spark/ layers, lowest first: {order}"
        )
        out.append(
            f"{edge.file}:{edge.line}: {edge.source} ({SPARK_LAYERS[high].name}) imports {edge.target}"
            f" ({SPARK_LAYERS[low].name}){how}: {rule}"
        )
    return out


def cycles(all_edges: list[Edge]) -> list[list[str]]:
    """Import cycles (strongly connected groups of modules) over module-level and TYPE_CHECKING imports."""
    graph: dict[str, set[str]] = {}
    for edge in all_edges:
        if edge.kind != "lazy" and edge.target:  # a submodule importing its package runs the package first
            graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def check(package_dir: Path) -> list[str]:
    """Every violation of the contract, as printable lines (empty: the package keeps it)."""
    all_edges = list(edges(package_dir))
    problems = layer_violations(all_edges) + spark_violations(all_edges, _modules(package_dir))
    for group in cycles(all_edges):
        members = set(group)
        where = sorted(
            {
                f"{e.file}:{e.line}"
                for e in all_edges
                if e.source in members and e.target in members and e.kind != "lazy"
            }
        )
        problems.append(f"import cycle: {' -> '.join(group)} ({', '.join(where)})")
    return problems


def main(argv: list[str]) -> int:
    """Check the package (default: the one beside ``.ci/``); print violations; 1 if any."""
    package_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "dagster_pipes_spark"
    problems = check(package_dir)
    for line in problems:
        print(line)
    modules = len(_modules(package_dir))
    print(f"layers: {modules} modules, {len(problems)} violation(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
