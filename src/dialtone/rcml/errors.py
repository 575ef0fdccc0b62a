"""Errors and warnings found while reading an RCML document (DOC-20..DOC-22).

``RcmlError`` (log 0) makes the whole document invalid: nothing of it runs (DOC-5).
``RcmlWarning`` (log 1) is a notice the parser returns in ``Document.warnings``; the document
still runs.  Both carry the Notification ``code``, the detail ``message``, the element path
with 1-based indexes (``Response/Dial[1]/Client[2]``), the line and the document URL, and both
render ``message_text`` the same way (DOC-21)::

    Response/Dial[1]/Client[2] (line 4) of http://app.test/voice: statusCallbackEvent has ...

An error about the bytes themselves (no element yet) reads
``line 3, column 7 of http://app.test/voice: ...``, and one about the whole response
``http://app.test/voice: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialtone.errors import DialtoneError

__all__ = ["RcmlError", "RcmlWarning", "Warning", "format_message"]


def format_message(
    message: str,
    element: str | None,
    line: int | None,
    url: str | None,
    column: int | None = None,
) -> str:
    """Return the DOC-21 ``message_text``: where (element, line, URL), then what."""
    where = url or "RCML document"
    if element is not None:
        at = f" (line {line})" if line is not None else ""
        return f"{element}{at} of {where}: {message}"
    if line is not None:
        col = f", column {column}" if column is not None else ""
        return f"line {line}{col} of {where}: {message}"
    return f"{where}: {message}"


class RcmlError(DialtoneError):
    """An RCML document that must not run, with the Notification code that says why.

    ``str(error)`` is :attr:`message_text`; ``message`` is the detail alone.  ``column``
    (1-based) is set only for XML syntax errors (12100).
    """

    log = 0

    def __init__(
        self,
        code: int,
        message: str,
        element: str | None = None,
        line: int | None = None,
        url: str | None = None,
        *,
        column: int | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.element = element
        self.line = line
        self.url = url
        self.column = column
        super().__init__(self.message_text)

    @property
    def message_text(self) -> str:
        """The Notification's ``message_text`` (DOC-21)."""
        return format_message(self.message, self.element, self.line, self.url, self.column)

    def __repr__(self) -> str:
        return f"RcmlError({self.code}, {self.message_text!r})"


@dataclass(frozen=True, slots=True)
class RcmlWarning:
    """A log-1 notice about a document that still runs (ignored attribute, duplicate noun…)."""

    code: int
    message: str
    element: str | None = None
    line: int | None = None
    url: str | None = None

    log = 1

    @property
    def message_text(self) -> str:
        """The Notification's ``message_text`` (DOC-21)."""
        return format_message(self.message, self.element, self.line, self.url)

    def __str__(self) -> str:
        return self.message_text


#: The name the design uses for the warning record.
Warning = RcmlWarning
