"""RTP packets (RFC 3550 §5.1), the sending state machine and receive statistics.

Pure: bytes in, bytes out; the RTP clock is counted in samples by the caller's 20 ms
pacing, never read from a clock.  The fixed header::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers             |  CC × 32 bits
    |   [header extension: profile (16) | length in words (16) | …]  |  if X
    |   payload …                              [padding …  count]   |  if P
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

__all__ = [
    "RTP_VERSION",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "RtpReceiver",
    "RtpSender",
    "is_rtcp",
    "parse_rtp",
]

RTP_VERSION = 2
"""The only RTP version (RFC 3550 §5.1); packets of another version are rejected."""

_HEADER = struct.Struct("!BBHII")
_WORD = struct.Struct("!I")
_EXT_HEADER = struct.Struct("!HH")


class RtpError(ValueError):
    """Bytes that are not a well-formed RTP packet; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): profile-defined 16 bits and whole words."""

    profile: int
    data: bytes


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet.  ``padding`` counts the padding octets on the wire (0 = none).

    Treat it as immutable.  It is not a frozen dataclass only because a frozen
    ``__init__`` costs ~2 µs more, a good part of a call's per-frame budget.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def to_bytes(self) -> bytes:
        """Serialise the packet; raises :class:`ValueError` for out-of-range fields."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} is not 0-127")
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRCs fit in the CC field")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"padding {self.padding} is not 0-255 octets")
        ext = self.extension
        first = RTP_VERSION << 6 | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if ext is not None:
            first |= 0x10
        try:
            parts = [
                _HEADER.pack(
                    first,
                    self.payload_type | (0x80 if self.marker else 0),
                    self.sequence,
                    self.timestamp,
                    self.ssrc,
                ),
                *(_WORD.pack(c) for c in self.csrcs),
            ]
            if ext is not None:
                if len(ext.data) % 4:
                    raise ValueError("header extension data must be whole 32-bit words")
                parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4) + ext.data)
        except struct.error as exc:
            raise ValueError(f"RTP field out of range: {exc}") from None
        parts.append(self.payload)
        if self.padding:
            # §5.1: the last padding octet counts the padding octets, itself included.
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; raise :class:`RtpError` when ``data`` is not one.

    Checked: the 12-byte fixed header, version 2, the CSRC list and the header extension
    fit (the extension is kept but not interpreted), and the padding count is 1 or more
    and no longer than what follows the header (RFC 3550 §5.1, §5.3.1, A.1).
    """
    size = len(data)
    if size < 12:
        raise RtpError(f"RTP packet too short: {size} bytes, the fixed header needs 12")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    payload_type = second & 0x7F
    marker = bool(second & 0x80)
    if not first & 0x3F:  # the common case: no padding, extension or CSRCs
        return RtpPacket(payload_type, sequence, timestamp, ssrc, bytes(data[12:]), marker)
    count = first & 0x0F
    offset = 12 + 4 * count
    if offset > size:
        raise RtpError(f"RTP packet too short for its {count} CSRCs")
    csrcs = struct.unpack_from(f"!{count}I", data, 12) if count else ()
    extension = None
    if first & 0x10:
        if offset + 4 > size:
            raise RtpError("RTP packet too short for its header extension")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        start, offset = offset + 4, offset + 4 + 4 * words
        if offset > size:
            raise RtpError(f"RTP header extension of {words} words runs past the packet")
        extension = RtpExtension(profile, bytes(data[start:offset]))
    end = size
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or padding > size - offset:
            raise RtpError(f"RTP padding count {padding} does not fit the packet")
        end -= padding
    return RtpPacket(
        payload_type,
        sequence,
        timestamp,
        ssrc,
        bytes(data[offset:end]),
        marker,
        csrcs,
        extension,
        padding,
    )


def is_rtcp(data: bytes) -> bool:
    """True when ``data`` is RTCP rather than RTP on a shared port.

    RFC 5761 §4: the second octet of RTCP is the packet type (SR 200, RR 201, SDES 202,
    BYE 203, APP 204, and the feedback/XR types after them), and RTP payload types
    64-95 are excluded when multiplexing exactly so that octets 192-223 mean RTCP.
    """
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


class RtpSender:
    """The outgoing half of one RTP stream: SSRC, sequence, timestamp and marker.

    Each :meth:`packet` takes the next sequence number (mod 2**16) and the current
    timestamp, then advances the timestamp by the samples the payload covers (160 for
    a 20 ms G.711 frame), so the caller's 20 ms pacing *is* the RTP clock.  The marker
    goes on the first audio packet of a talkspurt (RFC 3551 §4.1): the first packet of
    the stream and the first one after :meth:`skip` (a period sent as nothing at all).
    RFC 3550 §5.1 wants random initial values; they are drawn unless given (tests).
    """

    __slots__ = ("_talkspurt", "octets_sent", "packets_sent", "sequence", "ssrc", "timestamp")

    def __init__(
        self, ssrc: int | None = None, sequence: int | None = None, timestamp: int | None = None
    ) -> None:
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc & 0xFFFFFFFF
        self.sequence = secrets.randbits(16) if sequence is None else sequence & 0xFFFF
        """The sequence number of the next packet."""
        self.timestamp = secrets.randbits(32) if timestamp is None else timestamp & 0xFFFFFFFF
        """The RTP timestamp of the next audio packet (samples at 8 kHz)."""
        self.packets_sent = 0
        self.octets_sent = 0
        """Payload octets sent: with :attr:`packets_sent`, the counts of an RTCP SR."""
        self._talkspurt = True

    def packet(
        self,
        payload: bytes,
        pt: int,
        samples: int = 160,
        *,
        marker: bool | None = None,
        timestamp: int | None = None,
    ) -> bytes:
        """Build the next packet of the stream and advance the clock by ``samples``.

        ``marker=None`` applies the talkspurt rule; ``True``/``False`` set it explicitly
        and leave the talkspurt state alone (RFC 4733 §2.5.1.2: the first packet of an
        event carries it).  ``timestamp`` overrides the header's timestamp without
        moving the stream's clock: RFC 4733 events carry their *start* time in every
        packet while time goes on.  Raises :class:`ValueError` for a ``pt`` over 127.
        """
        if not 0 <= pt <= 127:
            raise ValueError(f"payload type {pt} is not 0-127")
        if marker is None:
            marker, self._talkspurt = self._talkspurt, False
        header = _HEADER.pack(
            0x80,
            pt | 0x80 if marker else pt,
            self.sequence,
            self.timestamp if timestamp is None else timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return header + payload

    def skip(self, samples: int) -> None:
        """Let ``samples`` pass unsent (silence, hold); the next packet is marked."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._talkspurt = True


