"""Minimal SDP (RFC 4566) and offer/answer (RFC 3264) for G.711 audio: a pure core.

:func:`parse_sdp` reads a session description into :class:`SessionDescription` (unknown
lines and attributes are kept, so :meth:`SessionDescription.to_bytes` writes them back);
:func:`negotiate_answer` answers an offer by the rules of spec SIP-12; :func:`build_offer`
writes dialtone's own offer for outbound legs (spec LEG-3); :func:`accept_answer` reads
the far end's answer to that offer. The results tell the media engine the payload type,
the RFC 4733 telephone-event payload type and where to send RTP.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Answer",
    "Connection",
    "Direction",
    "MediaChoice",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "accept_answer",
    "build_offer",
    "negotiate_answer",
    "parse_sdp",
]


class SdpError(ValueError):
    """A session description is malformed, or offer/answer found nothing to agree on.

    ``no_common_codec`` is True when the SDP is fine but no audio stream can be accepted:
    the call layer answers ``488 Not Acceptable Here`` (spec SIP-12, RFC 3261 §13.3.1.1).
    """

    def __init__(self, reason: str, *, no_common_codec: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.no_common_codec = no_common_codec


class Direction(enum.StrEnum):
    """Media direction attributes (RFC 4566 §6, RFC 3264 §5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def mirrored(self) -> Direction:
        """The direction an answer gives to this offered one (RFC 3264 §6.1)."""
        if self is Direction.SENDONLY:
            return Direction.RECVONLY
        if self is Direction.RECVONLY:
            return Direction.SENDONLY
        return self

    @property
    def sends(self) -> bool:
        """True when the side with this direction sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """True when the side with this direction receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)


_DIRECTIONS = {d.value: d for d in Direction}


class RtpMap(NamedTuple):
    """An ``a=rtpmap`` value: encoding name, clock rate, channels (RFC 4566 §6)."""

    encoding: str
    clock_rate: int
    channels: int = 1

    def __str__(self) -> str:
        # RFC 4566 §6: the channel count may be omitted when it is 1.
        base = f"{self.encoding}/{self.clock_rate}"
        return base if self.channels == 1 else f"{base}/{self.channels}"


# RFC 3551 §6 table 4: static audio payload types, valid without an rtpmap.
STATIC_PAYLOAD_TYPES: Mapping[int, RtpMap] = {
    0: RtpMap("PCMU", 8000),
    3: RtpMap("GSM", 8000),
    4: RtpMap("G723", 8000),
    8: RtpMap("PCMA", 8000),
    9: RtpMap("G722", 8000),  # 16 kHz audio, 8000 in SDP for historical reasons
    13: RtpMap("CN", 8000),
    18: RtpMap("G729", 8000),
}

# Codecs dialtone's media engine speaks, by name, with their static payload types.
_G711 = {"PCMU": 0, "PCMA": 8}


