"""Calls resource, write side: create (API-20, API-21) and modify (API-24, API-25).

This module validates and translates; the call layer does the dialling.  A request that
passes validation becomes an :class:`~dialtone.calls.control.OriginateRequest` or a
:class:`~dialtone.calls.control.ModifyRequest` handed to the
:class:`~dialtone.calls.control.CallControl` of the app's services; without one (SIP not
running) both answer ``503``.  A failed validation changes nothing and calls nothing (API-3).

Value parsers are the RCML ones (:mod:`dialtone.rcml.attributes`), so ``To`` numbers,
``From``, URLs, methods and status-callback events follow the same rules as ``<Number>``,
``callerId``, ``url``/``method`` and ``statusCallbackEvent``; only the error codes differ
(API-20).  URLs are resolved against ``--public-url`` here (HOOK-3), so the call layer gets
absolute ones.

Choices the spec leaves open, following Twilio: an empty parameter counts as absent; with
both ``Url`` and ``Twiml`` the URL wins (the Twiml is still validated); ``SendDigits`` is
accepted at create (``[0-9*#w]{1,32}``, else 20422); ``StatusCallback``,
``StatusCallbackMethod`` and ``TimeLimit`` of an update are ignored.  The ``201`` of a create
shows the Call as created (status ``queued``, API-21) even when dialling has already moved
it on; ``GET`` shows the live state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import structlog
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from dialtone.api.calls import call_resource, load_call
from dialtone.api.context import Form
from dialtone.api.errors import fail
from dialtone.api.scope import Scope, add_routes, authenticated
from dialtone.calls.control import (
    CallControl,
    CallControlError,
    ModifyRequest,
    ModifyStatus,
    Notice,
    OriginateRequest,
    ToKind,
)
from dialtone.calls.records import FINAL_STATUSES
from dialtone.errors import ApiError
from dialtone.rcml import attributes as at
from dialtone.rcml.attributes import ValueProblem, show
from dialtone.rcml.errors import RcmlError, format_message
from dialtone.rcml.nodes import Document
from dialtone.rcml.parser import parse_document
from dialtone.storage.repository import Calls, Clients

log = structlog.get_logger("dialtone.api")

T = TypeVar("T")

MAX_TWIML: Final = 4000  # API-20
SEND_DIGITS: Final = "0123456789*#w"  # as <Number sendDigits> (DIAL-6)
MAX_SEND_DIGITS: Final = 32
SIPS_ALLOWED: Final = False  # no TLS transport yet: a sips: To could not be dialled (DIAL-7)
_STATUSES: Final[tuple[ModifyStatus, ...]] = ("canceled", "completed")  # API-24
_UNANSWERED: Final = frozenset({"queued", "ringing"})


@dataclass(frozen=True, slots=True)
class _Rcml:
    """What to run on a call: ``Url`` with its methods and fallback, or ``Twiml``."""

    url: str | None
    method: str
    fallback_url: str | None
    fallback_method: str
    twiml: Document | None


@dataclass(frozen=True, slots=True)
class _Destination:
    """A validated ``To``."""

    to: str
    kind: ToKind
    client_sid: str | None = None
    sip_headers: tuple[tuple[str, str], ...] = ()


@contextmanager
def _as(code: int, prefix: str = "") -> Iterator[None]:
    """Turn a :class:`ValueProblem` of an RCML value parser into API error ``code``."""
    try:
        yield
    except ValueProblem as problem:
        fail(code, prefix + problem.detail)


def _given(form: Form, name: str) -> str | None:
    """The parameter's last value, or None when absent or empty (REQ-2's "no value")."""
    value = form.get(name)
    return None if value is None or value.strip() == "" else value


def _control(scope: Scope) -> CallControl:
    control = scope.services.call_control
    if control is None:
        fail(20503, "Calls cannot be placed or modified: call control is not running", 503)
    return control


async def _controlled(step: Awaitable[T]) -> T:
    """Await a call-control step, its refusals answered as Twilio-shaped errors."""
    try:
        return await step
    except CallControlError as exc:
        raise ApiError(exc.code, exc.status, exc.message) from None


# --- parameters ------------------------------------------------------------------------------


async def _destination(scope: Scope, value: str | None) -> _Destination:
    """``To``: ``client:<login>`` of a Client, a SIP URI or a number (21201, 21211, 21214)."""
    if value is None:
        fail(21201, "To is required")
    text = value.strip()
    if text.startswith("client:"):
        with _as(21211, "To: "):
            login = at.parse_client_login(text)
        client = await Clients(scope.session).by_login(scope.account.sid, login)
        if client is None:
            fail(21211, f"To {show(text)} names no Client of the account")
        return _Destination(f"client:{login}", "client", client_sid=client.sid)
    if text.lower().startswith(("sip:", "sips:")):
        with _as(21211, "To: "):
            uri, headers = at.parse_sip_uri(text, sips_allowed=SIPS_ALLOWED)
        return _Destination(uri, "sip", sip_headers=headers)
    try:
        number = at.normalise_number(text)
    except ValueProblem:
        fail(
            21211,
            f"To {show(value)} is invalid; allowed: client:<login> of a Client, a sip: or sips: "
            "URI, or a phone number (an optional + and 1-32 digits; spaces, -, ., ( and ) "
            "are ignored)",
        )
    if not scope.services.can_dial_numbers:
        fail(
            21214,
            f"To {show(number)} is a phone number and no outbound proxy is configured "
            "(--outbound-proxy)",
        )
    return _Destination(number, "number")


def _caller(value: str | None) -> str:
    """``From``: at most 64 characters of a number, ``client:<login>`` or a SIP user part."""
    if value is None:
        fail(21213, "From is required")
    try:
        return at.parse_caller_id(value)
    except ValueProblem:
        fail(
            21212,
            f"From {show(value)} is invalid; allowed: a phone number, client:<login> or a SIP "
            "user part, at most 64 characters",
        )


def _url(scope: Scope, name: str, value: str | None) -> str | None:
    """An absolute URL (HOOK-2, HOOK-3, HOOK-4), or None when not given (21205)."""
    if value is None:
        return None
    with _as(21205):
        return at.resolve_url(
            name, value.strip(), scope.services.settings.effective_public_url + "/"
        )


def _method(name: str, value: str | None) -> str:
    """``GET`` or ``POST``, default ``POST`` (21209)."""
    if value is None:
        return "POST"
    with _as(21209):
        return at.parse_method(name, value.strip(), code=21209)


def _twiml(scope: Scope, value: str | None) -> Document | None:
    """Inline RCML, at most 4000 characters, validated at once (the DOC-22 code)."""
    if value is None:
        return None
    if len(value) > MAX_TWIML:
        fail(11750, f"Twiml is {len(value)} characters long; allowed: at most {MAX_TWIML}")
    base = scope.services.settings.effective_public_url + "/"
    try:
        return parse_document(value.encode("utf-8"), base, content_type="application/xml")
    except RcmlError as exc:
        where = format_message(exc.message, exc.element, exc.line, "Twiml", exc.column)
        fail(exc.code, f"Twiml is invalid: {where}")


def _rcml(scope: Scope, form: Form) -> _Rcml:
    """``Url``, ``Method``, ``FallbackUrl``, ``FallbackMethod`` and ``Twiml``, all checked."""
    url = _url(scope, "Url", _given(form, "Url"))
    method = _method("Method", _given(form, "Method"))
    fallback_url = _url(scope, "FallbackUrl", _given(form, "FallbackUrl"))
    fallback_method = _method("FallbackMethod", _given(form, "FallbackMethod"))
    twiml = _twiml(scope, _given(form, "Twiml"))
    if url is not None:
        twiml = None  # both given: the URL wins, as on Twilio
    else:
        fallback_url = None  # a fallback is for the voice URL only (HOOK-9)
    return _Rcml(url, method, fallback_url, fallback_method, twiml)


def _events(values: list[str]) -> frozenset[str]:
    """Every ``StatusCallbackEvent`` value, each a whitespace/comma list (CB-2, 21626)."""
    events: set[str] = set()
    for value in values:
        with _as(21626):
            events |= at.parse_events("StatusCallbackEvent", value)
    return frozenset(events)


def _timeout(value: str | None) -> int:
    """``Timeout``: 1–600 seconds of ringing, default 60 (21208)."""
    if value is None:
        return 60
    with _as(21208):
        return at.parse_int("Timeout", value.strip(), low=1, high=600, code=21208)


def _send_digits(value: str | None) -> str | None:
    """``SendDigits``: DTMF to send on answer, as ``<Number sendDigits>`` (20422)."""
    if value is None:
        return None
    with _as(20422):
        return at.parse_digits(
            "SendDigits", value.strip(), alphabet=SEND_DIGITS, limit=MAX_SEND_DIGITS, code=20422
        )


async def originate_request(scope: Scope, form: Form) -> OriginateRequest:
    """Validate a ``POST /Calls`` body in the order of API-20's table."""
    destination = await _destination(scope, _given(form, "To"))
    caller = _caller(_given(form, "From"))
    rcml = _rcml(scope, form)
    if rcml.url is None and rcml.twiml is None:
        fail(21205, "Url is required unless Twiml is given")
    status_callback = _url(scope, "StatusCallback", _given(form, "StatusCallback"))
    callback_method = _method("StatusCallbackMethod", _given(form, "StatusCallbackMethod"))
    events = _events(form.get_all("StatusCallbackEvent"))
    notices: list[Notice] = []
    if status_callback is None:
        if events:
            text = "StatusCallbackEvent is ignored without StatusCallback"
            notices.append(Notice(12200, text))
        events = frozenset()
    elif not events:
        events = frozenset({"completed"})
    return OriginateRequest(
        account_sid=scope.account.sid,
        api_version=scope.flavour.api_version,
        to=destination.to,
        to_kind=destination.kind,
        client_sid=destination.client_sid,
        sip_headers=destination.sip_headers,
        from_=caller,
        url=rcml.url,
        method=rcml.method,
        fallback_url=rcml.fallback_url,
        fallback_method=rcml.fallback_method,
        twiml=rcml.twiml,
        status_callback=status_callback,
        status_callback_method=callback_method,
        status_callback_events=events,
        timeout=_timeout(_given(form, "Timeout")),
        send_digits=_send_digits(_given(form, "SendDigits")),
        notices=tuple(notices),
    )


