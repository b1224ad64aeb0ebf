"""Keeping credentials out of everything the job prints or sends.

Error messages from storage can carry credentials: a proxy or gateway that echoes the request headers
(``Authorization: Bearer dapi...``), a library that prints its configuration. Every text the package
writes about a failure (stderr lines, logs, the exception sent in ``closed``) goes through
:func:`redact`, which masks

* the value after ``Bearer`` / ``Basic``, an ``Authorization`` header, and ``token=`` /
  ``client_secret=`` / ``password=`` / ``secret=`` / ``api_key=`` style assignments;
* the literal values of secret environment variables (``DATABRICKS_*`` whose name says TOKEN, SECRET,
  PASSWORD or KEY, and the AWS / Azure / GCP secrets), and of secrets registered with
  :func:`register_secret` (a ``WorkspaceClient``'s token, client secret and password).
"""

from __future__ import annotations

import os
import re
import sys
import threading

MASK = "***"
#: Values shorter than this are not masked literally (too likely to match ordinary text).
_MIN_SECRET_LENGTH = 8

_ASSIGNMENT_PATTERN = (
    r"(?i)("
    r"\b(?:bearer|basic)\s+"  # Authorization schemes
    r"|\bauthorization[\"']?\s*[:=]\s*[\"']?(?!\s*(?:bearer|basic)\b)"  # a header without a scheme
    r"|\b(?:access_?token|refresh_?token|id_?token|token|client_?secret|password|passwd|secret|api_?key"
    r"|secret_?access_?key|session_?token|sas_?token|sig)[\"']?\s*[:=]\s*[\"']?"
    r")"
    r"(?!\*\*\*)([^\s\"',;&}<>)\]]+)"
)
_SECRET_ENV_PATTERN = (
    r"(?i)^(DATABRICKS_.*(TOKEN|SECRET|PASSWORD|KEY).*|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN"
    r"|AZURE_CLIENT_SECRET|AZURE_STORAGE_KEY|AZURE_STORAGE_SAS_TOKEN|ARM_CLIENT_SECRET"
    r"|GOOGLE_CREDENTIALS)$"
)

# Compiled on first use: nothing is redacted on the paths that never fail.
_patterns: tuple[re.Pattern[str], re.Pattern[str]] | None = None


def _compiled() -> tuple[re.Pattern[str], re.Pattern[str]]:
    global _patterns
    if _patterns is None:
        _patterns = (re.compile(_ASSIGNMENT_PATTERN), re.compile(_SECRET_ENV_PATTERN))
    return _patterns


_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: object) -> None:
    """Mask ``value`` wherever it appears in what the package prints or sends from now on."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def _secret_values() -> list[str]:
    secret_env = _compiled()[1]
    values = [v for k, v in os.environ.items() if secret_env.match(k) and len(v) >= _MIN_SECRET_LENGTH]
    with _lock:
        values.extend(_registered)
    return sorted(set(values), key=len, reverse=True)  # longest first: no partial masks


def redact(text: str) -> str:
    """``text`` with credentials masked (see the module docstring)."""
    if not text:
        return text
    for secret in _secret_values():
        if secret in text:
            text = text.replace(secret, MASK)
    return _compiled()[0].sub(lambda m: m.group(1) + MASK, text)


def write_stderr(text: str) -> None:
    """Write ``text``, redacted, to the process's own stderr (a closed or missing stream is ignored)."""
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(redact(text))
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass
