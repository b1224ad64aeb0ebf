"""Process-lifecycle guards: nothing reported is lost on SIGTERM, an uncaught error or interpreter exit.

While a context is open (and ``open_dagster_pipes`` runs in the main thread):

* SIGTERM (what Databricks and Kubernetes send) raises :class:`DagsterPipesTerminated` in the main
  thread, so the ``with`` block exits, ``closed`` carries the signal as an exception and every
  buffered message is flushed; at exit the signal is re-raised with its default action, so the
  process ends with the usual status (-15 / 143). A user-installed SIGTERM handler is called instead
  and keeps its semantics; an ignored SIGTERM stays ignored. Whatever storage does, buffered writers
  get at most :data:`TERMINATION_FLUSH_TIMEOUT` seconds from the signal to deliver what is left (see
  :func:`termination_deadline`), so the process exits well within 30 s of SIGTERM.
* an uncaught exception is remembered (``sys.excepthook``) and an unclosed context is closed at
  interpreter exit with that exception, flushing buffered writers.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Protocol

from ._errors import DagsterPipesMessageLossError, DagsterPipesTerminated
from ._protocol import PipesException, pipes_exception_from_tb
from ._redact import write_stderr


class Guarded(Protocol):
    """What the guards need of a context (``PipesContext`` satisfies it)."""

    @property
    def is_closed(self) -> bool:
        """Whether ``closed`` was sent."""

    @property
    def is_closing(self) -> bool:
        """Whether the final flush is under way."""

    def close(self, exc: PipesException | None = None) -> None:
        """Send ``closed`` (with ``exc``) and flush."""


_lock = threading.Lock()
_active: Guarded | None = None
_previous_handler: Any = None
_installed_handler = False
_received_signal: int | None = None
_uncaught: BaseException | None = None
_atexit_registered = False
_original_excepthook: Any = None
_terminated_at: float | None = None

#: Seconds buffered writers may spend delivering messages after SIGTERM (whatever their
#: ``flush_timeout``): the process then exits, within 30 s of the signal.
TERMINATION_FLUSH_TIMEOUT = 20.0


def termination_deadline() -> float | None:
    """When (``time.monotonic()``) buffered writers must give up after SIGTERM; None without SIGTERM.

    Read by the writers while they flush; nothing is done in the signal handler itself (which must
    not take locks the interrupted thread may hold).
    """
    at = _terminated_at
    return None if at is None else at + TERMINATION_FLUSH_TIMEOUT


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _received_signal
    _received_signal = signum
    ctx = _active
    prev = _previous_handler
    if callable(prev) and prev not in (signal.default_int_handler,):
        try:
            prev(signum, frame)
        except BaseException:  # the user's handler ends the process: our flush gets the termination budget
            _start_termination_budget()
            raise
        return  # the user's handler lets the process go on
    _start_termination_budget()
    if ctx is not None and ctx.is_closing and not ctx.is_closed:
        return  # the final flush is under way: finish it; `_at_exit` then dies as requested
    if ctx is None or ctx.is_closed:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise DagsterPipesTerminated(signum)


def _start_termination_budget() -> None:
    global _terminated_at
    if _terminated_at is None:
        _terminated_at = time.monotonic()


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    global _uncaught
    _uncaught = exc
    hook = _original_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _at_exit() -> None:
    ctx = _active
    lost_reports = False
    if ctx is not None and not ctx.is_closed:
        exc = _uncaught
        try:
            if exc is not None:
                ctx.close(_exception_info(exc))
            else:
                ctx.close()
        except DagsterPipesMessageLossError as e:
            lost_reports = exc is None  # after an uncaught error the exit status is non-zero already
            write_stderr(f"[dagster-pipes] {e}\n")
        except Exception as e:  # noqa: BLE001 - last chance: report, never mask the exit
            write_stderr(f"[dagster-pipes] closing at exit failed: {e!r}\n")
    signum = _received_signal
    if signum is not None and _previous_handler in (signal.SIG_DFL, None):
        # Die with the usual status for the signal, after every message went out.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    elif lost_reports:
        # A report never reached Dagster: the process must not exit 0 (atexit cannot set the
        # status any other way; this is the last of our handlers to matter).
        write_stderr("[dagster-pipes] exiting with status 1: reports were lost (see above).\n")
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        os._exit(1)


def _exception_info(exc: BaseException) -> PipesException:
    import traceback

    return pipes_exception_from_tb(traceback.TracebackException.from_exception(exc))


def install(ctx: Guarded) -> None:
    """Guard ``ctx`` against SIGTERM, uncaught exceptions and interpreter exit."""
    global _active, _previous_handler, _installed_handler, _atexit_registered, _original_excepthook
    with _lock:
        _active = ctx
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
        if sys.excepthook is not _excepthook:
            _original_excepthook = sys.excepthook
            sys.excepthook = _excepthook
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
            return
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm or current == signal.SIG_IGN:
            return
        try:
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # not allowed here (embedded interpreters)
            return
        _previous_handler = current
        _installed_handler = True


def uninstall(ctx: Guarded) -> None:
    """Remove the guards once ``ctx`` has closed (restoring any previous SIGTERM handler)."""
    global _active, _installed_handler
    with _lock:
        if _active is not ctx:
            return
        _active = None
        if (
            _installed_handler
            and _received_signal is None
            and threading.current_thread() is threading.main_thread()
        ):
            try:
                if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                    signal.signal(
                        signal.SIGTERM, _previous_handler if _previous_handler is not None else signal.SIG_DFL
                    )
            except (ValueError, OSError):
                pass
            _installed_handler = False
