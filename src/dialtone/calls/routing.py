"""Routing of inbound INVITEs (spec RTE-1..RTE-4): which voice URL answers a call.

Pure decisions over looked-up records: :func:`decide` takes the Request-URI user part,
the authenticated calling Client (if any) and what storage knows, and returns a
:class:`Route` or a SIP refusal.  The call layer does the lookups and the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RouteKind = Literal["number", "client-app", "client-direct"]


@dataclass(frozen=True, slots=True)
class NumberRecord:
    """What routing needs of an IncomingPhoneNumber."""

    sid: str
    phone_number: str
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    status_callback: str | None
    status_callback_method: str
    api_version: str


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What routing needs of a Client."""

    sid: str
    login: str
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    api_version: str


@dataclass(frozen=True, slots=True)
class Route:
    """Where a call goes and with which identities (REQ-1 From/To)."""

    kind: RouteKind
    from_: str
    to: str
    api_version: str
    voice_url: str | None = None
    voice_method: str = "POST"
    fallback_url: str | None = None
    fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    phone_number_sid: str | None = None
    callee: ClientRecord | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A routing failure and its SIP answer (RTE-2 step 4, RTE-3)."""

    status: int
    reason: str
    warning_code: int | None = None


def number_candidates(user: str) -> list[str]:
    """The user part with and without a leading ``+`` (RTE-2 step 1)."""
    bare = user.lstrip("+")
    return [user, bare, "+" + bare]


def decide(
    user: str,
    caller_user: str,
    caller: ClientRecord | None,
    number: NumberRecord | None,
    callee: ClientRecord | None,
) -> Route | Refusal:
    """Apply RTE-2 (first match wins) and RTE-3.

    ``user`` is the Request-URI user part; ``caller_user`` the From URI user part (the
    external caller's identity); ``caller`` the authenticated calling Client; ``number``
    the IncomingPhoneNumber matching ``user`` (with or without ``+``); ``callee`` the
    Client whose Login is ``user``.
    """
    from_ = f"client:{caller.login}" if caller is not None else caller_user
    if number is not None:
        if not number.voice_url:
            return Refusal(404, "Not Found", warning_code=11100)
        return Route(
            kind="number",
            from_=from_,
            to=number.phone_number,
            api_version=number.api_version,
            voice_url=number.voice_url,
            voice_method=number.voice_method,
            fallback_url=number.voice_fallback_url,
            fallback_method=number.voice_fallback_method,
            status_callback=number.status_callback,
            status_callback_method=number.status_callback_method,
            phone_number_sid=number.sid,
        )
    if caller is not None and caller.voice_url:
        to = f"client:{callee.login}" if callee is not None else user
        return Route(
            kind="client-app",
            from_=from_,
            to=to,
            api_version=caller.api_version,
            voice_url=caller.voice_url,
            voice_method=caller.voice_method,
            fallback_url=caller.voice_fallback_url,
            fallback_method=caller.voice_fallback_method,
            callee=callee,
        )
    if caller is not None and callee is not None:
        return Route(
            kind="client-direct",
            from_=from_,
            to=f"client:{callee.login}",
            api_version=caller.api_version,
            callee=callee,
        )
    return Refusal(404, "Not Found")