class RtpReceiver:
    """Statistics of the incoming stream: RFC 3550 Appendix A.1, without probation.

    The first packet (or a new SSRC) starts the count.  Sequence numbers are extended
    with a cycle count; a jump of up to ``MAX_DROPOUT`` ahead is accepted as loss, a
    packet up to ``MAX_MISORDER`` behind is late (counted, and reported out of order),
    and a larger jump is believed only when the next packet follows it (the sender
    restarted).  ``lost`` is expected minus received, floored at 0 (duplicates can make
    the raw difference negative, §6.4.1).  No jitter buffer: packets are not held.
    """

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100

    __slots__ = (
        "_bad_seq",
        "_base",
        "_cycles",
        "_max_seq",
        "duplicates",
        "out_of_order",
        "received",
        "ssrc",
        "ssrc_changes",
    )

    def __init__(self) -> None:
        self.ssrc: int | None = None
        self.ssrc_changes = 0
        self.received = 0
        self.out_of_order = 0
        self.duplicates = 0
        self._base = self._max_seq = self._cycles = 0
        self._bad_seq = -1

    def _restart(self, sequence: int) -> None:
        self._base = self._max_seq = sequence
        self._cycles = 0
        self._bad_seq = -1
        self.received = 1

    def receive(self, packet: RtpPacket) -> bool:
        """Count ``packet``; True when it is the newest so far (neither late nor a dup)."""
        seq = packet.sequence
        if packet.ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1
            self.ssrc = packet.ssrc
            self._restart(seq)
            return True
        delta = (seq - self._max_seq) & 0xFFFF
        if delta == 0:
            self.received += 1
            self.duplicates += 1
            return False
        if delta < self.MAX_DROPOUT:  # in order, perhaps after a gap
            if seq < self._max_seq:
                self._cycles += 1 << 16
            self._max_seq = seq
            self.received += 1
            return True
        if delta <= (1 << 16) - self.MAX_MISORDER:  # a big jump: a restarted sender?
            if seq == self._bad_seq:
                self._restart(seq)
                return True
            self._bad_seq = (seq + 1) & 0xFFFF
            return False
        self.received += 1  # up to MAX_MISORDER behind: late
        self.out_of_order += 1
        return False

    @property
    def expected(self) -> int:
        """Packets the sequence numbers say were sent since the count started."""
        if self.ssrc is None:
            return 0
        return self._cycles + self._max_seq - self._base + 1

    @property
    def lost(self) -> int:
        """Estimated packets lost: expected minus received, never below 0."""
        return max(0, self.expected - self.received)
