"""Reading the printed plan tree: nodes, their children and inner plans, bracketed groups and
attribute lists."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Node:
    name: str
    content: str
    depth: int
    children: list[Node] = field(default_factory=list)
    inner: list[Node] = field(default_factory=list)  # plans of subquery expressions, CTAS queries


class UnreadableError(Exception):
    """The text cannot be read unambiguously."""


class UnknownNodeError(UnreadableError):
    """A plan node no rule is registered for: a gap of the registry, named in a warning."""

    def __init__(self, node: str) -> None:
        super().__init__(f"plan node {node!r} is not understood")
        self.node = node


def line_depth(line: str) -> tuple[int, str]:
    """``(depth, content)`` of a ``treeString`` line: 3-character indent units (``":  "`` or
    ``"   "``), then a ``"+- "`` / ``":- "`` connector for anything but the root."""
    i = units = 0
    while line.startswith((":  ", "   "), i):
        i += 3
        units += 1
    if line.startswith(("+- ", ":- "), i):
        return units + 1, line[i + 3 :]
    if units:
        raise UnreadableError(f"not a plan line: {line[:80]!r}")
    return 0, line


def node_name(content: str) -> str:
    match = re.match(r"[A-Za-z_][\w$]*", content)
    return match.group(0) if match else ""


def parse_tree(text: str) -> Node:
    """The root of a printed plan. A node's children are printed one level deeper; the plans
    inside its expressions (subqueries) and a CTAS query two levels deeper, before its children."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise UnreadableError("empty plan")
    chain: list[Node] = []
    root: Node | None = None
    for line in lines:
        depth, content = line_depth(line)
        node = Node(node_name(content), content, depth)
        if depth == 0:
            if root is not None:  # a second root: a multi-line literal or name broke the layout
                raise UnreadableError("more than one root")
            root = node
        else:
            while chain and chain[-1].depth >= depth:
                chain.pop()
            if not chain:
                raise UnreadableError("a plan line without parent")
            parent = chain[-1]
            if parent.depth == depth - 1:
                parent.children.append(node)
            elif parent.depth == depth - 2 and not parent.children:
                parent.inner.append(node)
            else:
                raise UnreadableError("unexpected indentation")
        chain.append(node)
    assert root is not None
    return root


OPEN = {"(": ")", "[": "]", "{": "}"}
CLOSE = {")", "]", "}"}


def scan_groups(text: str, start: int = 0) -> list[tuple[int, int]] | None:
    """``(open, close)`` indices of the top-level ``[...]`` groups of ``text[start:]``; ``None``
    when brackets do not balance."""
    stack: list[str] = []
    groups: list[tuple[int, int]] = []
    opened = -1
    for i in range(start, len(text)):
        ch = text[i]
        if ch in OPEN:
            if not stack and ch == "[":
                opened = i
            stack.append(OPEN[ch])
        elif ch in CLOSE:
            if not stack or stack.pop() != ch:
                return None
            if not stack and ch == "]" and opened >= 0:
                groups.append((opened, i))
                opened = -1
    return groups if not stack else None


def group_spans(content: str) -> list[tuple[int, int]]:
    found = scan_groups(content)
    if found is None:
        raise UnreadableError("unbalanced brackets")
    return found


def bracket_groups(content: str) -> list[str]:
    """Texts inside the top-level ``[...]`` groups of a node line (empty lists are not printed)."""
    return [content[a + 1 : b] for a, b in group_spans(content)]


def balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def split_items(text: str) -> list[str]:
    """Split a printed list at its top-level ``", "``."""
    items: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth -= 1
            if depth < 0:
                raise UnreadableError("unbalanced list")
        elif depth == 0 and text.startswith(", ", i):
            items.append(text[start:i])
            start = i + 2
            i += 1
        i += 1
    if depth:
        raise UnreadableError("unbalanced list")
    tail = text[start:]
    if tail or items:
        items.append(tail)
    return items


_ATTR_END = re.compile(r"#(\d+)L?(?:-T\d+ms)?(?:,\s?|$)")
ITEM_ID = re.compile(r"#(\d+)L?(?:-T\d+ms)?$")


def attributes(text: str) -> list[tuple[str, int]]:
    """``(name, expr_id)`` of a printed attribute list (``a#1,b#2L`` or ``a#1, b#2L``)."""
    out: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        match = _ATTR_END.search(text, pos)
        if match is None:
            raise UnreadableError(f"not an attribute list: {text[:80]!r}")
        out.append((text[pos : match.start()], int(match.group(1))))
        pos = match.end()
    return out
