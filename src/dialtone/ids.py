"""Twilio-style resource identifiers (SIDs): a two-letter prefix and 32 lowercase hex digits."""

from __future__ import annotations

import re
import secrets
from typing import Final

ACCOUNT: Final = "AC"
CLIENT: Final = "CL"
PHONE_NUMBER: Final = "PN"
CALL: Final = "CA"
NOTIFICATION: Final = "NO"

PREFIXES: Final = frozenset({ACCOUNT, CLIENT, PHONE_NUMBER, CALL, NOTIFICATION})

_SID_RE: Final = re.compile(r"^(?P<prefix>[A-Z]{2})[0-9a-f]{32}$")
_TOKEN_RE: Final = re.compile(r"^[0-9a-f]{32}$")


def new_sid(prefix: str) -> str:
    """Return a fresh random SID such as ``CA`` followed by 32 lowercase hex digits."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown SID prefix {prefix!r}")
    return prefix + secrets.token_hex(16)


def is_sid(value: str, prefix: str) -> bool:
    """Tell whether ``value`` is a well-formed SID with the given prefix."""
    match = _SID_RE.match(value)
    return match is not None and match.group("prefix") == prefix


def new_auth_token() -> str:
    """Return a fresh AuthToken: 32 lowercase hex digits (128 bits of randomness)."""
    return secrets.token_hex(16)


def is_auth_token(value: str) -> bool:
    """Tell whether ``value`` is a well-formed AuthToken (32 lowercase hex digits)."""
    return _TOKEN_RE.match(value) is not None
