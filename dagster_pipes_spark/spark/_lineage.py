"""Column lineage of a write, read from the text of Spark's analysed plan.

Both mechanisms hand this module the same text: classic Spark prints the written query with
``treeString`` (one py4j call, ~20 us per tree node), Spark Connect asks the server to ``explain``
the written DataFrame or SQL statement (one AnalyzePlan RPC, no job). ``toJSON`` would give the
same tree as JSON but costs ~0.5 ms per tree node (Scala reflection) on the JVM: 25x more.

The walk follows attribute ids (``name#12``) from the written columns down to the relations the
query reads (``Relation``, ``HiveTableRelation``, ``RelationV2``), through projections, aliases,
casts and any expression, joins, aggregations, unions, window functions, generators, ``Expand``
(rollup, cube, unpivot), views, CTEs and scalar subqueries. Only *direct* dependencies count, as
OpenLineage defines them: identity, transformation and aggregation (an aggregate's argument,
``count``'s included). Indirect ones are left out: the columns a node merely filters, joins, groups
or sorts on, a window's ``PARTITION BY`` / ``ORDER BY`` (and so ranking functions), and what a
conditional only tests (a ``CASE WHEN`` / ``if`` condition, ``nullif``'s second argument, ``nvl2``'s
first). Whatever cannot be read with certainty (an unknown plan node, a
relation whose origin is unknown such as an RDD, text that does not parse unambiguously, a file
relation whose path is unknown) makes the columns that depend on it unresolved: they are left out
rather than guessed.

Nothing here imports pyspark.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster_pipes_spark.spark._record import ColumnLineage, Deps, LineageSource, SourceColumn
from dagster_pipes_spark.spark._targets import normalize_path, parse_target, split_identifier

# --- the result -------------------------------------------------------------------------------

# (``LineageSource``, ``SourceColumn``, ``Deps``, ``ColumnLineage``: the result's types live with the
# write record that carries them, ``_record``.)
#: a plan node's output columns: ``(attribute id, name, dependencies)``; ``Range`` prints no id
Output = list[tuple[int | None, str, Deps]]

_NONE: frozenset[SourceColumn] = frozenset()


def _union(parts: Iterable[Deps]) -> Deps:
    out: set[SourceColumn] = set()
    for deps in parts:
        if deps is None:
            return None
        out |= deps
    return frozenset(out)


# --- reading the printed tree -----------------------------------------------------------------


@dataclass
class _Node:
    name: str
    content: str
    depth: int
    children: list[_Node] = field(default_factory=list)
    inner: list[_Node] = field(default_factory=list)  # plans of subquery expressions, CTAS queries


class _UnreadableError(Exception):
    """The text cannot be read unambiguously."""


def _line_depth(line: str) -> tuple[int, str]:
    """``(depth, content)`` of a ``treeString`` line: 3-character indent units (``":  "`` or
    ``"   "``), then a ``"+- "`` / ``":- "`` connector for anything but the root."""
    i = units = 0
    while line.startswith((":  ", "   "), i):
        i += 3
        units += 1
    if line.startswith(("+- ", ":- "), i):
        return units + 1, line[i + 3 :]
    if units:
        raise _UnreadableError(f"not a plan line: {line[:80]!r}")
    return 0, line


def _node_name(content: str) -> str:
    match = re.match(r"[A-Za-z_][\w$]*", content)
    return match.group(0) if match else ""


def parse_tree(text: str) -> _Node:
    """The root of a printed plan. A node's children are printed one level deeper; the plans
    inside its expressions (subqueries) and a CTAS query two levels deeper, before its children."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise _UnreadableError("empty plan")
    chain: list[_Node] = []
    root: _Node | None = None
    for line in lines:
        depth, content = _line_depth(line)
        node = _Node(_node_name(content), content, depth)
        if depth == 0:
            if root is not None:  # a second root: a multi-line literal or name broke the layout
                raise _UnreadableError("more than one root")
            root = node
        else:
            while chain and chain[-1].depth >= depth:
                chain.pop()
            if not chain:
                raise _UnreadableError("a plan line without parent")
            parent = chain[-1]
            if parent.depth == depth - 1:
                parent.children.append(node)
            elif parent.depth == depth - 2 and not parent.children:
                parent.inner.append(node)
            else:
                raise _UnreadableError("unexpected indentation")
        chain.append(node)
    assert root is not None
    return root


_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}