@dataclass(slots=True)
class Origin:
    """The ``o=`` line (RFC 4566 §5.2); ids are kept as the text they were written as."""

    username: str
    session_id: str
    session_version: str
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(slots=True)
class Connection:
    """A ``c=`` line (RFC 4566 §5.7): ``IN IP4 192.0.2.1`` or ``IN IP6 2001:db8::1``."""

    nettype: str
    addrtype: str
    address: str

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl`` or ``/count`` suffix."""
        return self.address.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


Attribute = tuple[str, str | None]
"""An attribute kept as written: ``("rtcp", "5005")`` for ``a=rtcp:5005``, None for flags."""


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section (RFC 4566 §5.14) with the attributes offer/answer needs parsed.

    For RTP profiles ``formats`` holds the payload types; other protocols (``udptl``
    T.38, BFCP…) keep their format tokens in ``format_tokens`` and ``formats`` is empty.
    ``direction`` is resolved at parse time (media level, else session level, else
    sendrecv, RFC 4566 §6). ``attributes`` keeps every other attribute in order and
    ``lines`` the other lines (``i=``, ``b=``, ``k=``, unknown types).
    """

    media: str
    port: int
    proto: str
    formats: list[int] = field(default_factory=list)
    rtpmap: dict[int, RtpMap] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: Direction = Direction.SENDRECV
    ptime: int | None = None
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    port_count: int | None = None
    format_tokens: list[str] = field(default_factory=list)

    @property
    def is_rtp(self) -> bool:
        """True for RTP profiles (RTP/AVP, RTP/AVPF, RTP/SAVP, UDP/TLS/RTP/SAVPF …)."""
        return _is_rtp(self.proto)

    def codec(self, payload_type: int) -> RtpMap | None:
        """The encoding of ``payload_type``: its rtpmap, else the static assignment."""
        mapped = self.rtpmap.get(payload_type)
        if mapped is not None:
            return mapped
        return STATIC_PAYLOAD_TYPES.get(payload_type)

    def attribute(self, name: str) -> str | None:
        """The value of the first other attribute ``name`` ("" for a flag), or None."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def _to_lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        fmts = [str(pt) for pt in self.formats] if self.is_rtp else self.format_tokens
        out = [" ".join([f"m={self.media} {port} {self.proto}", *fmts])]
        # RFC 4566 §5 order inside a media section: i, c, b, k, a.
        out += [f"i={v}" for t, v in self.lines if t == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{t}={v}" for t, v in self.lines if t != "i"]
        written: set[int] = set()
        for pt in [*self.formats, *self.rtpmap, *self.fmtp]:
            if pt in written:
                continue
            written.add(pt)
            if pt in self.rtpmap:
                out.append(f"a=rtpmap:{pt} {self.rtpmap[pt]}")
            if pt in self.fmtp:
                out.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
        if self.ptime is not None:
            out.append(f"a=ptime:{self.ptime}")
        out += [_attribute_line(a) for a in self.attributes]
        if self.port != 0:
            # Always explicit for a live stream; meaningless on a rejected one (port 0).
            out.append(f"a={self.direction}")
        return out


# RFC 4566 §5: session-level line order; unknown types go just before the attributes.
_SESSION_ORDER = {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "t": 6, "r": 6, "z": 7, "k": 8}
_UNKNOWN_RANK = 9


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body (RFC 4566 §5).

    ``direction`` is the session-level direction attribute if there was one (media
    sections already carry the resolved value); ``timing`` keeps the ``t=``/``r=`` lines
    and ``lines`` the other session-level lines, each as ``(type, value)``.
    """

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    media: list[MediaDescription] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    direction: Direction | None = None
    timing: list[tuple[str, str]] = field(default_factory=lambda: [("t", "0 0")])
    lines: list[tuple[str, str]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line endings (RFC 4566 §5), in the RFC's line order."""
        # v=0 is the only protocol version there is (RFC 4566 §5.1).
        out = ["v=0", f"o={self.origin}", f"s={self.session_name or '-'}"]
        ranked: list[tuple[int, int, str]] = []
        for index, (kind, value) in enumerate(self.lines):
            ranked.append((_SESSION_ORDER.get(kind, _UNKNOWN_RANK), index, f"{kind}={value}"))
        if self.connection is not None:
            ranked.append((_SESSION_ORDER["c"], -1, f"c={self.connection}"))
        timing = self.timing or [("t", "0 0")]
        for index, (kind, value) in enumerate(timing):
            ranked.append((_SESSION_ORDER["t"], index, f"{kind}={value}"))
        out += [line for _, _, line in sorted(ranked)]
        out += [_attribute_line(a) for a in self.attributes]
        if self.direction is not None:
            out.append(f"a={self.direction}")
        for media in self.media:
            out += media._to_lines()
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return f"a={name}" if value is None else f"a={name}:{value}"


def _is_rtp(proto: str) -> bool:
    return "RTP/" in proto.upper()


# --------------------------------------------------------------------------- parsing


def _int(text: str, low: int, high: int) -> int | None:
    # isascii() + isdigit(): int() would accept "²", " 7", "+7" or "7_0".
    if 0 < len(text) <= 10 and text.isascii() and text.isdigit():
        value = int(text)
        if low <= value <= high:
            return value
    return None


_RTPMAP_RE = re.compile(r"([0-9]{1,3})[ \t]+([^/ \t]+)/([0-9]{1,10})(?:/([0-9]{1,3}))?[ \t]*")
_FMTP_RE = re.compile(r"([0-9]{1,3})(?:[ \t]+(.*))?", re.DOTALL)


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"malformed c= line {value!r}")
    return Connection(*parts)


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"malformed m= line {value!r}")
    media, port_text, proto, *fmts = parts
    port_part, slash, count_part = port_text.partition("/")
    port = _int(port_part, 0, 65535)
    count = _int(count_part, 1, 65535) if slash else None
    if port is None or (slash and count is None):
        raise SdpError(f"bad port in m= line {value!r}")
    description = MediaDescription(media=media, port=port, proto=proto, port_count=count)
    if _is_rtp(proto):
        for fmt in fmts:
            pt = _int(fmt, 0, 127)
            if pt is None:
                raise SdpError(f"bad RTP payload type {fmt!r}")
            description.formats.append(pt)
    else:
        description.format_tokens = fmts
    return description