def modify_request(
    scope: Scope, form: Form, call_sid: str, status_now: str, direction: str
) -> ModifyRequest:
    """Validate a ``POST /Calls/{CallSid}`` body for a call whose stored status and
    direction are given.

    New RCML for a Dial branch that has not answered is refused here already when its row
    says so (API-25: 21220); the call layer refuses it too when the branch's state changed
    since (it is the live truth: a branch answered a moment ago is redirected)."""
    status = _given(form, "Status")
    if status is not None and status not in _STATUSES:
        fail(20422, f"Status must be canceled or completed, not {show(status, 40)}")
    rcml = _rcml(scope, form)
    redirect = rcml.url is not None or rcml.twiml is not None
    if status is not None and redirect:
        fail(20422, "Status cannot be combined with Url or Twiml")
    if status is None and not redirect:
        fail(20422, "Nothing to change: give Status, or Url or Twiml")
    if status_now in FINAL_STATUSES:
        fail(21220, f"Call {call_sid} is not in progress: it has ended ({status_now})")
    if redirect and direction == "outbound-dial" and status_now in _UNANSWERED:
        fail(
            21220,
            f"Call {call_sid} is not in progress: it is a Dial branch that has not answered "
            f"({status_now}); only Status can change it",
        )
    return ModifyRequest(
        account_sid=scope.account.sid,
        call_sid=call_sid,
        status=next((known for known in _STATUSES if known == status), None),
        url=rcml.url,
        method=rcml.method,
        fallback_url=rcml.fallback_url,
        fallback_method=rcml.fallback_method,
        twiml=rcml.twiml,
    )


