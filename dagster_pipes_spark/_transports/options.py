"""How a chunk channel delivers: :class:`DeliveryOptions` (reader interval, flush timeout, retry
policy, loss mode, memory caps), validated once and shared by a writer's channels, and the read access
to them that channels and writers share (:class:`DeliverySettings`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, Literal, TypeVar, cast, overload

from .._errors import DagsterPipesError
from .pending import DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_SPILL_BYTES
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "DeliveryOptions", "DeliverySettings", "Forwarded", "OnMessageLoss"]

T = TypeVar("T")

OnMessageLoss = Literal["raise", "warn"]

#: Default seconds ``close()`` may spend delivering what is left.
DEFAULT_FLUSH_TIMEOUT = 60.0


def check_on_message_loss(value: str) -> OnMessageLoss:
    """Validate an ``on_message_loss`` argument."""
    if value not in ("raise", "warn"):
        raise DagsterPipesError(
            f"on_message_loss={value!r}: expected 'raise' (the default: a lost report fails the job) or "
            "'warn' (only say so on stderr)."
        )
    return value  # type: ignore[return-value]


def check_max_pending_bytes(value: int | None) -> int | None:
    """Validate a ``max_pending_bytes`` argument (bytes > 0, or None for no cap)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise DagsterPipesError(
            f"max_pending_bytes={value!r}: expected a number of bytes > 0 (default "
            f"{DEFAULT_MAX_MEMORY_BYTES:,}), or None to keep every pending message in memory."
        )
    return value


def check_flush_timeout(flush_timeout: float) -> float:
    """Validate a ``flush_timeout`` argument (seconds > 0)."""
    if not isinstance(flush_timeout, (int, float)) or not flush_timeout > 0 or math.isinf(flush_timeout):
        raise DagsterPipesError(
            f"flush_timeout={flush_timeout!r}: expected a finite number of seconds > 0 (the default is "
            f"{DEFAULT_FLUSH_TIMEOUT:g})."
        )
    return float(flush_timeout)


@dataclass(frozen=True)
class DeliveryOptions:
    """How a chunk channel delivers, validated once and shared by a writer's channels.

    ``interval`` is the orchestrator reader's ``interval`` (uploads are paced to it);
    ``flush_timeout`` bounds :meth:`.blob.PipesBlobStoreMessageWriterChannel.close`; ``retry`` is the
    :class:`~.retry.RetryPolicy` for uploads; ``on_message_loss`` says whether a lost report fails
    the job (``"raise"``) or only warns; ``max_pending_bytes`` caps the messages kept in memory while
    storage is slow or down (older ones spill to a temporary file of at most ``max_spill_bytes``).
    """

    interval: float = 10
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    on_message_loss: OnMessageLoss = "raise"
    max_pending_bytes: int | None = DEFAULT_MAX_MEMORY_BYTES
    max_spill_bytes: int = DEFAULT_MAX_SPILL_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "flush_timeout", check_flush_timeout(self.flush_timeout))
        object.__setattr__(self, "retry", self.retry or DEFAULT_RETRY_POLICY)
        check_on_message_loss(self.on_message_loss)
        check_max_pending_bytes(self.max_pending_bytes)

    @classmethod
    def of(
        cls, delivery: DeliveryOptions | None = None, *, interval: float | None = None, **changes: Any
    ) -> DeliveryOptions:
        """``delivery`` (default settings if None) with ``interval`` and other settings changed;
        an unknown setting is an error naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise DagsterPipesError(
                f"Unknown delivery setting(s) {', '.join(unknown)}: expected {', '.join(sorted(known))}."
            )
        if interval is not None:
            changes["interval"] = interval
        base = delivery if delivery is not None else cls()
        return replace(base, **changes) if changes else base


class Forwarded(Generic[T]):
    """A read-only attribute that is the same-named attribute of the object's ``holder``:
    ``interval = Forwarded[float]("delivery", "The reader's interval.")``."""

    def __init__(self, holder: str, doc: str) -> None:
        self.holder = holder
        self.name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Forwarded[T]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...
    def __get__(self, obj: object, objtype: type | None = None) -> T | Forwarded[T]:
        if obj is None:
            return self
        return cast(T, getattr(getattr(obj, self.holder), self.name))

    def __set__(self, obj: object, value: T) -> None:
        raise AttributeError(f"{self.name} is read-only (it is {self.holder}.{self.name})")


class DeliverySettings:
    """Read access to the :class:`DeliveryOptions` a channel or a writer holds as ``delivery``."""

    delivery: DeliveryOptions

    interval = Forwarded[float](
        "delivery", "The orchestrator reader's ``interval`` (uploads are paced to it)."
    )
    flush_timeout = Forwarded[float]("delivery", "Seconds closing may spend delivering what is left.")
    retry = Forwarded[RetryPolicy]("delivery", "How failed uploads are retried.")
    on_message_loss = Forwarded[OnMessageLoss](
        "delivery", 'Whether a lost report fails the job (``"raise"``) or only warns (``"warn"``).'
    )
    max_pending_bytes = Forwarded[int | None](
        "delivery", "The most bytes of pending messages kept in memory (None: no cap)."
    )