def _scan_groups(text: str, start: int = 0) -> list[tuple[int, int]] | None:
    """``(open, close)`` indices of the top-level ``[...]`` groups of ``text[start:]``; ``None``
    when brackets do not balance."""
    stack: list[str] = []
    groups: list[tuple[int, int]] = []
    opened = -1
    for i in range(start, len(text)):
        ch = text[i]
        if ch in _OPEN:
            if not stack and ch == "[":
                opened = i
            stack.append(_OPEN[ch])
        elif ch in _CLOSE:
            if not stack or stack.pop() != ch:
                return None
            if not stack and ch == "]" and opened >= 0:
                groups.append((opened, i))
                opened = -1
    return groups if not stack else None


def _group_spans(content: str) -> list[tuple[int, int]]:
    found = _scan_groups(content)
    if found is None:
        raise _UnreadableError("unbalanced brackets")
    return found


def _groups(content: str) -> list[str]:
    """Texts inside the top-level ``[...]`` groups of a node line (empty lists are not printed)."""
    return [content[a + 1 : b] for a, b in _group_spans(content)]


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _split_items(text: str) -> list[str]:
    """Split a printed list at its top-level ``", "``."""
    items: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth < 0:
                raise _UnreadableError("unbalanced list")
        elif depth == 0 and text.startswith(", ", i):
            items.append(text[start:i])
            start = i + 2
            i += 1
        i += 1
    if depth:
        raise _UnreadableError("unbalanced list")
    tail = text[start:]
    if tail or items:
        items.append(tail)
    return items


_ATTR_END = re.compile(r"#(\d+)L?(?:-T\d+ms)?(?:,\s?|$)")
_ITEM_ID = re.compile(r"#(\d+)L?(?:-T\d+ms)?$")


def attributes(text: str) -> list[tuple[str, int]]:
    """``(name, expr_id)`` of a printed attribute list (``a#1,b#2L`` or ``a#1, b#2L``)."""
    out: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        match = _ATTR_END.search(text, pos)
        if match is None:
            raise _UnreadableError(f"not an attribute list: {text[:80]!r}")
        out.append((text[pos : match.start()], int(match.group(1))))
        pos = match.end()
    return out


# --- expressions ------------------------------------------------------------------------------

# Calls whose value is not derived from their arguments' values: ranks (a position in an order).
# A window's specification (PARTITION BY / ORDER BY / frame) only arranges rows. (An aggregate's
# argument, ``count``'s included, is a direct input: OpenLineage's AGGREGATION.)
_NO_VALUE_CALL = re.compile(
    r"(?<![\w$.])(?:row_number|rank|dense_rank|percent_rank|cume_dist|ntile|windowspecdefinition)\("
)
# Conditionals: the part that is only tested decides which value is returned, it is not one
# (OpenLineage's CONDITIONAL, an indirect dependency). As the analysed plan prints them:
# ``CASE WHEN (c) THEN v ... ELSE v END``, ``if ((c)) v else v``, ``nullif(v, tested)``,
# ``nvl2(tested, v, v)``.
_CASE_WORD = re.compile(r"(?<![\w$.#`])(CASE|WHEN|THEN|ELSE|END)(?![\w$#])")
_TESTING_CALL = re.compile(r"(?<![\w$.])(if|nullif|nvl2) ?\(")
#: the argument of each conditional call that is only tested
_TESTED_ARGUMENT = {"nullif": 1, "nvl2": 0}
_SUBQUERY = re.compile(r"(?<![\w-])(scalar-subquery|exists|list|lateral-subquery)#\d+ ")
_LAMBDA_VAR = re.compile(r"lambda [\w$]*#(\d+)L?")
_REF = re.compile(r"#(\d+)")


def _closing(text: str, open_index: int) -> int:
    """Index of the bracket closing the one at ``open_index``."""
    depth = 0
    for i in range(open_index, len(text)):
        if text[i] in _OPEN:
            depth += 1
        elif text[i] in _CLOSE:
            depth -= 1
            if depth == 0:
                return i
    raise _UnreadableError("unbalanced expression")


