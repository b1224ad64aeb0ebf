"""The errors the fake ``dbutils`` raises, worded like the notebook's py4j errors."""

from __future__ import annotations

import itertools

__all__ = ["DbutilsError", "ExecutionError"]

_call_ids = itertools.count(100)


class DbutilsError(Exception):
    """Base class of the errors raised by :class:`FakeDbutils`."""


class ExecutionError(DbutilsError):
    """A failed ``dbutils`` call, worded like the py4j ``ExecutionError`` a notebook shows::

    An error occurred while calling o123.ls.
    : java.io.FileNotFoundException: File dbfs:/nope does not exist.
    """

    def __init__(self, method: str, java_class: str, detail: str) -> None:
        self.method = method
        self.java_class = java_class
        self.detail = detail
        super().__init__(
            f"An error occurred while calling o{next(_call_ids)}.{method}.\n: {java_class}: {detail}"
        )
