"""The parameters a webhook request carries about a call (REQ-1..REQ-5, CB-5).

Pure: no I/O, no clock.  A call is described by a small typed :class:`CallInfo`; the functions
here turn it into the ordered list of ``(name, value)`` pairs that is form-encoded on the wire
(a list, not a dict, because a name may repeat, e.g. two ``X-`` headers of the same name)::

    call = CallInfo(call_sid="CA…", account_sid="AC…", from_="+15557654321",
                    to="client:bob", status="in-progress", direction="outbound-dial",
                    parent_call_sid="CAp…")
    voice_params(call, {"Digits": "1"})
    status_callback_params(call, timestamp=when, sequence_number=2)

The result is sorted by name in code-point order (stable for a repeated name), which is the
order of Ex. C-1 and of the signature (HOOK-10).  REQ-2 holds for every result: a parameter
without a value is left out, none is ever sent empty or as a bare name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal

__all__ = [
    "API_VERSION",
    "CALLBACK_SOURCE",
    "RESTCOMM_API_VERSION",
    "CallInfo",
    "Direction",
    "ParamValue",
    "Params",
    "clean",
    "format_timestamp",
    "sip_header_params",
    "status_callback_params",
    "voice_params",
]

API_VERSION = "2010-04-01"
"""REQ-4: the ApiVersion of every call not routed through the Restcomm prefix."""
RESTCOMM_API_VERSION = "2012-04-24"
"""REQ-4: the ApiVersion of calls whose resource or API request used ``/restcomm/2012-04-24/``."""
CALLBACK_SOURCE = "call-progress-events"
"""CB-5: the ``CallbackSource`` of every status callback."""
SIP_HEADER_PREFIX = "SipHeader_"
"""REQ-5: an INVITE's ``X-Foo`` header is sent as ``SipHeader_X-Foo``."""

Direction = Literal["inbound", "outbound-api", "outbound-dial"]
"""The ``Direction`` parameter of REQ-1."""

ParamValue = str | int | bool | None
"""What a caller may give as a parameter value: ``None`` and ``""`` are left out (REQ-2),
integers are written in decimal and booleans as ``true``/``false`` (``DialBridged``)."""

Params = list[tuple[str, str]]
"""Parameters as sent: ``(name, value)`` pairs, names may repeat."""


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What REQ-1 needs to know about one call (leg).

    ``from_`` and ``to`` are already in their wire form (``client:alice``, ``+15557654321``,
    a SIP URI).  ``sip_headers`` are the INVITE's headers as ``(name, value)`` pairs; only
    those whose name starts with ``X-`` (any case) are sent (REQ-5), the others are ignored, so
    the whole header list of an inbound INVITE may be passed.
    """

    call_sid: str
    account_sid: str
    from_: str
    to: str
    status: str
    direction: Direction
    api_version: str = API_VERSION
    parent_call_sid: str | None = None
    forwarded_from: str | None = None
    caller_name: str | None = None
    sip_headers: tuple[tuple[str, str], ...] = ()

    def with_status(self, status: str) -> CallInfo:
        """Return a copy whose ``CallStatus`` is ``status`` (REQ-3: the status at that moment)."""
        return dataclasses.replace(self, status=status)


def _text(value: ParamValue) -> str | None:
    """The wire form of one value, or None when it must be left out (REQ-2)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value or None


def clean(pairs: Iterable[tuple[str, ParamValue]]) -> Params:
    """Return ``pairs`` as wire text, without empty names or values (REQ-2), sorted by name.

    The sort is stable, so values of a repeated name keep their order.
    """
    out: Params = []
    for name, value in pairs:
        text = _text(value)
        if name and text is not None:
            out.append((name, text))
    out.sort(key=lambda pair: pair[0])
    return out


def sip_header_params(headers: Iterable[tuple[str, str]]) -> Params:
    """REQ-5: each ``X-`` header as ``SipHeader_<Header-Name>`` (name as written).

    A header that occurs more than once gives one parameter per occurrence; the other
    headers are ignored.
    """
    return [
        (SIP_HEADER_PREFIX + name, value.strip())
        for name, value in headers
        if name[:2].lower() == "x-" and len(name) > 2 and value.strip()
    ]


def voice_params(call: CallInfo, extras: Mapping[str, ParamValue] | None = None) -> Params:
    """Return the REQ-1 parameters of ``call`` plus ``extras`` (REQ-5: ``Digits``, ``Dial…``).

    An extra whose name is also a REQ-1 name replaces it (every value of that name); an
    extra whose value is ``None`` removes it.  ``Caller``/``Called`` are copies of
    ``From``/``To`` and follow replacements of those.
    """
    base: list[tuple[str, ParamValue]] = [
        ("CallSid", call.call_sid),
        ("AccountSid", call.account_sid),
        ("From", call.from_),
        ("To", call.to),
        ("CallStatus", call.status),
        ("ApiVersion", call.api_version),
        ("Direction", call.direction),
        ("ParentCallSid", call.parent_call_sid),
        ("ForwardedFrom", call.forwarded_from),
        ("CallerName", call.caller_name),
    ]
    base.extend(sip_header_params(call.sip_headers))
    more = list(extras.items()) if extras else []
    replaced = {name for name, _ in more}
    merged = [pair for pair in base if pair[0] not in replaced]
    merged.extend(more)
    copies = {"From": "Caller", "To": "Called"}
    merged.extend(
        (copies[name], value)
        for name, value in list(merged)
        if name in copies and copies[name] not in replaced
    )
    return clean(merged)


def status_callback_params(
    call: CallInfo,
    *,
    status: str | None = None,
    timestamp: datetime | None = None,
    sequence_number: int | None = None,
    call_duration: int | None = None,
    sip_response_code: int | None = None,
    extras: Mapping[str, ParamValue] | None = None,
) -> Params:
    """Return the CB-5 parameters of a status callback about ``call``.

    ``status`` is the CB-3 ``CallStatus`` (default: ``call.status``).  ``timestamp`` and
    ``sequence_number`` may be left to the dispatcher, which sets both when the event fires
    (CB-7); ``call_duration`` and ``sip_response_code`` belong to ``completed`` only (CB-5,
    CB-6) and are left out when ``None``.
    """
    fields: dict[str, ParamValue] = {
        "CallStatus": status if status is not None else call.status,
        "CallbackSource": CALLBACK_SOURCE,
        "Timestamp": format_timestamp(timestamp) if timestamp is not None else None,
        "SequenceNumber": sequence_number,
        "CallDuration": call_duration,
        "SipResponseCode": sip_response_code,
    }
    if extras:
        fields.update(extras)
    return voice_params(call, fields)


def format_timestamp(moment: datetime) -> str:
    """RFC 2822 in UTC with ``+0000``, e.g. ``Tue, 04 Nov 2025 10:00:04 +0000`` (CB-5).

    ``moment`` must be aware; it is converted to UTC and its fraction of a second dropped.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be an aware datetime")
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))