def _arguments(text: str, open_index: int) -> list[tuple[int, int]]:
    """Spans of the top-level arguments of the call whose ``(`` is at ``open_index``."""
    close = _closing(text, open_index)
    spans, start, depth = [], open_index + 1, 0
    for i in range(open_index + 1, close):
        if text[i] in _OPEN:
            depth += 1
        elif text[i] in _CLOSE:
            depth -= 1
        elif text[i] == "," and depth == 0:
            spans.append((start, i))
            start = i + 1
    spans.append((start, close))
    return spans


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _without_tests(text: str) -> str:
    """``text`` with what conditionals only test blanked out (same length: positions hold)."""
    for match in reversed(list(_TESTING_CALL.finditer(text))):  # inner (later) calls first
        name, open_index = match.group(1), match.end() - 1
        if name == "if":  # ``if (predicate) value else value``
            text = _blank(text, open_index, _closing(text, open_index) + 1)
            continue
        spans = _arguments(text, open_index)
        index = _TESTED_ARGUMENT[name]
        if index < len(spans):
            text = _blank(text, *spans[index])
    cases: list[int | None] = []  # per open CASE: where its current WHEN condition starts
    for match in list(_CASE_WORD.finditer(text)):
        word = match.group(1)
        if word == "CASE":
            cases.append(None)
        elif not cases:
            raise _UnreadableError(f"{word} outside CASE")
        elif word == "WHEN" and cases[-1] is None:
            cases[-1] = match.end()
        elif word == "THEN" and cases[-1] is not None:
            text = _blank(text, cases[-1], match.start())
            cases[-1] = None
        elif word == "END":
            cases.pop()
    if cases:
        raise _UnreadableError("unterminated CASE")
    return text


@dataclass
class _Scope:
    """Attribute ids visible to a node's expressions, with their dependencies."""

    deps: dict[int, Deps]
    #: outputs printed without ids (``Range``'s ``id``): name -> dependencies
    unnamed: dict[str, Deps] = field(default_factory=dict)
    outer: _Scope | None = None

    def lookup(self, expr_id: int, name: Callable[[], str | None] | str | None = None) -> Deps:
        """Dependencies of attribute ``expr_id``; ``name`` (or a function giving it) binds an
        output printed without id."""
        scope: _Scope | None = self
        while scope is not None:
            if expr_id in scope.deps:
                return scope.deps[expr_id]
            scope = scope.outer
        label = name() if callable(name) else name
        scope = self
        while label is not None and scope is not None:
            if label in scope.unnamed:
                return scope.unnamed[label]
            scope = scope.outer
        raise _UnreadableError(f"attribute #{expr_id} is not produced below")


def _ref_name(text: str, hash_index: int) -> str | None:
    """The identifier right before ``#`` (enough to bind ``Range``'s unprinted ``id``)."""
    match = re.search(r"([A-Za-z_][\w$]*)$", text[:hash_index])
    return match.group(1) if match else None


