"""Errors of the SIP layer; each one carries the answer it calls for.

::

    Exception
    ├── SipParseError        bytes that are not a usable SIP message (RFC 3261 §7, §25)
    │   └── FramingError     a stream cannot be split into messages: close the connection
    └── SipError             a handler's verdict: ``SipError(486)`` *is* the 486 response

A ``SipParseError`` names what is wrong in ``reason`` (short enough to be the reason
phrase of the 400, e.g. ``"Missing Call-ID"``) and the status an endpoint should answer
with in ``status``; :func:`status_for_error` is the one mapping the endpoint uses.  When
the start line and enough headers of a *request* were readable, ``partial`` holds that
request so the endpoint can still build the response (RFC 3261 §8.2.6 needs only Via,
From, To, Call-ID and CSeq); responses are never answered, so they have no partial.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dialtone.sip.status import reason_phrase

if TYPE_CHECKING:
    from dialtone.sip.message import Request


class SipParseError(Exception):
    """A message, header or URI that does not follow the SIP grammar.

    ``status`` is the response code this error deserves when it is found in a request:
    400 by default, 505 for an unknown SIP version, 513 for an oversized message, 416 for
    a Request-URI of a scheme dialtone does not serve, 501 for an unknown method whose
    CSeq does not match (RFC 4475 §3.1.2.18).
    """

    def __init__(
        self,
        reason: str,
        *,
        partial: Request | None = None,
        status: int = 400,
        too_large: bool = False,
        version_not_supported: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.too_large = too_large
        self.version_not_supported = version_not_supported
        if too_large:
            status = 513
        elif version_not_supported:
            status = 505
        self.status = status

    def with_partial(self, partial: Request | None) -> SipParseError:
        """Return a copy of this error that carries ``partial``."""
        return type(self)(
            self.reason,
            partial=partial,
            status=self.status,
            too_large=self.too_large,
            version_not_supported=self.version_not_supported,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status={self.status})"


class FramingError(SipParseError):
    """A byte stream (TCP, TLS) cannot be split into messages any more.

    RFC 3261 §18.3: after a framing error the receiver cannot find the start of the next
    message, so the transport must close the connection.
    """


class SipError(Exception):
    """A SIP failure response raised by a handler: the exception *is* the response.

    ``SipError(486)`` becomes ``486 Busy Here``; ``headers`` are added to the response
    (e.g. ``[("Min-Expires", "60")]`` with a 423, ``[("Unsupported", "foo")]`` with a 420).
    """

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        if not 300 <= status <= 699:
            raise ValueError(f"SipError needs a failure status (300-699), got {status}")
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)
        self.headers: list[tuple[str, str]] = list(headers)
        super().__init__(f"{status} {self.reason}")

    def __repr__(self) -> str:
        return f"SipError({self.status}, {self.reason!r})"


def status_for_error(err: SipParseError | SipError) -> int:
    """Return the status code an endpoint answers ``err`` with.

    For a :class:`SipParseError` found in a request: 513 when too large (RFC 3261 §18.1.1,
    spec SIP-2), 505 for another SIP version (§21.5.6), the error's own status
    otherwise (400 Bad Request, 416 for the Request-URI scheme, 501 for an unknown method).
    A :class:`SipError` answers with its own status.
    """
    return err.status
