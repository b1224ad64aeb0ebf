"""``dbutils.widgets``: notebook parameters and widget definitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import ExecutionError

__all__ = ["FakeWidgets", "InputWidgetNotDefined"]


class InputWidgetNotDefined(ExecutionError):  # noqa: N818 - the Java exception's name
    """Raised by ``dbutils.widgets.get`` for a widget that is neither defined nor bound."""

    def __init__(self, method: str, name: str) -> None:
        super().__init__(
            method,
            "com.databricks.dbutils_v1.InputWidgetNotDefined",
            f"No input widget named {name} is defined",
        )
        self.name = name


class FakeWidgets:
    """``dbutils.widgets``. ``values`` are the bound parameters (e.g. a job's ``base_parameters``):
    they are readable without being defined and take precedence over widget defaults. Labels are
    accepted and ignored (they only matter in the notebook UI)."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._bound: dict[str, str] = {str(k): str(v) for k, v in (values or {}).items()}
        self._defaults: dict[str, str] = {}

    def get(self, name: str) -> str:
        """The widget's value; raises :class:`InputWidgetNotDefined` if there is none."""
        if name in self._bound:
            return self._bound[name]
        if name in self._defaults:
            return self._defaults[name]
        raise InputWidgetNotDefined("getArgument", name)

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:  # noqa: N802, N803 - dbutils API
        """Deprecated notebook API: the value, or ``defaultValue`` when the widget is undefined."""
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            if defaultValue is None:
                raise
            return defaultValue

    def getAll(self) -> dict[str, str]:  # noqa: N802 - dbutils API
        """All widget values (bound parameters over defaults)."""
        return {**self._defaults, **self._bound}

    def text(self, name: str, defaultValue: str, label: str | None = None) -> None:  # noqa: N803 - dbutils API
        """Define a text widget."""
        self._define(name, str(defaultValue), None)

    def dropdown(
        self,
        name: str,
        defaultValue: str,  # noqa: N803 - dbutils API
        choices: Iterable[str],
        label: str | None = None,
    ) -> None:
        """Define a dropdown widget (``defaultValue`` must be one of ``choices``)."""
        self._define(name, str(defaultValue), [str(c) for c in choices])

    def combobox(
        self,
        name: str,
        defaultValue: str,  # noqa: N803 - dbutils API
        choices: Iterable[str],
        label: str | None = None,
    ) -> None:
        """Define a combobox widget (free text with suggestions)."""
        self._define(name, str(defaultValue), None)

    def multiselect(
        self,
        name: str,
        defaultValue: str,  # noqa: N803 - dbutils API
        choices: Iterable[str],
        label: str | None = None,
    ) -> None:
        """Define a multiselect widget; its value is a comma-separated string."""
        self._define(name, str(defaultValue), [str(c) for c in choices])

    def remove(self, name: str) -> None:
        """Remove a defined widget."""
        if name not in self._defaults:
            raise InputWidgetNotDefined("removeArgument", name)
        del self._defaults[name]

    def removeAll(self) -> None:  # noqa: N802 - dbutils API
        """Remove all defined widgets (bound parameters stay readable)."""
        self._defaults.clear()

    def _define(self, name: str, default: str, required_choices: list[str] | None) -> None:
        """Define a widget; with ``required_choices`` its default must be (a list of) those."""
        if required_choices is not None:
            selected = default.split(",") if default else []
            missing = [v for v in selected if v not in required_choices]
            if missing or not selected:
                raise ExecutionError(
                    "dropdown",
                    "java.lang.IllegalArgumentException",
                    f"Default value {default!r} of widget {name} is not among the choices {required_choices}",
                )
        self._defaults[name] = default
