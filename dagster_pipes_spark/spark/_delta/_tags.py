"""Which commits are ours: a per-block tag in the commits' ``userMetadata``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

#: The session setting whose value Delta records as ``userMetadata`` of each commit.
COMMIT_TAG_CONF = "spark.databricks.delta.commitInfo.userMetadata"
TAG_PREFIX = "dagster-pipes-spark:"


def new_commit_tag() -> str:
    """A fresh per-block tag for the commits of one :func:`report_spark_writes` block."""
    return TAG_PREFIX + uuid.uuid4().hex


class CommitTagger:
    """Sets :data:`COMMIT_TAG_CONF` on a session for the length of a hook block, and restores it.

    ``get`` / ``set`` / ``unset`` act on the session's runtime conf. A value the user set is left
    alone (no tag: history matching falls back to the newest commits); the tag of an enclosing
    block on the same session is shared.
    """

    def __init__(
        self, get: Callable[[], str | None], set_: Callable[[str], None], unset: Callable[[], None]
    ) -> None:
        self._get, self._set, self._unset = get, set_, unset
        self.tag: str | None = None
        #: when the block began (epoch seconds): its commits are not older
        self.started = time.time()
        self._owned = False
        self.note: str | None = None

    def start(self) -> None:
        self.started = time.time()
        try:
            current = self._get()
        except Exception as exc:
            self.note = f"could not read {COMMIT_TAG_CONF}: {type(exc).__name__}"
            return
        if current and not current.startswith(TAG_PREFIX):
            self.note = f"{COMMIT_TAG_CONF} is set by the job; Delta commits matched by position"
            return
        if current:
            self.tag = current
            return
        tag = new_commit_tag()
        try:
            self._set(tag)
        except Exception as exc:  # e.g. a session that does not allow it
            self.note = f"could not set {COMMIT_TAG_CONF}: {type(exc).__name__}"
            return
        self.tag, self._owned = tag, True

    def stop(self) -> None:
        if not self._owned:
            return
        self._owned = False
        try:
            if self._get() == self.tag:
                self._unset()
        except Exception:
            pass
