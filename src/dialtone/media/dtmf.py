"""RFC 4733 telephone-events: the payload, a detector and a sender.

The payload (§2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |

An event (one key press) is sent as a run of packets sharing one RTP timestamp, the
event's start (§2.5.1.2): the first carries the marker, each later one the duration so
far, and the end is sent three times with the E bit (§2.5.1.4).  So the detector counts
a *timestamp* once, whichever of its packets arrive (VRB-5).

Sender timing (VRB-2 ``digits``, DIAL-6 ``sendDigits``), one packet per 20 ms tick:

- a digit is 100 ms of tone: 5 packets, durations 160, 320, …, 800 samples, the first
  with the marker;
- then 3 end packets (E bit, duration 800), on the next 3 ticks;
- the next digit starts 60 ms after the tone ended: the usual 50 ms gap rounded up to
  the 20 ms tick, and exactly the time the end packets take.  One digit is 8 ticks;
- ``w`` pauses 0.5 s (25 ticks) and ``W`` 1 s (50 ticks), with no event packets (the
  session sends its audio, or silence, on those ticks);
- volume 10 (−10 dBm0, §2.3.4), the common default of phones and gateways.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

__all__ = [
    "DEFAULT_VOLUME",
    "DIGITS",
    "END_PACKETS",
    "GAP_TICKS",
    "PAUSE_TICKS",
    "TICK_SAMPLES",
    "TONE_TICKS",
    "DtmfDetector",
    "DtmfError",
    "DtmfEvent",
    "DtmfPacket",
    "DtmfSender",
    "build_event",
    "digit_to_event",
    "event_to_digit",
    "parse_event",
]

DIGITS = "0123456789*#ABCD"
"""The DTMF digits in event-code order: event ``n`` is ``DIGITS[n]`` (§3.2)."""

_EVENT = struct.Struct("!BBH")

TICK_SAMPLES = 160
"""One 20 ms tick at the 8 kHz RTP clock of telephone-event (§7.1.1)."""
TONE_TICKS = 5
"""A digit's tone: 100 ms."""
END_PACKETS = 3
"""The end of an event is sent three times (§2.5.1.4)."""
GAP_TICKS = 3
"""From the end of one tone to the start of the next: 60 ms (holds the 3 end packets)."""
PAUSE_TICKS = {"w": 25, "W": 50}
"""``w`` = 0.5 s and ``W`` = 1 s (VRB-2)."""
DEFAULT_VOLUME = 10
"""−10 dBm0 (§2.3.4)."""


class DtmfError(ValueError):
    """A telephone-event payload or a digit string that cannot be used."""


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One telephone-event payload: event code, end bit, volume (−dBm0), duration."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The DTMF digit of this event, or None for other events (e.g. 16, flash)."""
        return event_to_digit(self.event)


