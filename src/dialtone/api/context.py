"""Per-request context: the authenticated account, the response format, the path prefix."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request

from dialtone.api.representations import Renderer
from dialtone.errors import ApiError
from dialtone.storage.models import Account

TWILIO_PREFIX: Final = "/2010-04-01"
RESTCOMM_PREFIX: Final = "/restcomm/2012-04-24"


@dataclass(frozen=True, slots=True)
class Flavour:
    """Which dialect a request spoke: format and path prefix (API-1, API-2)."""

    json_format: bool
    restcomm: bool

    @property
    def prefix(self) -> str:
        """The path prefix, e.g. ``/2010-04-01``."""
        return RESTCOMM_PREFIX if self.restcomm else TWILIO_PREFIX

    @property
    def api_version(self) -> str:
        """The API version of resources created through this prefix (REQ-4)."""
        return "2012-04-24" if self.restcomm else "2010-04-01"

    @property
    def suffix(self) -> str:
        """``.json`` for JSON requests, empty for XML."""
        return ".json" if self.json_format else ""

    def renderer(self) -> Renderer:
        """A renderer for this flavour."""
        return Renderer(json_format=self.json_format, restcomm=self.restcomm)


def flavour_of(request: Request) -> Flavour:
    """Tell format and prefix from the path (and, under Restcomm, the Accept header)."""
    path = request.url.path
    restcomm = path.startswith(RESTCOMM_PREFIX + "/") or path == RESTCOMM_PREFIX
    json_format = path.endswith(".json")
    if not json_format and restcomm:
        json_format = "application/json" in request.headers.get("accept", "")
    return Flavour(json_format=json_format, restcomm=restcomm)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The (user, password) of an HTTP Basic ``Authorization`` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def check_credentials(account: Account | None, credentials: tuple[str, str] | None) -> Account:
    """The account when the Basic credentials match it, else the 401 of API-4."""
    if account is None or credentials is None:
        raise ApiError(20003, 401, "Authenticate with your AccountSid and AuthToken")
    user, token = credentials
    sid_ok = hmac.compare_digest(user.encode(), account.sid.encode())
    token_ok = hmac.compare_digest(token.encode(), account.auth_token.encode())
    if not (sid_ok and token_ok):
        raise ApiError(20003, 401, "Authenticate with your AccountSid and AuthToken")
    return account


class Form:
    """A form-encoded body: Twilio's parameter names, repeated names kept in order (API-3)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    @classmethod
    def parse(cls, body: bytes) -> Form:
        """Parse ``application/x-www-form-urlencoded`` UTF-8 (invalid bytes → 20422)."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(20422, 400, "The request body is not UTF-8 form data") from None
        return cls(parse_qsl(text, keep_blank_values=True))

    def get(self, name: str) -> str | None:
        """The last value of ``name``, or None when absent."""
        value = None
        for key, item in self._pairs:
            if key == name:
                value = item
        return value

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [item for key, item in self._pairs if key == name]

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self._pairs)
