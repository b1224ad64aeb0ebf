"""Errors and warnings raised by the external side of the Pipes protocol."""

from __future__ import annotations


class DagsterPipesError(Exception):
    """Raised for any invalid use of the Pipes API; the message names the problem and the fix."""


class DagsterPipesWarning(Warning):
    """Warns about a degraded but non-fatal situation (for example: not launched by Dagster)."""


class DagsterPipesTerminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM while a Pipes context is open.

    It derives from ``BaseException`` (like ``KeyboardInterrupt``) so that ``except Exception``
    blocks in user code do not swallow it; the open context reports it in ``closed`` and the
    process then exits with the usual status for the signal.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        try:
            name = signal.Signals(signum).name
        except ValueError:  # pragma: no cover - unknown signal numbers
            name = f"signal {signum}"
        self.signal_name = name
        super().__init__(
            f"The external process received {name} (signal {signum}) and is terminating; "
            "every message reported before it was delivered."
        )


class DagsterPipesMessageLossError(DagsterPipesError):
    """Raised when a Pipes context closes and a report (a materialization, an asset check, a custom
    message or ``closed``) could not be delivered to Dagster: the run's results are incomplete, so the
    job must not look successful. Writers take ``on_message_loss="warn"`` to only warn instead."""


class UnreadableAnswerError(DagsterPipesError):
    """Storage answered a request with something that cannot be read (a truncated body, a proxy's HTML
    page where JSON was expected): a transient failure, retried like an outage."""