def digit_to_event(digit: str) -> int:
    """The event code of a DTMF digit (``0``-``9``, ``*``, ``#``, ``A``-``D``, any case)."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise DtmfError(f"{digit!r} is not a DTMF digit")
    return code


def event_to_digit(event: int) -> str | None:
    """The DTMF digit of an event code 0-15, None for any other code."""
    return DIGITS[event] if 0 <= event < 16 else None


def parse_event(payload: bytes) -> DtmfEvent:
    """Parse a telephone-event payload; raise :class:`DtmfError` if it is shorter than 4.

    Only the first report is read (a packet may pack more, §2.5.1.5; the detector reads
    them all); the R bit is ignored as §2.3.3 requires.
    """
    if len(payload) < 4:
        raise DtmfError(f"telephone-event payload of {len(payload)} bytes, needs 4")
    event, flags, duration = _EVENT.unpack_from(payload)
    return DtmfEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(
    event: int, duration: int, *, end: bool = False, volume: int = DEFAULT_VOLUME
) -> bytes:
    """Build a telephone-event payload; raise :class:`ValueError` for out-of-range fields."""
    if not 0 <= event <= 255 or not 0 <= volume <= 63 or not 0 <= duration <= 0xFFFF:
        raise ValueError(f"bad telephone-event fields: {event=} {volume=} {duration=}")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


class DtmfDetector:
    """Turns received telephone-event packets into digits, each key press once.

    Feed every packet of the telephone-event payload type with its RTP timestamp and
    marker; :meth:`feed` returns the digit the first time an event's timestamp is seen
    and ``""`` for every other packet.  So the repeated updates and the three end
    packets count nothing, a press whose first packets were lost is still counted (by
    the first packet that arrives), and a press whose end packets were lost does not
    hide the next one (it has a new timestamp).  Refinements:

    - a packet up to 10 s *behind* the newest event is stale (a reordered leftover);
      farther back is a new timeline (the sender restarted), and counts;
    - a key held past the 16-bit duration (8.2 s) continues as a new segment whose
      timestamp is the old one plus its duration and has no marker (§2.5.1.3): not a
      new press;
    - a packet may pack several 4-byte reports (§2.5.1.5), each starting where the
      previous one ended: each is an event of its own, so :meth:`feed` can return
      more than one digit.

    Malformed payloads are ignored (counted in :attr:`malformed`): a stream never raises.
    """

    _STALE_WINDOW = 10 * 8000
    _LONG_SEGMENT = 0xFFFF - 8000  # a segment this long may be continued (§2.5.1.3)

    __slots__ = ("_current", "_newest", "_recent", "malformed")

    def __init__(self) -> None:
        self._recent: deque[int] = deque(maxlen=16)
        self._newest: int | None = None
        # (timestamp, event, longest duration seen, ended) of the newest event
        self._current: tuple[int, int, int, bool] | None = None
        self.malformed = 0

    def reset(self) -> None:
        """Forget past events (e.g. the remote stream changed SSRC)."""
        self._recent.clear()
        self._newest = self._current = None

    def feed(self, timestamp: int, marker: bool, payload: bytes) -> str:
        """Take one packet; return the digits of the key presses it starts (usually 0 or 1)."""
        if len(payload) < 4:
            self.malformed += 1
            return ""
        if len(payload) < 8:  # the common case: one report
            event, flags, duration = _EVENT.unpack_from(payload)
            return self._report(timestamp, marker, event, bool(flags & 0x80), duration)
        digits = ""
        for offset in range(0, len(payload) - 3, 4):
            event, flags, duration = _EVENT.unpack_from(payload, offset)
            digits += self._report(timestamp, marker and not offset, event, flags >= 0x80, duration)
            timestamp = (timestamp + duration) & 0xFFFFFFFF
        return digits

    def _report(self, timestamp: int, marker: bool, event: int, ended: bool, duration: int) -> str:
        current = self._current
        if current is not None and timestamp == current[0]:
            self._current = (timestamp, event, max(duration, current[2]), ended or current[3])
            return ""
        if timestamp in self._recent:
            return ""
        newest = self._newest
        if newest is not None and 0 < (newest - timestamp) & 0xFFFFFFFF < self._STALE_WINDOW:
            return ""
        self._recent.append(timestamp)
        self._newest = timestamp
        self._current = (timestamp, event, duration, ended)
        if (
            not marker
            and current is not None
            and not current[3]
            and current[1] == event
            and current[2] >= self._LONG_SEGMENT
            and (timestamp - current[0]) & 0xFFFFFFFF <= 0xFFFF + TICK_SAMPLES
        ):
            return ""  # the same key, still held, in a new segment
        return DIGITS[event] if event < 16 else ""


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One telephone-event packet to send on this tick.

    ``offset`` is the event's start in samples from the sender's first tick: the RTP
    timestamp is the session's timestamp at that first tick plus ``offset`` (pass it
    as :meth:`RtpSender.packet`'s ``timestamp``, with ``marker``).
    """

    payload: bytes
    marker: bool
    offset: int
    digit: str
    end: bool


class DtmfSender:
    """Plays a digit string as telephone-events, one :meth:`next_tick` per 20 ms.

    ``digits`` may hold ``0``-``9``, ``*``, ``#``, ``A``-``D`` and the pauses ``w``
    (0.5 s) and ``W`` (1 s); timing as in the module docstring.  :meth:`next_tick`
    returns the packet for this tick, to send *instead of* that tick's audio frame, or
    None on a tick without one (gap or pause: send audio as usual); :attr:`done` turns
    True after the last tick.  The whole schedule is built up front
    (a 64-digit string is at most a few thousand ticks).
    """

    __slots__ = ("_index", "_ticks")

    def __init__(self, digits: str, *, volume: int = DEFAULT_VOLUME) -> None:
        ticks: list[DtmfPacket | None] = []
        for char in digits:
            if char in PAUSE_TICKS:
                ticks.extend([None] * PAUSE_TICKS[char])
                continue
            code = digit_to_event(char)
            offset = len(ticks) * TICK_SAMPLES
            for k in range(TONE_TICKS):
                payload = build_event(code, (k + 1) * TICK_SAMPLES, volume=volume)
                ticks.append(DtmfPacket(payload, k == 0, offset, char.upper(), False))
            end = build_event(code, TONE_TICKS * TICK_SAMPLES, end=True, volume=volume)
            ticks.extend([DtmfPacket(end, False, offset, char.upper(), True)] * END_PACKETS)
            ticks.extend([None] * (GAP_TICKS - END_PACKETS))
        self._ticks = ticks
        self._index = 0

    @property
    def done(self) -> bool:
        """True once every tick has been taken."""
        return self._index >= len(self._ticks)

    @property
    def ticks(self) -> int:
        """How many 20 ms ticks the whole string takes."""
        return len(self._ticks)

    def next_tick(self) -> DtmfPacket | None:
        """The packet of the next tick, or None (a pause, a gap, or done)."""
        if self._index >= len(self._ticks):
            return None
        packet = self._ticks[self._index]
        self._index += 1
        return packet
