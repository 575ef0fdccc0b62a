"""Bytes of an RCML response → a validated :class:`~dialtone.rcml.nodes.Document`.

:func:`parse_document` decides by Content-Type what the body is (DOC-2), reads XML with
defusedxml (no DTD, no entities, no external references; DOC-3) into a small tree that
keeps line numbers, then validates the whole document before anything runs (DOC-4, DOC-5):
one function per verb in :data:`VERBS`, in the style of jambonz ``make_task.js``.  The first
problem raises :class:`~dialtone.rcml.errors.RcmlError`; log-1 notices are collected in
``Document.warnings``.  Pure: no I/O, no clock.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ErrorString

from defusedxml.common import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import XMLParser

from dialtone.rcml import attributes as at
from dialtone.rcml.attributes import ValueProblem, show
from dialtone.rcml.errors import RcmlError, RcmlWarning
from dialtone.rcml.nodes import (
    SPECS,
    ClientNoun,
    Dial,
    Document,
    Gather,
    GatherChild,
    Hangup,
    Noun,
    NumberNoun,
    Pause,
    Play,
    Redirect,
    Reject,
    Say,
    SipNoun,
    Verb,
    field_name,
)

__all__ = ["MAX_BODY", "UNSUPPORTED_VERBS", "VERBS", "parse_document"]

MAX_BODY = 64 * 1024  # DOC-3, HOOK-7
MAX_NOUNS = 10  # DIAL-3
RCML_TYPES = frozenset({"text/xml", "application/xml", "text/html"})
AUDIO_TYPES = frozenset({"audio/wav", "audio/wave", "audio/x-wav"})
#: DOC-4: recognised, rejected as not supported (12200).
UNSUPPORTED_VERBS = frozenset(
    "Record Enqueue Leave Conference Sms Message Refer Connect Start Stop Echo".split()  # noqa: SIM905
)
WHISPER_VERBS = "Say, Play, Pause, Gather, Hangup, Reject, Redirect"  # WSP-4
_XML_NAMESPACES = ("{http://www.w3.org/XML/1998/namespace}", "{http://www.w3.org/2000/xmlns/}")
_BOM = b"\xef\xbb\xbf"


def parse_document(
    body: bytes,
    url: str,
    *,
    content_type: str | None,
    whisper: bool = False,
    known_clients: Collection[str] | None = None,
    sips_allowed: bool = False,
) -> Document:
    """Validate an RCML response fetched from ``url`` (after redirects) into a Document.

    ``whisper`` forbids ``<Dial>`` anywhere (WSP-4, 13201).  ``known_clients``, when given,
    adds warning 82001 for each ``<Client>`` naming none of them (the branch still exists,
    DIAL-13).  ``sips_allowed`` says whether a TLS transport is configured (DIAL-7).
    Raises :class:`RcmlError` for the first problem found; never anything else.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in AUDIO_TYPES:  # DOC-2: the URL itself is the audio
        return Document(verbs=(Play(url=url, element="Response/Play[1]", line=1),), url=url)
    if not body.removeprefix(_BOM).strip():
        raise RcmlError(11770, "the response body is empty", url=url)
    if len(body) > MAX_BODY:
        raise RcmlError(
            11750, f"the response body is {len(body)} bytes; allowed: at most {MAX_BODY}", url=url
        )
    ctx = _Context(url, whisper, known_clients, sips_allowed)
    if media_type == "text/plain":
        text = body.removeprefix(_BOM).decode(_charset(content_type or ""), errors="replace")
        say = _say(ctx, _Elem("Say", {}, 1, [_Text(text, 1)]), "Response/Say[1]")
        return Document(verbs=(say,), url=url, warnings=tuple(ctx.warnings))
    if media_type not in RCML_TYPES and not media_type.endswith("+xml"):
        shown = show(content_type) if content_type else "missing"
        raise RcmlError(
            12300,
            f"Content-Type is {shown}; allowed: text/xml, application/xml, text/html, */*+xml, "
            "audio/wav, audio/wave, audio/x-wav, text/plain",
            url=url,
        )
    return ctx.document(_read_xml(body, url))


# --- XML with line numbers -----------------------------------------------------------------


