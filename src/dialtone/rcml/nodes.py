"""The typed tree of a validated RCML document: one frozen dataclass per verb and noun,
and SPECS, the table of the attributes each element takes and the node field each fills.

Every value is final: defaults are filled in, URLs are absolute (resolved against the
document's URL, HOOK-3, fragment kept for the webhook client, HOOK-4), methods are upper
case, numbers are normalised.  Every node keeps ``element``, its path with 1-based indexes
(``Response/Dial[1]/Client[2]``), and ``line``, for the messages of later errors and warnings
(DOC-21).  Nodes are built by :func:`dialtone.rcml.parser.parse_document` only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dialtone.rcml import attributes as at
from dialtone.rcml.errors import RcmlWarning

__all__ = [
    "SPECS",
    "ClientNoun",
    "Dial",
    "Document",
    "ElementSpec",
    "Gather",
    "GatherChild",
    "Hangup",
    "Node",
    "Noun",
    "NumberNoun",
    "Pause",
    "Play",
    "Redirect",
    "Reject",
    "Say",
    "SipNoun",
    "ValueParser",
    "Verb",
    "field_name",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """Where a node was written: element path and line (1-based)."""

    element: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Say(Node):
    """``<Say>`` (VRB-1): ``loop`` 0 repeats until the call ends."""

    text: str
    voice: str = "man"
    language: str = "en-US"
    loop: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Play(Node):
    """``<Play>`` (VRB-2): exactly one of ``url`` (audio) and ``digits`` (RFC 4733) is set."""

    url: str | None
    loop: int = 1
    digits: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(Node):
    """``<Pause>`` (VRB-3): ``length`` seconds of silence."""

    length: int = 1


#: What a ``<Gather>`` may hold (VRB-4).
GatherChild = Say | Play | Pause


@dataclass(frozen=True, slots=True, kw_only=True)
class Gather(Node):
    """``<Gather>`` (VRB-4): ``action`` defaults to the document's URL, ``finish_on_key``
    is ``""`` for no key and ``num_digits`` None for unlimited."""

    action: str
    method: str = "POST"
    timeout: int = 5
    finish_on_key: str = "#"
    num_digits: int | None = None
    input: str = "dtmf"
    action_on_empty_result: bool = False
    children: tuple[GatherChild, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _NounBase(Node):
    """The attributes every ``<Dial>`` noun shares (DIAL-5, WSP-1, CB-1, CB-2).

    ``url`` is the whisper document; ``status_callback_events`` is the effective
    subscription: empty without ``status_callback``, ``{"completed"}`` when the callback has
    no (or an empty) event list (CB-2).
    """

    url: str | None = None
    method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientNoun(_NounBase):
    """``<Client>`` (DIAL-5): ``login`` without any ``client:`` prefix."""

    login: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberNoun(_NounBase):
    """``<Number>`` (DIAL-6): ``number`` normalised (``123-321-4321`` → ``1233214321``)."""

    number: str
    send_digits: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SipNoun(_NounBase):
    """``<Sip>`` (DIAL-7): ``uri`` without its header part; ``headers`` are the INVITE's
    extra headers, unescaped, names ``X-`` prefixed (LEG-4), in document order."""

    uri: str
    headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None
    password: str | None = None


#: A destination of ``<Dial>``.
Noun = ClientNoun | NumberNoun | SipNoun


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Node):
    """``<Dial>`` (DIAL-1..DIAL-3): ``nouns`` hold 1..10 destinations, duplicates removed
    (DIAL-12); ``caller_id`` None means the caller's ``From``; ``record`` is kept as written
    (DIAL-38: not yet acted upon)."""

    nouns: tuple[Noun, ...]
    action: str | None = None
    method: str = "POST"
    timeout: int = 30
    time_limit: int = 14400
    caller_id: str | None = None
    hangup_on_star: bool = False
    record: str = "false"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup(Node):
    """``<Hangup/>`` (VRB-6)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Node):
    """``<Reject>`` (VRB-7): ``reason`` is ``rejected`` or ``busy``."""

    reason: str = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect(Node):
    """``<Redirect>`` (VRB-8): ``url`` resolved against the document's URL."""

    url: str
    method: str = "POST"


#: A top-level verb of ``<Response>``.
Verb = Say | Play | Pause | Gather | Dial | Hangup | Reject | Redirect


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """A validated document: its verbs in order, the URL it came from, its warnings."""

    verbs: tuple[Verb, ...]
    url: str
    warnings: tuple[RcmlWarning, ...] = ()


# --- what each element accepts: the attribute tables the parser follows ------------------------

#: Parses one trimmed attribute value; the second argument is the document's URL.
ValueParser = Callable[[str, str], object]


