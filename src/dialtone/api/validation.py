"""Validation of REST parameters; each failure names the parameter (API-5, HOOK-2)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urljoin, urlsplit

from dialtone.api.errors import fail

LOGIN_RE: Final = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
PHONE_RE: Final = re.compile(r"^\+?[0-9]{2,20}$")
_SEPARATORS: Final = str.maketrans("", "", " -.()")
MAX_URL: Final = 4000


def url(name: str, value: str | None, public_url: str, *, code: int = 21402) -> str | None:
    """A voice/callback URL: empty clears it; relative ones resolve against ``public_url``.

    The value is stored as given (HOOK-3 resolves relative URLs at use time); it must be
    absolute http(s) with a host after resolution, without whitespace, ≤ 4000 characters.
    """
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if len(value) > MAX_URL or re.search(r"\s", value):
        fail(code, f"{name} is not a valid URL: {value[:100]!r}")
    resolved = urljoin(public_url + "/", value)
    parts = urlsplit(resolved)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(code, f"{name} is not a valid http(s) URL: {value[:100]!r}")
    return value


def method(name: str, value: str | None, default: str = "POST") -> str:
    """``GET`` or ``POST`` (case-insensitive); absent or empty means ``default``."""
    if value is None or value.strip() == "":
        return default
    upper = value.strip().upper()
    if upper not in ("GET", "POST"):
        fail(21403, f"{name} must be GET or POST, not {value[:20]!r}")
    return upper


def login(value: str | None) -> str:
    """A Client Login: 1–64 of ``A–Z a–z 0–9 . _ ~ -`` (API-31)."""
    if value is None or value == "":
        fail(20422, "Login is required")
    if not LOGIN_RE.match(value):
        fail(
            20422,
            f"Login {value[:70]!r} is invalid: use 1 to 64 characters of A-Z a-z 0-9 . _ ~ -",
        )
    return value


def password(value: str | None) -> str:
    """A Client Password: 1–128 printable characters."""
    if value is None or value == "":
        fail(20422, "Password is required")
    if len(value) > 128 or not value.isprintable():
        fail(20422, "Password must be 1 to 128 printable characters")
    return value


def friendly_name(value: str | None, default: str) -> str:
    """A FriendlyName of at most 64 characters; absent or empty means ``default``."""
    if value is None or value.strip() == "":
        return default
    if len(value) > 64:
        fail(20422, "FriendlyName must be at most 64 characters")
    return value


def phone_number(value: str | None) -> str:
    """A PhoneNumber with separators removed: ``\\+?[0-9]{2,20}`` (API-40, 21421)."""
    if value is None or value.strip() == "":
        fail(21421, "PhoneNumber is required")
    normalized = value.translate(_SEPARATORS)
    if not PHONE_RE.match(normalized):
        fail(21421, f"PhoneNumber {value[:40]!r} is invalid: use digits with an optional +")
    return normalized


def number_variants(number: str) -> list[str]:
    """The number with and without a leading ``+`` (RTE-2 matching, API-31 conflicts)."""
    bare = number.lstrip("+")
    return [bare, "+" + bare]


def page_size(value: str | None) -> int:
    """``PageSize``: 1–1000, default 50 (API-7, 20007)."""
    if value is None or value == "":
        return 50
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        fail(20007, f"PageSize must be an integer from 1 to 1000, not {value[:20]!r}")
    return int(value)


def page(value: str | None) -> int:
    """``Page``: from 0, default 0."""
    if value is None or value == "":
        return 0
    if not value.isdigit() or int(value) > 10_000_000:
        fail(20422, f"Page must be a non-negative integer, not {value[:20]!r}")
    return int(value)