# --- routes ----------------------------------------------------------------------------------


def _as_created(resource: dict[str, Any]) -> dict[str, Any]:
    """The Call as ``POST /Calls`` created it (API-21: ``queued``), whatever happened since."""
    resource.update(
        status="queued",
        end_time=None,
        duration=None,
        sip_response_code=None,
        date_updated=resource["date_created"],
    )
    return resource


async def _render(scope: Scope, call_sid: str, status: int) -> Response:
    """The Call row as stored now, in a transaction of its own (it may be newer than ours)."""
    async with scope.services.db.session() as session:
        call = await Calls(session).get(scope.account.sid, call_sid)
    if call is None:
        log.error("api.call_not_stored", call_sid=call_sid)
        fail(20500, f"Call {call_sid} has no record (the call layer did not store it)", 500)
    resource = call_resource(scope, call)
    if status == 201:
        resource = _as_created(resource)
    return scope.flavour.renderer().resource("Call", resource, status)


async def create_call(request: Request, account_sid: str) -> Response:
    """``POST /Calls``: validate, hand the call to call control, answer ``201`` (API-20)."""
    async with authenticated(request, account_sid) as scope:
        control = _control(scope)
        order = await originate_request(scope, await scope.form())
    # Outside the read transaction: the call layer writes the row in its own.
    call_sid = await _controlled(control.originate(order))
    log.info("api.call_created", call_sid=call_sid, to=order.to, to_kind=order.to_kind)
    return await _render(scope, call_sid, 201)


async def modify_call(request: Request, account_sid: str, call_sid: str) -> Response:
    """``POST /Calls/{CallSid}``: end the call or run new RCML on it (API-24, API-25)."""
    async with authenticated(request, account_sid) as scope:
        control = _control(scope)
        call = await load_call(scope, call_sid)
        change = modify_request(scope, await scope.form(), call.sid, call.status, call.direction)
    await _controlled(control.modify(change))
    log.info("api.call_modified", call_sid=call_sid, status=change.status)
    return await _render(scope, call_sid, 200)


def register(app: FastAPI) -> None:
    """Add ``POST /Calls`` and ``POST /Calls/{CallSid}`` under both prefixes (API-1)."""
    base = "/Accounts/{account_sid}/Calls"
    add_routes(app, base, create_call, ["POST"])
    add_routes(app, base + "/{call_sid}", modify_call, ["POST"])
