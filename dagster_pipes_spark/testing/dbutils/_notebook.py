"""``dbutils.notebook``: ``exit(value)`` ends the notebook with a result."""

from __future__ import annotations

__all__ = ["FakeNotebook", "NotebookExit"]


class NotebookExit(Exception):  # noqa: N818 - the name notebooks know
    """Raised by ``dbutils.notebook.exit(value)`` to stop the notebook (as the real one does)."""

    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(f"Notebook exited: {value}")


class FakeNotebook:
    """``dbutils.notebook``: ``exit(value)`` raises :class:`NotebookExit` and records the value."""

    #: The exception ``exit`` raises (what a notebook runner catches as a successful end).
    exit_exception = NotebookExit

    def __init__(self) -> None:
        self.exit_value: str | None = None

    def exit(self, value: str) -> None:
        """Stop the notebook, returning ``value`` to the caller (raises :class:`NotebookExit`)."""
        self.exit_value = str(value)
        raise NotebookExit(self.exit_value)