def _int(name: str, low: int, high: int, code: int) -> ValueParser:
    return lambda value, _: at.parse_int(name, value, low=low, high=high, code=code)


def _method(name: str, code: int) -> ValueParser:
    return lambda value, _: at.parse_method(name, value, code=code)


def _bool(name: str, code: int) -> ValueParser:
    return lambda value, _: at.parse_bool(name, value, code=code)


def _choice(name: str, choices: str, code: int) -> ValueParser:
    return lambda value, _: at.parse_choice(name, value, tuple(choices.split()), code=code)


def _url(name: str) -> ValueParser:
    return lambda value, base: at.resolve_url(name, value, base)


def _digits(name: str, alphabet: str, limit: int, code: int) -> ValueParser:
    return lambda value, _: at.parse_digits(name, value, alphabet=alphabet, limit=limit, code=code)


def _text(value: str, _: str) -> str:
    return value


@dataclass(frozen=True, slots=True)
class ElementSpec:
    """The attributes an element takes (name → value parser) and those it ignores with a
    warning 12200 (DOC-4).  Any other attribute is an error 12200."""

    attributes: Mapping[str, ValueParser]
    ignored: frozenset[str] = frozenset()


def _spec(attributes: Mapping[str, ValueParser], ignored: str = "") -> ElementSpec:
    return ElementSpec(attributes, frozenset(ignored.split()))


def _noun(method_code: int, **extra: ValueParser) -> dict[str, ValueParser]:
    """DIAL-5 attributes, with the noun's own ``method`` code (DIAL-6, DIAL-7)."""
    return {
        "url": _url("url"),
        "method": _method("method", method_code),
        "statusCallbackEvent": lambda value, _: at.parse_events("statusCallbackEvent", value),
        "statusCallback": _url("statusCallback"),
        "statusCallbackMethod": _method("statusCallbackMethod", 12200),
        **extra,
    }


_RECORD = (
    "false do-not-record true record-from-answer record-from-ringing record-from-answer-dual "
    "record-from-ringing-dual"
)

#: Attribute tables of VRB-1..VRB-8 and DIAL-1, DIAL-5..DIAL-7.
SPECS: dict[str, ElementSpec] = {
    "Response": _spec({}),
    "Say": _spec(
        {
            "voice": lambda value, _: at.check_voice(value),
            "language": lambda value, _: at.check_language(value),
            "loop": _int("loop", 0, 1000, 13510),
        }
    ),
    "Play": _spec(
        {
            "loop": _int("loop", 0, 1000, 13410),
            "digits": _digits("digits", "0123456789*#wW", 64, 13430),
        }
    ),
    "Pause": _spec({"length": _int("length", 1, 600, 13910)}),
    "Gather": _spec(
        {
            "action": _url("action"),
            "method": _method("method", 13312),
            "timeout": _int("timeout", 1, 600, 13313),
            "finishOnKey": lambda value, _: at.parse_finish_on_key(value),
            "numDigits": _int("numDigits", 1, 100, 13314),
            "input": _choice("input", "dtmf", 13326),
            "actionOnEmptyResult": _bool("actionOnEmptyResult", 12200),
        },
        "language hints speechTimeout speechModel profanityFilter enhanced "
        "partialResultCallback partialResultCallbackMethod",
    ),
    "Dial": _spec(
        {
            "action": _url("action"),
            "method": _method("method", 13210),
            "timeout": _int("timeout", 1, 600, 13212),
            "timeLimit": _int("timeLimit", 1, 86400, 13216),
            "callerId": lambda value, _: at.parse_caller_id(value),
            "hangupOnStar": _bool("hangupOnStar", 13213),
            "record": _choice("record", _RECORD, 13217),
        },
        "answerOnBridge ringTone trim recordingStatusCallback "
        "recordingStatusCallbackMethod recordingStatusCallbackEvent recordingTrack",
    ),
    "Client": _spec(_noun(12200)),
    "Number": _spec(
        _noun(13221, sendDigits=_digits("sendDigits", "0123456789*#w", 32, 13222)),
        "byoc machineDetection machineDetectionTimeout amdStatusCallback amdStatusCallbackMethod",
    ),
    "Sip": _spec(_noun(13241, username=_text, password=_text)),
    "Hangup": _spec({}),
    "Reject": _spec({"reason": _choice("reason", "rejected busy", 12200)}),
    "Redirect": _spec({"method": _method("method", 13710)}),
}

_FIELD_NAMES = {"statusCallbackEvent": "status_callback_events"}


def field_name(attribute: str) -> str:
    """Return the node field of an attribute: ``finishOnKey`` → ``finish_on_key``."""
    if attribute in _FIELD_NAMES:
        return _FIELD_NAMES[attribute]
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), attribute)
