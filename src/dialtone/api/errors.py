"""API error codes, their descriptions (served at ``more_info``) and the raising helpers."""

from __future__ import annotations

from typing import Final, NoReturn

from dialtone.errors import ApiError

#: Every code the REST API answers with, and what it means (``GET /docs/errors/{code}``).
CODES: Final[dict[int, str]] = {
    20003: "Authentication failed: use HTTP Basic auth with your AccountSid and AuthToken.",
    20004: "The HTTP method is not allowed on this resource.",
    20007: "PageSize is out of range: it must be an integer from 1 to 1000.",
    20403: "The AccountSid in the path is not the account you authenticated as.",
    20404: "The requested resource was not found.",
    20422: "A parameter is missing or invalid; the message names it.",
    20500: "An internal error occurred; the server log has the details.",
    21402: "The URL is invalid: it must be an absolute http(s) URL (or a path resolved "
    "against the server's public URL), without whitespace, at most 4000 characters.",
    21403: "The HTTP method is invalid: use GET or POST.",
    21405: "VoiceFallbackUrl was given without a VoiceUrl.",
    21421: "PhoneNumber is invalid: digits with an optional leading +, 2 to 20 digits.",
    21422: "PhoneNumber is not available: it already exists in the account or equals a "
    "Client Login.",
}


def fail(code: int, message: str, status: int = 400) -> NoReturn:
    """Raise the :class:`ApiError` for ``code`` (status 400 unless said otherwise)."""
    raise ApiError(code, status, message)


def not_found(what: str, sid: str) -> NoReturn:
    """Raise the 404 of an unknown resource."""
    raise ApiError(20404, 404, f"The requested resource {what} {sid} was not found")
