"""The walk: each plan node's output columns with their dependencies, bottom-up, through the
rule registered for the node."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dagster_pipes_spark.spark._lineage._expressions import (
    LAMBDA_VAR,
    NO_VALUE_CALL,
    REF,
    SUBQUERY,
    closing,
    without_tests,
)
from dagster_pipes_spark.spark._lineage._tree import (
    ITEM_ID,
    Node,
    UnknownNodeError,
    UnreadableError,
    balanced,
    split_items,
)
from dagster_pipes_spark.spark._lineage_types import Deps, SourceColumn

# (``LineageSource``, ``SourceColumn``, ``Deps``, ``ColumnLineage``: the result's types live below,
# beside the write record that carries them, in ``_lineage_types``.)
#: a plan node's output columns: ``(attribute id, name, dependencies)``; ``Range`` prints no id
Output = list[tuple[int | None, str, Deps]]

NONE: frozenset[SourceColumn] = frozenset()


def union(parts: Iterable[Deps]) -> Deps:
    out: set[SourceColumn] = set()
    for deps in parts:
        if deps is None:
            return None
        out |= deps
    return frozenset(out)


@dataclass
class Scope:
    """Attribute ids visible to a node's expressions, with their dependencies."""

    deps: dict[int, Deps]
    #: outputs printed without ids (``Range``'s ``id``): name -> dependencies
    unnamed: dict[str, Deps] = field(default_factory=dict)
    outer: Scope | None = None

    def lookup(self, expr_id: int, name: Callable[[], str | None] | str | None = None) -> Deps:
        """Dependencies of attribute ``expr_id``; ``name`` (or a function giving it) binds an
        output printed without id."""
        scope: Scope | None = self
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
        raise UnreadableError(f"attribute #{expr_id} is not produced below")


def ref_name(text: str, hash_index: int) -> str | None:
    """The identifier right before ``#`` (enough to bind ``Range``'s unprinted ``id``)."""
    match = re.search(r"([A-Za-z_][\w$]*)$", text[:hash_index])
    return match.group(1) if match else None


class Walker:
    """Computes, bottom-up, each node's output: ``[(expr_id, name, deps)]``."""

    def __init__(self, paths: Mapping[int, str], rules: Mapping[str, NodeHandler]) -> None:
        self.paths = paths
        #: the rule of each plan node, by name
        self.rules = rules
        self.ctes: dict[str, Output] = {}
        self._done: dict[int, Output | UnreadableError] = {}
        #: why columns are unresolved though no rule failed (rows of unknown origin)
        self.notes: list[UnreadableError] = []

    def problems(self) -> list[UnreadableError]:
        """Why the walk left columns out: each distinct reason once, the deepest first (a node's
        error is its child's, passed up)."""
        seen: dict[str, UnreadableError] = {}
        for done in [*self._done.values(), *self.notes]:
            if isinstance(done, UnreadableError):
                seen.setdefault(str(done), done)
        return list(seen.values())

    # expressions

    def expression(self, text: str, scope: Scope, subqueries: Callable[[], Deps]) -> Deps:
        """Dependencies of one printed expression."""
        parts: list[Deps] = []
        lambda_ids = {int(m.group(1)) for m in LAMBDA_VAR.finditer(text)}
        text = without_tests(LAMBDA_VAR.sub(" ", text))
        while True:  # cut out subquery expressions, keeping what a scalar subquery returns
            match = SUBQUERY.search(text)
            if match is None:
                break
            end = match.end()
            if text.startswith("[", end):
                end = closing(text, end) + 1
            if match.group(1) == "scalar-subquery":
                parts.append(subqueries())
            elif match.group(1) == "lateral-subquery":
                raise UnreadableError("lateral subquery")
            text = text[: match.start()] + " " + text[end:]
        while True:  # cut out calls whose value does not derive from their arguments
            match = NO_VALUE_CALL.search(text)
            if match is None:
                break
            text = text[: match.start()] + " " + text[closing(text, match.end() - 1) + 1 :]
        for match in REF.finditer(text):
            expr_id = int(match.group(1))
            if expr_id not in lambda_ids:
                parts.append(scope.lookup(expr_id, functools.partial(ref_name, text, match.start())))
        return union(parts)

    def named_list(self, text: str, scope: Scope, subqueries: Callable[[], Deps]) -> Output:
        """A printed list of named expressions (``a#1, f(b#2) AS c#3``)."""
        out: Output = []
        for item in split_items(text):
            match = ITEM_ID.search(item)
            if match is None:
                raise UnreadableError(f"not a named expression: {item[:80]!r}")
            expr_id = int(match.group(1))
            head = item[: match.start()]
            known = self._known(expr_id, head, scope)
            if known is not None:  # an attribute passed through
                out.append((expr_id, head, known[0]))
                continue
            split = self._alias_split(head)
            if split is None:
                raise UnreadableError(f"not a named expression: {item[:80]!r}")
            expression, name = split
            out.append((expr_id, name, self.expression(expression, scope, subqueries)))
        return out

    @staticmethod
    def _known(expr_id: int, name: str, scope: Scope) -> tuple[Deps] | None:
        try:
            return (scope.lookup(expr_id, name),)
        except UnreadableError:
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
            if balanced(head[:pos]):
                return head[:pos], head[pos + 4 :]

    # plan nodes

    def output(self, node: Node, outer: Scope | None = None) -> Output:
        """The node's output columns with their dependencies (remembered, outside subqueries)."""
        if outer is None and id(node) in self._done:
            done = self._done[id(node)]
            if isinstance(done, UnreadableError):
                raise done
            return done
        handler = self.rules.get(node.name)
        try:
            if handler is None:
                raise UnknownNodeError(node.name or node.content[:40])
            result = handler(self, node, outer)
        except UnreadableError as exc:
            if outer is None:
                self._done[id(node)] = exc
            raise
        if outer is None:
            self._done[id(node)] = result
        return result

    def evaluate(self, root: Node) -> Output:
        """The root's output, computed children first so that deep plans (hundreds of chained
        projections) need no deep recursion."""
        order: list[Node] = []
        stack = [root]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(node.children)
        for node in reversed(order):  # every node after its children, CTE definitions first
            try:
                self.output(node)
            except UnreadableError:
                pass  # remembered: raised again where a parent needs it
        return self.output(root)

    def child_outputs(self, node: Node, outer: Scope | None) -> list[Output]:
        return [self.output(child, outer) for child in node.children]

    def scope_of(self, node: Node, outer: Scope | None) -> tuple[Scope, list[Output]]:
        outputs = self.child_outputs(node, outer)
        deps: dict[int, Deps] = {}
        unnamed: dict[str, Deps] = {}
        for columns in outputs:
            for expr_id, name, col_deps in columns:
                if expr_id is None:
                    unnamed[name] = col_deps
                else:
                    deps[expr_id] = col_deps
        return Scope(deps, unnamed, outer), outputs


NodeHandler = Callable[[Walker, Node, "Scope | None"], Output]
