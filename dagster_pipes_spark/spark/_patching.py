"""Class attributes wrapped while at least one block observes, restored after the last one.

pyspark offers no hook for what the mechanisms need to see (Spark Connect's writers, Delta's Python
merge builder, Structured Streaming's writers), so they wrap class attributes. Blocks may nest or run
on several threads at once: the classes are wrapped when the first observer arrives and restored when
the last one leaves, and the wrappers ask which observers are there at each call. One
:class:`ClassPatches` per set of wrapped attributes keeps that rule in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: ``(class, attribute, make)``: ``make(original)`` returns the wrapper of the class's own attribute.
Spec = tuple[type, str, Callable[[Any], Any]]


class ClassPatches(Generic[T]):
    """The observers present and the attributes wrapped for them."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._observers: list[T] = []
        self._patches: list[tuple[type, str, Any, Any]] = []  # (class, attribute, original, wrapper)

    def add(self, observer: T, specs: Callable[[], Iterable[Spec]]) -> None:
        """Add ``observer``; the first one wraps each attribute ``specs()`` names that the class
        defines itself (the others are skipped)."""
        with self._lock:
            if not self._patches:
                for cls, name, make in specs():
                    original = cls.__dict__.get(name)
                    if original is None:
                        continue
                    wrapper = make(original)
                    setattr(cls, name, wrapper)
                    self._patches.append((cls, name, original, wrapper))
            self._observers.append(observer)

    def remove(self, observer: T) -> list[str]:
        """Remove ``observer``; the last one restores the classes. Returns the attributes left as they
        are because something else wrapped them over ours (ours then pass through: no observers)."""
        left: list[str] = []
        with self._lock:
            if observer in self._observers:
                self._observers.remove(observer)
            if self._observers:
                return left
            for cls, name, original, wrapper in reversed(self._patches):
                if cls.__dict__.get(name) is wrapper:
                    setattr(cls, name, original)
                else:
                    left.append(f"{cls.__name__}.{name}")
            self._patches.clear()
        return left

    def observers(self, keep: Callable[[T], bool] | None = None) -> list[T]:
        """The observers present (those ``keep`` accepts)."""
        with self._lock:
            return [o for o in self._observers if keep is None or keep(o)]

    def wrapped(self, name: str | None = None) -> bool:
        """Whether any attribute (the attribute ``name``) is wrapped now."""
        with self._lock:
            return any(name is None or wrapped == name for _, wrapped, _, _ in self._patches)


__all__ = ["ClassPatches", "Spec"]