class _Walker:
    """Computes, bottom-up, each node's output: ``[(expr_id, name, deps)]``."""

    def __init__(self, paths: Mapping[int, str]) -> None:
        self.paths = paths
        self.ctes: dict[str, Output] = {}
        self._done: dict[int, Output | _UnreadableError] = {}

    # expressions

    def expression(self, text: str, scope: _Scope, subqueries: Callable[[], Deps]) -> Deps:
        """Dependencies of one printed expression."""
        parts: list[Deps] = []
        lambda_ids = {int(m.group(1)) for m in _LAMBDA_VAR.finditer(text)}
        text = _without_tests(_LAMBDA_VAR.sub(" ", text))
        while True:  # cut out subquery expressions, keeping what a scalar subquery returns
            match = _SUBQUERY.search(text)
            if match is None:
                break
            end = match.end()
            if text.startswith("[", end):
                end = _closing(text, end) + 1
            if match.group(1) == "scalar-subquery":
                parts.append(subqueries())
            elif match.group(1) == "lateral-subquery":
                raise _UnreadableError("lateral subquery")
            text = text[: match.start()] + " " + text[end:]
        while True:  # cut out calls whose value does not derive from their arguments
            match = _NO_VALUE_CALL.search(text)
            if match is None:
                break
            text = text[: match.start()] + " " + text[_closing(text, match.end() - 1) + 1 :]
        for match in _REF.finditer(text):
            expr_id = int(match.group(1))
            if expr_id not in lambda_ids:
                parts.append(scope.lookup(expr_id, functools.partial(_ref_name, text, match.start())))
        return _union(parts)

    def named_list(self, text: str, scope: _Scope, subqueries: Callable[[], Deps]) -> Output:
        """A printed list of named expressions (``a#1, f(b#2) AS c#3``)."""
        out: Output = []
        for item in _split_items(text):
            match = _ITEM_ID.search(item)
            if match is None:
                raise _UnreadableError(f"not a named expression: {item[:80]!r}")
            expr_id = int(match.group(1))
            head = item[: match.start()]
            known = self._known(expr_id, head, scope)
            if known is not None:  # an attribute passed through
                out.append((expr_id, head, known[0]))
                continue
            split = self._alias_split(head)
            if split is None:
                raise _UnreadableError(f"not a named expression: {item[:80]!r}")
            expression, name = split
            out.append((expr_id, name, self.expression(expression, scope, subqueries)))
        return out

    @staticmethod
    def _known(expr_id: int, name: str, scope: _Scope) -> tuple[Deps] | None:
        try:
            return (scope.lookup(expr_id, name),)
        except _UnreadableError:
            return None

    @staticmethod
    def _alias_split(head: str) -> tuple[str, str] | None:
        """``(expression, name)`` of ``<expression> AS <name>``: the last `` AS `` whose left side is
        a complete expression (names may contain `` AS `` too)."""
        pos = len(head)
        while True:
            pos = head.rfind(" AS ", 0, pos)
            if pos < 0:
                return None
            if _balanced(head[:pos]):
                return head[:pos], head[pos + 4 :]

    # plan nodes

    def output(self, node: _Node, outer: _Scope | None = None) -> Output:
        """The node's output columns with their dependencies (remembered, outside subqueries)."""
        if outer is None and id(node) in self._done:
            done = self._done[id(node)]
            if isinstance(done, _UnreadableError):
                raise done
            return done
        handler = _NODES.get(node.name)
        try:
            if handler is None:
                raise _UnreadableError(f"plan node {node.name or node.content[:40]!r} is not understood")
            result = handler(self, node, outer)
        except _UnreadableError as exc:
            if outer is None:
                self._done[id(node)] = exc
            raise
        if outer is None:
            self._done[id(node)] = result
        return result

    def evaluate(self, root: _Node) -> Output:
        """The root's output, computed children first so that deep plans (hundreds of chained
        projections) need no deep recursion."""
        order: list[_Node] = []
        stack = [root]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(node.children)
        for node in reversed(order):  # every node after its children, CTE definitions first
            try:
                self.output(node)
            except _UnreadableError:
                pass  # remembered: raised again where a parent needs it
        return self.output(root)

    def child_outputs(self, node: _Node, outer: _Scope | None) -> list[Output]:
        return [self.output(child, outer) for child in node.children]

    def scope_of(self, node: _Node, outer: _Scope | None) -> tuple[_Scope, list[Output]]:
        outputs = self.child_outputs(node, outer)
        deps: dict[int, Deps] = {}
        unnamed: dict[str, Deps] = {}
        for columns in outputs:
            for expr_id, name, col_deps in columns:
                if expr_id is None:
                    unnamed[name] = col_deps
                else:
                    deps[expr_id] = col_deps
        return _Scope(deps, unnamed, outer), outputs


NodeHandler = Callable[[_Walker, _Node, "_Scope | None"], Output]


def _inner_resolver(walker: _Walker, node: _Node, scope: _Scope, start: int = 0) -> Callable[[], Deps]:
    """Resolves the ``scalar-subquery#N`` of an expression list starting at ``start`` in the node's
    line, in order: the k-th subquery expression of the line is the k-th plan printed inside it."""
    found = list(_SUBQUERY.finditer(node.content))
    if len(found) != len(node.inner):
        return _unresolvable_subquery
    kinds = [m.group(1) for m in found]
    state = {"next": sum(1 for m in found if m.start() < start)}

    def resolve() -> Deps:
        # skip exists/list subqueries met before this scalar one: they are cut without a lookup
        while state["next"] < len(kinds) and kinds[state["next"]] != "scalar-subquery":
            state["next"] += 1
        index = state["next"]
        state["next"] += 1
        if index >= len(node.inner):
            raise _UnreadableError("subqueries do not match their plans")
        columns = walker.output(node.inner[index], scope)
        if len(columns) != 1:
            raise _UnreadableError("a scalar subquery with several columns")
        return columns[0][2]

    return resolve


def _unresolvable_subquery() -> Deps:
    raise _UnreadableError("subqueries do not match their plans")


def _single_child(node: _Node) -> _Node:
    if len(node.children) != 1:
        raise _UnreadableError(f"{node.name} with {len(node.children)} children")
    return node.children[0]