def _media_attribute(media: MediaDescription, name: str, value: str | None) -> bool:
    """Store an attribute offer/answer understands; False to keep it as an other one."""
    if value is None:
        return False
    if name == "rtpmap":
        match = _RTPMAP_RE.fullmatch(value)
        if match is None:
            return False
        pt = int(match.group(1))
        if pt > 127 or pt in media.rtpmap:
            return False
        channels = int(match.group(4)) if match.group(4) else 1
        media.rtpmap[pt] = RtpMap(match.group(2), int(match.group(3)), channels)
        return True
    if name == "fmtp":
        match = _FMTP_RE.fullmatch(value)
        if match is None:
            return False
        pt = int(match.group(1))
        if pt > 127 or pt in media.fmtp:
            return False
        media.fmtp[pt] = (match.group(2) or "").strip()
        return True
    if name == "ptime" and media.ptime is None:
        # Some stacks write "20.0"; keep whole milliseconds only.
        text = value.strip()
        if text.endswith(".0"):
            text = text[:-2]
        ptime = _int(text, 1, 10_000)
        if ptime is None:
            return False
        media.ptime = ptime
        return True
    return False


def parse_sdp(data: bytes) -> SessionDescription:
    """Parse an SDP body (RFC 4566).

    Tolerates ``\\n`` line endings, blank lines, unknown line types and unknown
    attributes (all kept). Requires ``v=0`` first and an ``o=`` line; ``s=`` and ``t=``
    default to ``-`` and ``0 0``. An rtpmap, fmtp or ptime attribute that cannot be read
    is kept as an other attribute rather than failing the call. Raises
    :class:`SdpError` on anything else malformed, and never any other exception.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SdpError("SDP body is not bytes")
    # surrogateescape: a Latin-1 session name must not fail the call, and to_bytes()
    # writes the same bytes back.
    text = bytes(data).decode("utf-8", "surrogateescape")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("SDP must start with v=0")

    origin: Origin | None = None
    session_name: str | None = None
    session = SessionDescription(origin=Origin("-", "0", "0", "IN", "IP4", "0.0.0.0"))
    session.timing = []
    media: MediaDescription | None = None
    explicit: list[bool] = []  # per media section: was a direction attribute given?
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not (line[0].isascii() and line[0].isalpha()):
            raise SdpError(f"malformed SDP line {line[:40]!r}")
        if "\r" in line or "\x00" in line:
            raise SdpError("CR or NUL inside an SDP line")
        kind, value = line[0], line[2:]
        if kind == "m":
            media = _parse_media_line(value)
            session.media.append(media)
            explicit.append(False)
        elif kind == "a":
            name, colon, rest = value.partition(":")
            attr_value = rest if colon else None
            if attr_value is None and name.strip() in _DIRECTIONS:
                direction = _DIRECTIONS[name.strip()]
                if media is None:
                    session.direction = direction
                else:
                    media.direction = direction
                    explicit[-1] = True
            elif media is None:
                session.attributes.append((name, attr_value))
            elif not _media_attribute(media, name, attr_value):
                media.attributes.append((name, attr_value))
        elif kind == "c":
            if media is None and session.connection is None:
                session.connection = _parse_connection(value)
            elif media is not None and media.connection is None:
                media.connection = _parse_connection(value)
            else:
                # RFC 4566 §5.7: more c= lines only for multicast; kept, not interpreted.
                (session.lines if media is None else media.lines).append((kind, value))
        elif media is not None:
            media.lines.append((kind, value))
        elif kind == "o":
            if origin is not None:
                raise SdpError("more than one o= line")
            parts = value.split()
            if len(parts) != 6:
                raise SdpError(f"malformed o= line {value!r}")
            origin = Origin(*parts)
        elif kind == "s" and session_name is None:
            session_name = value
        elif kind in ("t", "r"):
            session.timing.append((kind, value))
        elif kind == "v":
            raise SdpError("more than one v= line")
        else:
            session.lines.append((kind, value))
    if origin is None:
        raise SdpError("SDP without o= line")
    session.origin = origin
    session.session_name = session_name if session_name else "-"
    if not session.timing:
        session.timing = [("t", "0 0")]
    if session.direction is not None:
        for section, given in zip(session.media, explicit, strict=True):
            if not given:
                section.direction = session.direction
    return session


# --------------------------------------------------------------------------- offer/answer


@dataclass(frozen=True, slots=True)
class MediaChoice:
    """What the media engine needs once offer and answer agree.

    ``direction`` is dialtone's own: ``sendonly`` means dialtone may send but will not
    receive. ``remote_address``/``remote_port`` are where to send RTP (the media-level
    ``c=`` over the session-level one, RFC 4566 §5.7); an address of ``0.0.0.0`` is the
    RFC 2543 way of saying "hold" (RFC 3264 §8.4).
    """

    media_index: int
    payload_type: int
    codec: RtpMap
    telephone_event_pt: int | None
    remote_address: str
    remote_port: int
    direction: Direction
    ptime: int | None


@dataclass(frozen=True, slots=True)
class Answer(MediaChoice):
    """The result of :func:`negotiate_answer`: the answer ``sdp`` and what it agreed."""

    sdp: SessionDescription


# Profiles dialtone can answer: plain RTP. AVPF is AVP plus optional feedback, so an AVPF
# offer is answered in AVPF (the answer must keep the profile, RFC 3264 §6) without
# sending feedback; SAVP/SAVPF need SRTP keys dialtone does not have.
_PLAIN_RTP = ("RTP/AVP", "RTP/AVPF")


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _remote_address(session: SessionDescription, media: MediaDescription) -> str:
    connection = media.connection or session.connection
    if connection is None:
        raise SdpError("no c= line for the audio stream")
    return connection.host


def _select(media: MediaDescription, supported: Iterable[str]) -> tuple[int, RtpMap] | None:
    """The first payload type of ``media``, in its own order, that is a supported codec."""
    names = {name.upper() for name in supported}
    for pt in media.formats:
        codec = media.codec(pt)
        if (
            codec is not None
            and codec.encoding.upper() in names
            and codec.clock_rate == 8000
            and codec.channels == 1
        ):
            return pt, codec
    return None


def _telephone_event(media: MediaDescription) -> int | None:
    # RFC 4733 §7.1.1: telephone-event at the codec's 8 kHz rate.
    for pt in media.formats:
        codec = media.rtpmap.get(pt)
        if (
            codec is not None
            and codec.encoding.lower() == "telephone-event"
            and codec.clock_rate == 8000
        ):
            return pt
    return None


def _usable_audio(media: MediaDescription) -> bool:
    return media.media == "audio" and media.port != 0 and media.proto.upper() in _PLAIN_RTP


def _session(
    address: str, session_id: int, version: int, media: list[MediaDescription]
) -> SessionDescription:
    addrtype = _addrtype(address)
    return SessionDescription(
        origin=Origin("dialtone", str(session_id), str(version), "IN", addrtype, address),
        session_name="dialtone",
        connection=Connection("IN", addrtype, address),
        media=media,
    )


def negotiate_answer(
    offer: SessionDescription,
    local_address: str,
    local_port: int,
    *,
    session_id: int,
    version: int,
    supported: Iterable[str] = ("PCMU", "PCMA"),
) -> Answer:
    """Answer ``offer`` by RFC 3264 and spec SIP-12.

    The first audio stream (plain RTP, port not 0) that offers a supported codec is
    accepted with the first of those codecs *in the offer's order*, plus
    ``telephone-event/8000`` with the offer's payload type and fmtp when offered; its
    direction is mirrored (sendonly → recvonly, recvonly → sendonly) and its ptime kept.
    Every other stream gets port 0: the answer has as many m-lines as the offer
    (RFC 3264 §6). No acceptable stream → :class:`SdpError` with ``no_common_codec``.
    ``session_id``/``version`` go in ``o=``; bump ``version`` for each new answer in a
    dialog (RFC 3264 §8).
    """
    wanted = tuple(supported)
    answered: list[MediaDescription] = []
    choice: MediaChoice | None = None
    for index, offered in enumerate(offer.media):
        selected = _select(offered, wanted) if choice is None and _usable_audio(offered) else None
        if selected is None:
            # RFC 3264 §6: reject with port 0, keeping media type, proto and formats.
            answered.append(
                MediaDescription(
                    media=offered.media,
                    port=0,
                    proto=offered.proto,
                    formats=list(offered.formats),
                    format_tokens=list(offered.format_tokens),
                )
            )
            continue
        pt, codec = selected
        remote = _remote_address(offer, offered)
        te = _telephone_event(offered)
        direction = offered.direction.mirrored()
        accepted = MediaDescription(
            media="audio",
            port=local_port,
            proto=offered.proto,
            formats=[pt] if te is None else [pt, te],
            rtpmap={pt: RtpMap(codec.encoding.upper(), 8000)},
            direction=direction,
            ptime=offered.ptime,
        )
        if te is not None:
            accepted.rtpmap[te] = RtpMap("telephone-event", 8000)
            if te in offered.fmtp:
                accepted.fmtp[te] = offered.fmtp[te]
        answered.append(accepted)
        choice = MediaChoice(
            media_index=index,
            payload_type=pt,
            codec=accepted.rtpmap[pt],
            telephone_event_pt=te,
            remote_address=remote,
            remote_port=offered.port,
            direction=direction,
            ptime=offered.ptime,
        )
    if choice is None:
        raise SdpError("no common audio codec", no_common_codec=True)
    return Answer(
        media_index=choice.media_index,
        payload_type=choice.payload_type,
        codec=choice.codec,
        telephone_event_pt=choice.telephone_event_pt,
        remote_address=choice.remote_address,
        remote_port=choice.remote_port,
        direction=choice.direction,
        ptime=choice.ptime,
        sdp=_session(local_address, session_id, version, answered),
    )


def build_offer(
    local_address: str,
    local_port: int,
    *,
    session_id: int,
    version: int,
    codecs: Iterable[str] = ("PCMU", "PCMA"),
    telephone_event_pt: int | None = 101,
    ptime: int | None = 20,
    direction: Direction = Direction.SENDRECV,
) -> SessionDescription:
    """dialtone's offer for an outbound leg (spec LEG-3).

    One audio stream at ``local_address:local_port`` offering ``codecs`` (PCMU and/or
    PCMA, in preference order) and, unless ``telephone_event_pt`` is None,
    ``telephone-event/8000`` with ``fmtp 0-16`` (RFC 4733 §7.1.1: DTMF 0-15 and flash).
    IPv6 addresses give ``IN IP6``.
    """
    formats: list[int] = []
    rtpmap: dict[int, RtpMap] = {}
    for name in codecs:
        pt = _G711.get(name.upper())
        if pt is None:
            raise SdpError(f"cannot offer codec {name!r}")
        if pt not in rtpmap:
            formats.append(pt)
            rtpmap[pt] = STATIC_PAYLOAD_TYPES[pt]
    if not formats:
        raise SdpError("no codec to offer")
    fmtp: dict[int, str] = {}
    if telephone_event_pt is not None:
        if not 96 <= telephone_event_pt <= 127:
            # RFC 3551 §3: telephone-event has no static type; use the dynamic range.
            raise SdpError("telephone-event payload type must be in 96..127")
        formats.append(telephone_event_pt)
        rtpmap[telephone_event_pt] = RtpMap("telephone-event", 8000)
        fmtp[telephone_event_pt] = "0-16"
    audio = MediaDescription(
        media="audio",
        port=local_port,
        proto="RTP/AVP",
        formats=formats,
        rtpmap=rtpmap,
        fmtp=fmtp,
        direction=direction,
        ptime=ptime,
    )
    return _session(local_address, session_id, version, [audio])


def accept_answer(
    answer: SessionDescription, *, supported: Iterable[str] = ("PCMU", "PCMA")
) -> MediaChoice:
    """Read the far end's answer to dialtone's offer (spec LEG-3).

    The first audio stream with a port other than 0 and a supported codec wins; the
    first supported codec in the answer's order is used (RFC 3264 §7: the offerer may
    send any codec of the answer). Raises :class:`SdpError` with ``no_common_codec``
    when the answer accepts no usable audio.
    """
    wanted = tuple(supported)
    for index, media in enumerate(answer.media):
        if not _usable_audio(media):
            continue
        selected = _select(media, wanted)
        if selected is None:
            continue
        pt, codec = selected
        return MediaChoice(
            media_index=index,
            payload_type=pt,
            codec=codec,
            telephone_event_pt=_telephone_event(media),
            remote_address=_remote_address(answer, media),
            remote_port=media.port,
            direction=media.direction.mirrored(),
            ptime=media.ptime,
        )
    raise SdpError("the answer accepts no usable audio", no_common_codec=True)