@dataclass(slots=True)
class _Text:
    text: str
    line: int  # line of the first character

    @property
    def first_line(self) -> int:
        """Line of the first non-whitespace character."""
        lead = len(self.text) - len(self.text.lstrip())
        return self.line + self.text.count("\n", 0, lead)


@dataclass(slots=True)
class _Elem:
    tag: str  # local name: an element namespace is ignored
    attrib: dict[str, str]
    line: int
    content: list[_Elem | _Text] = field(default_factory=list)

    def elements(self) -> list[_Elem]:
        return [c for c in self.content if isinstance(c, _Elem)]

    def texts(self) -> list[_Text]:
        return [c for c in self.content if isinstance(c, _Text) and c.text.strip()]

    def text(self) -> str:
        return "".join(c.text for c in self.content if isinstance(c, _Text)).strip()


class _TreeBuilder:
    """The parser's target: builds ``_Elem``s, asking expat for the current line."""

    def __init__(self, line_shift: int) -> None:
        self.expat: Any = None
        self.line_shift = line_shift
        self.stack: list[_Elem] = []
        self.root: _Elem | None = None

    def _line(self) -> int:
        return int(self.expat.CurrentLineNumber) + self.line_shift

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        elem = _Elem(tag.rpartition("}")[2], dict(attrib), self._line())
        if self.stack:
            self.stack[-1].content.append(elem)
        else:
            self.root = elem
        self.stack.append(elem)

    def end(self, tag: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        # expat buffers text and hands it over at the next event, so the current line is
        # where the text ends.
        if self.stack:
            self.stack[-1].content.append(_Text(text, self._line() - text.count("\n")))

    def close(self) -> _Elem | None:
        return self.root


def _read_xml(body: bytes, url: str) -> _Elem:
    """Parse with defusedxml; every failure becomes 12100 with line and column."""
    start = len(_BOM) if body.startswith(_BOM) else 0
    data = body[start:].lstrip(b" \t\r\n")  # DOC-3: tolerated before the declaration
    prefix = body[start : len(body) - len(data)]
    line_shift = prefix.count(b"\n") + prefix.count(b"\r") - prefix.count(b"\r\n")
    col_shift = len(prefix) - max(prefix.rfind(b"\n"), prefix.rfind(b"\r")) - 1
    builder = _TreeBuilder(line_shift)
    parser = XMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.expat = parser.parser
    try:
        parser.feed(data)
        root: _Elem | None = parser.close()
    except ParseError as exc:
        line, col = exc.position
        reason = f"XML is not well-formed: {ErrorString(exc.code)}"
    except DTDForbidden:
        line, col, reason = *_position(parser), "a DTD (<!DOCTYPE>) is not allowed"
    except EntitiesForbidden as exc:
        line, col, reason = *_position(parser), f"entity declaration {exc.name!r} is not allowed"
    except ExternalReferenceForbidden:
        line, col, reason = *_position(parser), "external entity references are not allowed"
    except (ValueError, LookupError) as exc:  # unknown or multi-byte encodings
        line, col, reason = *_position(parser), f"XML cannot be read: {exc}"
    else:
        if root is None:  # pragma: no cover - expat reports "no element found" first
            raise RcmlError(12100, "no root element", url=url)
        return root
    column = col + 1 + (col_shift if line == 1 else 0)
    raise RcmlError(12100, reason, line=line + line_shift, url=url, column=column)


def _position(parser: Any) -> tuple[int, int]:
    return int(parser.parser.CurrentLineNumber), int(parser.parser.CurrentColumnNumber)


def _charset(content_type: str) -> str:
    """The ``charset`` parameter of a text/plain response, if Python knows it; else UTF-8."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _children(elem: _Elem, path: str) -> Iterator[tuple[_Elem, str]]:
    """Yield each child element with its path: ``path/Tag[n]``, n counted per tag."""
    seen: dict[str, int] = {}
    for child in elem.elements():
        seen[child.tag] = seen.get(child.tag, 0) + 1
        yield child, f"{path}/{child.tag}[{seen[child.tag]}]"


# --- validation context --------------------------------------------------------------------


class _Context:
    """What the validators share: the URL, the options, the warnings, error helpers."""

    def __init__(
        self,
        url: str,
        whisper: bool,
        known_clients: Collection[str] | None,
        sips_allowed: bool,
    ) -> None:
        self.url = url
        self.whisper = whisper
        self.known_clients = known_clients
        self.sips_allowed = sips_allowed
        self.warnings: list[RcmlWarning] = []

    def error(self, code: int, message: str, path: str, line: int) -> RcmlError:
        return RcmlError(code, message, path, line, self.url)

    def warn(self, code: int, message: str, path: str, line: int) -> None:
        self.warnings.append(RcmlWarning(code, message, path, line, self.url))

    @contextmanager
    def at(self, path: str, line: int) -> Iterator[None]:
        """Turn a ValueProblem raised inside into an RcmlError at ``path``."""
        try:
            yield
        except ValueProblem as problem:
            raise self.error(problem.code, problem.detail, path, line) from None

    def values(self, elem: _Elem, path: str) -> dict[str, Any]:
        """Parse the attributes of ``elem`` by its ElementSpec into node field values.

        Attributes are taken in document order, trimmed; ``xml:``/``xmlns:`` ones are
        skipped, ignored ones warn 12200, unknown ones raise 12200 (DOC-4).
        """
        spec = SPECS[elem.tag]
        values: dict[str, Any] = {}
        for name, raw in elem.attrib.items():
            if name.startswith(_XML_NAMESPACES):
                continue
            if name in spec.ignored:
                self.warn(12200, f"attribute {name} is ignored", path, elem.line)
                continue
            parse = spec.attributes.get(name)
            if parse is None:
                listed = ", ".join(spec.attributes) or "none"
                message = f"unknown attribute {name!r} on {elem.tag}; allowed: {listed}"
                raise self.error(12200, message, path, elem.line)
            try:
                values[field_name(name)] = parse(raw.strip(), self.url)
            except ValueProblem as problem:
                if not problem.warning:
                    raise self.error(problem.code, problem.detail, path, elem.line) from None
                self.warn(problem.code, problem.detail, path, elem.line)
        return values

    def text_only(self, elem: _Elem, path: str) -> str:
        """Return the trimmed text of an element that holds no child element (12200)."""
        for child, child_path in _children(elem, path):
            message = f"unknown element {child.tag!r} inside {elem.tag}; it holds text only"
            raise self.error(12200, message, child_path, child.line)
        return elem.text()

    def empty(self, elem: _Elem, path: str) -> None:
        """Check that an element has no content at all (12200)."""
        self.text_only(elem, path)
        for text in elem.texts():
            message = f"{elem.tag} takes no text; found {show(text.text.strip())}"
            raise self.error(12200, message, path, text.first_line)

    def document(self, root: _Elem) -> Document:
        """Validate ``<Response>`` and everything in it (DOC-4, WSP-4)."""
        if root.tag != "Response":
            message = f"root element is {root.tag!r}; allowed: Response"
            raise RcmlError(12102, message, root.tag, root.line, self.url)
        if self.whisper:
            self._no_dial(root)
        self.values(root, "Response")
        for text in root.texts():
            message = f"text {show(text.text.strip())} directly inside Response; put it in <Say>"
            raise self.error(12200, message, "Response", text.first_line)
        verbs: list[Verb] = []
        for child, path in _children(root, "Response"):
            validate = VERBS.get(child.tag)
            if validate is not None:
                verbs.append(validate(self, child, path))
            elif child.tag in UNSUPPORTED_VERBS:
                message = f"verb {child.tag!r} is not supported; supported: {', '.join(VERBS)}"
                raise self.error(12200, message, path, child.line)
            else:
                raise self.error(12200, f"unknown element {child.tag!r}", path, child.line)
        return Document(verbs=tuple(verbs), url=self.url, warnings=tuple(self.warnings))

    def _no_dial(self, root: _Elem) -> None:
        """WSP-4: a ``<Dial>`` anywhere in a whisper document is 13201, before all else."""
        stack = [(root, "Response")]
        while stack:
            elem, path = stack.pop()
            if elem.tag == "Dial":
                message = (
                    f"whisper document {self.url} contains Dial (line {elem.line}); "
                    f"allowed in a whisper: {WHISPER_VERBS}"
                )
                raise self.error(13201, message, path, elem.line)
            stack.extend(reversed(list(_children(elem, path))))


# --- verbs (VRB-1..VRB-8) ------------------------------------------------------------------


def _say(ctx: _Context, elem: _Elem, path: str) -> Say:
    values = ctx.values(elem, path)
    text = ctx.text_only(elem, path)
    with ctx.at(path, elem.line):
        if not text:
            raise ValueProblem(13520, "Say text is empty; allowed: 1-4096 characters")
        if len(text) > 4096:
            raise ValueProblem(13521, f"Say text is {len(text)} characters; allowed: 1-4096")
    return Say(text=text, **values, element=path, line=elem.line)


def _play(ctx: _Context, elem: _Elem, path: str) -> Play:
    values = ctx.values(elem, path)
    text = ctx.text_only(elem, path)
    url = None
    with ctx.at(path, elem.line):
        if "digits" in values and text:
            raise ValueProblem(13430, f"digits and a URL {show(text)} cannot be combined")
        if "digits" not in values:
            if not text:
                raise ValueProblem(11100, "Play has no URL; allowed: an audio URL as its text")
            url = at.resolve_url("Play URL", text, ctx.url)
    return Play(url=url, **values, element=path, line=elem.line)


def _pause(ctx: _Context, elem: _Elem, path: str) -> Pause:
    values = ctx.values(elem, path)
    ctx.empty(elem, path)
    return Pause(**values, element=path, line=elem.line)


def _gather(ctx: _Context, elem: _Elem, path: str) -> Gather:
    values = {"action": ctx.url, **ctx.values(elem, path)}
    for text in elem.texts():
        message = f"text {show(text.text.strip())} directly inside Gather; allowed: {_NESTED}"
        raise ctx.error(13320, message, path, text.first_line)
    children: list[GatherChild] = []
    for child, child_path in _children(elem, path):
        validate = _GATHER_CHILDREN.get(child.tag)
        if validate is None:
            message = f"Gather cannot contain {child.tag!r}; allowed: {_NESTED}"
            raise ctx.error(13320, message, child_path, child.line)
        children.append(validate(ctx, child, child_path))
    return Gather(**values, children=tuple(children), element=path, line=elem.line)


def _hangup(ctx: _Context, elem: _Elem, path: str) -> Hangup:
    ctx.values(elem, path)
    ctx.empty(elem, path)
    return Hangup(element=path, line=elem.line)


def _reject(ctx: _Context, elem: _Elem, path: str) -> Reject:
    values = ctx.values(elem, path)
    ctx.empty(elem, path)
    return Reject(**values, element=path, line=elem.line)


def _redirect(ctx: _Context, elem: _Elem, path: str) -> Redirect:
    values = ctx.values(elem, path)
    text = ctx.text_only(elem, path)
    with ctx.at(path, elem.line):
        if not text:
            raise ValueProblem(11100, "Redirect has no URL; allowed: a URL as its text")
        url = at.resolve_url("Redirect URL", text, ctx.url)
    return Redirect(url=url, **values, element=path, line=elem.line)


def _dial(ctx: _Context, elem: _Elem, path: str) -> Dial:
    """DIAL-1..DIAL-3, DIAL-12."""
    values = ctx.values(elem, path)
    record = values.get("record", "false")
    if record not in ("false", "do-not-record"):
        message = f"record={record!r} is not yet supported; the call is not recorded"
        ctx.warn(12200, message, path, elem.line)
    return Dial(nouns=_dial_nouns(ctx, elem, path), **values, element=path, line=elem.line)


def _dial_nouns(ctx: _Context, elem: _Elem, path: str) -> tuple[Noun, ...]:
    """DIAL-2 (nouns or text), DIAL-3 (at most 10), DIAL-12 (duplicates dialled once)."""
    children = list(_children(elem, path))
    for child, child_path in children:
        if child.tag in _NOT_IN_DIAL:
            message = f"noun {child.tag!r} is not supported; supported: Client, Number, Sip"
            raise ctx.error(12200, message, child_path, child.line)
        if child.tag not in NOUNS:
            message = f"Dial cannot contain {child.tag!r}; allowed: Client, Number, Sip"
            raise ctx.error(13215, message, child_path, child.line)
    texts = elem.texts()
    if children and texts:
        message = f"text {show(texts[0].text.strip())} is mixed with nouns; use <Number>"
        raise ctx.error(13215, message, path, texts[0].first_line)
    if not children:
        if not texts:
            message = "Dial has neither nouns nor a number; allowed: Client, Number, Sip or text"
            raise ctx.error(13215, message, path, elem.line)
        return (_number(ctx, _Elem("Number", {}, texts[0].first_line, list(texts)), path),)
    if len(children) > MAX_NOUNS:
        message = f"Dial has {len(children)} nouns; allowed: at most {MAX_NOUNS}"
        raise ctx.error(13250, message, path, elem.line)
    kept: list[Noun] = []
    for child, child_path in children:
        noun = NOUNS[child.tag](ctx, child, child_path)
        first = next((k for k in kept if _same_destination(k, noun)), None)
        if first is not None:
            message = f"duplicate {_label(noun)} is dialled once; first at {first.element}"
            ctx.warn(12200, message, child_path, child.line)
            continue
        kept.append(noun)
        known = ctx.known_clients
        if isinstance(noun, ClientNoun) and known is not None and noun.login not in known:
            message = f"Client {noun.login!r} is not a Client of this account"
            ctx.warn(82001, message, child_path, child.line)
    return tuple(kept)


def _same_destination(a: Noun, b: Noun) -> bool:
    if isinstance(a, ClientNoun) and isinstance(b, ClientNoun):
        return a.login == b.login
    if isinstance(a, NumberNoun) and isinstance(b, NumberNoun):
        return a.number == b.number
    if isinstance(a, SipNoun) and isinstance(b, SipNoun):
        return at.sip_uris_equal(a.uri, b.uri)
    return False


def _label(noun: Noun) -> str:
    if isinstance(noun, ClientNoun):
        return f"Client {noun.login!r}"
    if isinstance(noun, NumberNoun):
        return f"Number {noun.number!r}"
    return f"Sip {noun.uri!r}"


# --- nouns (DIAL-5..DIAL-7) ----------------------------------------------------------------


def _noun_values(ctx: _Context, elem: _Elem, path: str) -> dict[str, Any]:
    """Parse a noun's attributes; the callback subscription follows CB-2."""
    values = ctx.values(elem, path)
    events = values.pop("status_callback_events", None)
    if events is not None and "status_callback" not in values:
        message = "statusCallbackEvent is ignored without statusCallback"
        ctx.warn(12200, message, path, elem.line)
    if "status_callback" in values:
        values["status_callback_events"] = events or frozenset({"completed"})
    return values


def _client(ctx: _Context, elem: _Elem, path: str) -> ClientNoun:
    values = _noun_values(ctx, elem, path)
    text = ctx.text_only(elem, path)
    with ctx.at(path, elem.line):
        login = at.parse_client_login(text)
    return ClientNoun(login=login, **values, element=path, line=elem.line)


def _number(ctx: _Context, elem: _Elem, path: str) -> NumberNoun:
    values = _noun_values(ctx, elem, path)
    text = ctx.text_only(elem, path)
    with ctx.at(path, elem.line):
        number = at.normalise_number(text)
    return NumberNoun(number=number, **values, element=path, line=elem.line)


def _sip(ctx: _Context, elem: _Elem, path: str) -> SipNoun:
    values = _noun_values(ctx, elem, path)
    text = ctx.text_only(elem, path)
    with ctx.at(path, elem.line):
        at.parse_credentials(values.get("username"), values.get("password"))
        uri, headers = at.parse_sip_uri(text, sips_allowed=ctx.sips_allowed)
    return SipNoun(uri=uri, headers=headers, **values, element=path, line=elem.line)


_NESTED = "Say, Play, Pause"
_NOT_IN_DIAL = frozenset({"Conference", "Queue", "Video"})
_GATHER_CHILDREN: dict[str, Callable[[_Context, _Elem, str], GatherChild]] = {
    "Say": _say,
    "Play": _play,
    "Pause": _pause,
}

#: The nouns of ``<Dial>`` (DIAL-2), each with its validator.
NOUNS: dict[str, Callable[[_Context, _Elem, str], Noun]] = {
    "Client": _client,
    "Number": _number,
    "Sip": _sip,
}

#: The verbs of ``<Response>`` (DOC-4), each with its validator.
VERBS: dict[str, Callable[[_Context, _Elem, str], Verb]] = {
    "Say": _say,
    "Play": _play,
    "Pause": _pause,
    "Gather": _gather,
    "Dial": _dial,
    "Hangup": _hangup,
    "Reject": _reject,
    "Redirect": _redirect,
}