def _pass_through(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    return walker.output(_single_child(node), outer)


def _named_group(walker: _Walker, node: _Node, outer: _Scope | None, last: bool) -> tuple[Output, Output]:
    """The child's output and the named expressions of the node's first (or last) ``[...]`` list."""
    _single_child(node)
    scope, outputs = walker.scope_of(node, outer)
    spans = _group_spans(node.content)
    if not spans:
        return outputs[0], []
    opened, closed = spans[-1] if last else spans[0]
    resolver = _inner_resolver(walker, node, scope, opened)
    return outputs[0], walker.named_list(node.content[opened + 1 : closed], scope, resolver)


def _project(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    return _named_group(walker, node, outer, last=False)[1]


def _aggregate(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # [grouping], [aggregates]: the grouping list is not printed when it is empty
    return _named_group(walker, node, outer, last=True)[1]


def _window(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # [window expressions], [partition by], [order by]: the child's columns, then the new ones
    child, named = _named_group(walker, node, outer, last=False)
    return child + named


def _generate(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    _single_child(node)
    scope, outputs = walker.scope_of(node, outer)
    groups = _groups(node.content)
    items = _split_items(node.content[len(node.name) + 1 :])
    if not groups or not items:
        raise _UnreadableError("Generate without output")
    deps = walker.expression(items[0], scope, _inner_resolver(walker, node, scope))
    return outputs[0] + [(expr_id, name, deps) for name, expr_id in attributes(groups[-1])]


def _expand(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    _single_child(node)
    scope, _ = walker.scope_of(node, outer)
    groups = _groups(node.content)
    if len(groups) < 2:
        raise _UnreadableError("Expand without projections")
    columns = attributes(groups[-1])
    per_column: list[list[Deps]] = [[] for _ in columns]
    for projection in _split_items(groups[0]):
        if not (projection.startswith("[") and projection.endswith("]")):
            raise _UnreadableError("Expand projection")
        values = _split_items(projection[1:-1])
        if len(values) != len(columns):
            raise _UnreadableError("Expand projection width")
        for i, value in enumerate(values):
            per_column[i].append(walker.expression(value, scope, _unresolvable_subquery))
    return [(expr_id, name, _union(per_column[i])) for i, (name, expr_id) in enumerate(columns)]


_JOIN_LEFT_ONLY = frozenset({"LeftSemi", "LeftAnti"})
_JOIN_BOTH = frozenset({"Inner", "Cross", "LeftOuter", "RightOuter", "FullOuter"})


def _join(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    if len(node.children) != 2:
        raise _UnreadableError("Join without two sides")
    kind = re.match(r"Join (\w+)", node.content)
    join_type = kind.group(1) if kind else ""
    left, right = walker.child_outputs(node, outer)
    if join_type in _JOIN_LEFT_ONLY:
        return left
    if join_type in _JOIN_BOTH:
        return left + right
    raise _UnreadableError(f"join type {join_type!r}")


def _union_node(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # columns by position; a branch that cannot be read leaves every column unresolved, but the
    # union's columns stay known to the nodes above (when its first branch was read)
    outputs: list[Output | None] = []
    for child in node.children:
        try:
            outputs.append(walker.output(child, outer))
        except _UnreadableError:
            outputs.append(None)
    first = outputs[0] if outputs else None
    if first is None or any(o is not None and len(o) != len(first) for o in outputs):
        raise _UnreadableError("Union of unreadable or different widths")
    return [
        (expr_id, name, _union(o[i][2] if o is not None else None for o in outputs))
        for i, (expr_id, name, _) in enumerate(first)
    ]


def _left_side(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # INTERSECT / EXCEPT: the right side only filters the left one's rows
    if len(node.children) != 2:
        raise _UnreadableError(f"{node.name} without two sides")
    return walker.output(node.children[0], outer)


def _with_cte(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    if not node.children:
        raise _UnreadableError("WithCTE without plan")
    for definition in node.children[:-1]:
        walker.output(definition, outer)
    return walker.output(node.children[-1], outer)


def _cte_def(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    match = re.match(r"CTERelationDef (\d+)", node.content)
    if match is None:
        raise _UnreadableError("CTERelationDef without id")
    columns = walker.output(_single_child(node), outer)
    walker.ctes[match.group(1)] = columns
    return columns


def _cte_ref(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    match = re.match(r"CTERelationRef (\d+)", node.content)
    groups = _groups(node.content)
    if match is None or not groups or match.group(1) not in walker.ctes:
        raise _UnreadableError("CTERelationRef to an unknown definition")
    definition = walker.ctes[match.group(1)]
    columns = attributes(groups[0])
    if len(columns) != len(definition):
        raise _UnreadableError("CTERelationRef of a different width")
    return [(expr_id, name, definition[i][2]) for i, (name, expr_id) in enumerate(columns)]


def _table_columns(source: LineageSource | None, columns: list[tuple[str, int]]) -> Output:
    return [
        (expr_id, name, frozenset({(source, name)}) if source is not None else None)
        for name, expr_id in columns
    ]


def _relation(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # Relation spark_catalog.default.t[a#1,b#2] parquet  /  Relation [a#1,b#2] parquet (a path)
    opened = node.content.find("[")
    closed = node.content.rfind("]")
    if opened < 0 or closed < opened:
        raise _UnreadableError("Relation without columns")
    name = node.content[len("Relation ") : opened].strip()
    columns = attributes(node.content[opened + 1 : closed])
    if name:
        return _table_columns(LineageSource(table=tuple(split_identifier(name))), columns)
    paths = {walker.paths.get(expr_id) for _, expr_id in columns} - {None}
    path = paths.pop() if len(paths) == 1 else None
    return _table_columns(LineageSource(path=path) if path else None, columns)


def _relation_v2(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # RelationV2[a#1, b#2] catalog.db.t name
    closed = node.content.rfind("] ")
    if not node.content.startswith("RelationV2[") or closed < 0:
        raise _UnreadableError("RelationV2 without columns")
    columns = attributes(node.content[len("RelationV2[") : closed])
    name = node.content[closed + 2 :].split(" ")[0]
    kind, parsed = parse_target(name)
    source = LineageSource(path=str(parsed)) if kind == "path" else LineageSource(table=tuple(parsed))
    return _table_columns(source, columns)


def _hive_relation(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # HiveTableRelation [`db`.`t`, <serde>, Data Cols: [a#1, b#2], Partition Cols: [p#3]]
    groups = _groups(node.content)
    if not groups:
        raise _UnreadableError("HiveTableRelation without columns")
    body = groups[0]
    identifier = _split_items(body)[0]
    columns: list[tuple[str, int]] = []
    for label in ("Data Cols: [", "Partition Cols: ["):
        start = body.find(label)
        if start >= 0:
            opened = start + len(label) - 1
            columns += attributes(body[opened + 1 : _closing(body, opened)])
    return _table_columns(LineageSource(table=tuple(split_identifier(identifier))), columns)


def _local_relation(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # data written in the plan itself: no source
    groups = _groups(node.content)
    return [(expr_id, name, _NONE) for name, expr_id in attributes(groups[0])] if groups else []


def _range(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    return [(None, "id", _NONE)]  # Range prints no output; its one column is ``id``


def _one_row(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    return []


def _opaque(walker: _Walker, node: _Node, outer: _Scope | None) -> Output:
    # rows of unknown origin (an RDD, a checkpoint): the columns cannot be traced
    groups = _groups(node.content)
    return [(expr_id, name, None) for name, expr_id in attributes(groups[0])] if groups else []


_NODES: dict[str, NodeHandler] = {
    **dict.fromkeys(
        (
            "SubqueryAlias",
            "View",
            "Filter",
            "Sort",
            "GlobalLimit",
            "LocalLimit",
            "Limit",
            "Offset",
            "Tail",
            "Distinct",
            "Deduplicate",
            "DeduplicateWithinWatermark",
            "Repartition",
            "RepartitionByExpression",
            "RebalancePartitions",
            "Sample",
            "ResolvedHint",
            "CollectMetrics",
            "EventTimeWatermark",
            "Subquery",
            "TypedFilter",
        ),
        _pass_through,
    ),
    "Project": _project,
    "Aggregate": _aggregate,
    "Window": _window,
    "Generate": _generate,
    "Expand": _expand,
    "Join": _join,
    "Union": _union_node,
    "Intersect": _left_side,
    "Except": _left_side,
    "WithCTE": _with_cte,
    "CTERelationDef": _cte_def,
    "CTERelationRef": _cte_ref,
    "Relation": _relation,
    "RelationV2": _relation_v2,
    "HiveTableRelation": _hive_relation,
    "LocalRelation": _local_relation,
    "Range": _range,
    "OneRowRelation": _one_row,
    "LogicalRDD": _opaque,
    "ExternalRDD": _opaque,
}


def _is_command(name: str) -> bool:
    return name.endswith("Command") or name in (
        "AppendData",
        "OverwriteByExpression",
        "OverwritePartitionsDynamic",
        "CreateTableAsSelect",
        "ReplaceTableAsSelect",
        "InsertIntoHiveTable",
    )


# --- entry points -----------------------------------------------------------------------------


def lineage_from_tree(
    text: str, columns: Sequence[str] | None = None, paths: Mapping[int, str] | None = None
) -> ColumnLineage | None:
    """Column lineage of the query printed in ``text`` (an analysed plan's ``treeString``; when its
    root is a write command, of the query it writes).

    ``columns`` are the written column names (used when they match the query's width: a table's
    columns for an insert); ``paths`` maps attribute ids of path relations (printed without name)
    to their path. ``None`` when the plan cannot be read at all.
    """
    try:
        root = parse_tree(text)
        while _is_command(root.name) and (root.children or root.inner):
            root = (root.children or root.inner)[-1]
        output = _Walker(paths or {}).evaluate(root)
    except _UnreadableError:
        return None
    except RecursionError:
        return None
    names = list(columns) if columns is not None and len(columns) == len(output) else None
    lineage: ColumnLineage = {}
    for i, (_, name, deps) in enumerate(output):
        lineage[names[i] if names else name] = deps
    return lineage


_SECTION = re.compile(r"^== (.+) ==$", re.MULTILINE)
_FILE_SCAN = re.compile(
    r"FileScan \S+ \[(?P<attrs>[^\]]*)\].*?Location: \w+\((?P<count>\d+) paths?\)\[(?P<paths>[^\]]*)\]"
)


def explain_sections(text: str) -> dict[str, str]:
    """The sections of an ``EXPLAIN EXTENDED`` text by title (``Analyzed Logical Plan``...)."""
    sections: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections[match.group(1)] = text[match.end() : end].strip("\n")
    return sections


def scan_paths(physical_plan: str) -> dict[int, str]:
    """Attribute id -> path, from the ``FileScan`` nodes of a physical plan reading one path
    without a table name (a truncated location, ending in ``...``, is not used)."""
    paths: dict[int, str] = {}
    for match in _FILE_SCAN.finditer(physical_plan):
        location = match.group("paths")
        if match.group("count") != "1" or location.endswith("...") or ", " in location:
            continue
        try:
            ids = [expr_id for _, expr_id in attributes(match.group("attrs"))]
        except _UnreadableError:
            continue
        for expr_id in ids:
            paths[expr_id] = normalize_path(location)
    return paths


def lineage_from_explain(text: str, columns: Sequence[str] | None = None) -> ColumnLineage | None:
    """Column lineage from an ``EXPLAIN EXTENDED`` text (Spark Connect): the analysed plan, with
    the paths of file relations taken from the physical plan's scans."""
    sections = explain_sections(text)
    analyzed = sections.get("Analyzed Logical Plan")
    if not analyzed:
        return None
    lines = analyzed.split("\n")
    # the output schema comes first, when there is one (a write command has none): then the next
    # line is the plan's root, not a child line
    if len(lines) > 1 and not lines[1].startswith((" ", ":", "+")):
        lines = lines[1:]
    return lineage_from_tree("\n".join(lines), columns, scan_paths(sections.get("Physical Plan", "")))


# --- several writes of one asset --------------------------------------------------------------


def merge_lineage(lineages: Sequence[ColumnLineage | None]) -> dict[str, frozenset[SourceColumn]] | None:
    """One asset's lineage over its writes: per column, the union over the writes that wrote it.
    ``None`` when a write's lineage is unknown; a column unresolved in any write is left out."""
    merged: dict[str, frozenset[SourceColumn]] = {}
    unresolved: set[str] = set()
    for lineage in lineages:
        if lineage is None:
            return None
        for column, deps in lineage.items():
            if deps is None:
                unresolved.add(column)
            else:
                merged[column] = merged.get(column, _NONE) | deps
    return {column: deps for column, deps in merged.items() if column not in unresolved}


# --- MERGE on Spark Connect -------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_]\w*")
_ACTIONS = re.compile(r"\bactions: \[")
_CLAUSE = re.compile(r"\b([A-Za-z]+) \[(?=condition: |actions: )")
_ASSIGNED = re.compile(r"^((?:`(?:[^`]|``)*`|[\w$]+))(?:\.\S+)? = (.*)$", re.DOTALL)


def _top_level_words(sql: str) -> list[tuple[str, int, int]]:
    """``(WORD, start, end)`` of the words outside brackets, strings, quoted names and comments."""
    words: list[tuple[str, int, int]] = []
    depth, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" and ch != "`" else 1
            i += 1
        elif ch in "([{":
            depth, i = depth + 1, i + 1
        elif ch in ")]}":
            depth, i = depth - 1, i + 1
        elif ch.isalpha() or ch == "_":
            match = _WORD.match(sql, i)
            assert match is not None
            if depth == 0:
                words.append((match.group(0).upper(), i, match.end()))
            i = match.end()
        else:
            i += 1
    return words


def merge_source_query(statement: str) -> str | None:
    """``SELECT * FROM <source>`` for a ``MERGE INTO target USING <source> ON ...`` statement (a
    table or a subquery, with its alias): the query whose columns the MERGE's actions read."""
    words = _top_level_words(statement)
    if not words or words[0][0] != "MERGE":
        return None
    using = next((k for k, w in enumerate(words) if w[0] == "USING"), None)
    if using is None:
        return None
    on = next((w for w in words[using + 1 :] if w[0] == "ON"), None)
    if on is None:
        return None
    source = statement[words[using][2] : on[1]].lstrip().rstrip(" \t")  # a newline ends a -- comment
    return f"SELECT * FROM {source}" if source.strip() else None


def _merge_actions(command: str) -> list[tuple[str, str, bool]]:
    """``(target column, expression, in an INSERT clause)`` of every action Delta's analysed
    ``MergeIntoCommand`` line prints (``Update [actions: [`c` = expr, ...]]``, ``Insert [...]``)."""
    found: list[tuple[str, str, bool]] = []
    for match in _ACTIONS.finditer(command):
        opened = match.end() - 1
        clauses = [c.group(1) for c in _CLAUSE.finditer(command) if c.start() < match.start()]
        kind = clauses[-1] if clauses else ""
        body = command[opened + 1 : _closing(command, opened)]
        for item in _split_items(body):
            assigned = _ASSIGNED.match(item)
            if assigned is None:
                raise _UnreadableError(f"not a MERGE action: {item[:80]!r}")
            column = assigned.group(1)
            if column.startswith("`"):
                column = column[1:-1].replace("``", "`")
            found.append((column, assigned.group(2), kind.startswith("Insert")))
    return found


def merge_lineage_from_explain(
    merge_text: str, source_text: str, target_columns: Sequence[str] | None
) -> ColumnLineage | None:
    """Column lineage of a Delta ``MERGE`` on Spark Connect, like the classic listener reads it from
    ``MergeIntoCommand``: each target column an action assigns gets the source columns its
    expression reads.

    ``merge_text`` is the ``EXPLAIN EXTENDED`` of the statement (Delta's analysed command prints its
    actions, not its source plan); ``source_text`` that of ``SELECT * FROM <source>``, whose lineage
    gives each source column's dependencies by name. The two analyses number attributes differently,
    so an attribute an action reads is the source's when an ``INSERT`` action reads it (inserts
    read nothing else), else by its name when only one side has a column of that name; a target
    column keeps the target's own (no dependency). Anything else leaves its column unresolved.
    """
    try:
        analyzed = explain_sections(merge_text).get("Analyzed Logical Plan") or ""
        command = next((ln for ln in analyzed.splitlines() if ln.startswith("MergeIntoCommand")), None)
        source = lineage_from_explain(source_text)
        if command is None or source is None:
            return None
        actions = _merge_actions(command)
    except _UnreadableError:
        return None
    by_name: dict[str, Deps] = {}
    duplicated: set[str] = set()
    for name, deps in source.items():
        key = name.lower()
        if key in by_name:
            duplicated.add(key)
        by_name[key] = deps
    targets = {c.lower() for c in target_columns or ()}
    source_ids: dict[str, set[int]] = {}
    for _, expression, inserted in actions:
        if inserted:
            for match in _REF.finditer(expression):
                referenced = _ref_name(expression, match.start())
                if referenced is not None:
                    source_ids.setdefault(referenced.lower(), set()).add(int(match.group(1)))

    def deps_of(name: str | None, expr_id: int) -> Deps:
        if name is None:
            return None
        key = name.lower()
        in_source = key in by_name and key not in duplicated
        if expr_id in source_ids.get(key, ()) or (in_source and key not in targets):
            return by_name[key] if in_source else None
        if key in targets and (key not in by_name or source_ids.get(key)):
            return _NONE  # the target's own column (the source's of that name is another id)
        return None

    lineage: dict[str, set[SourceColumn]] = {}
    unknown: set[str] = set()
    for column, expression, _ in actions:
        deps_so_far = lineage.setdefault(column, set())
        for match in _REF.finditer(expression):
            found = deps_of(_ref_name(expression, match.start()), int(match.group(1)))
            if found is None:
                unknown.add(column)
            else:
                deps_so_far |= found
    return {column: None if column in unknown else frozenset(deps) for column, deps in lineage.items()}
