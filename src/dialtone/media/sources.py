"""Audio sources pulled in 20 ms frames, and the WAV loader of ``<Play>``.

A :class:`Source` hands out one frame per :meth:`~Source.next_frame`: 160 samples of
PCM16 (little-endian, signed, mono, 8 kHz), 320 bytes, and None once finished.  The
media session pulls every 20 ms and encodes (aiortc's ``MediaStreamTrack.recv`` is the
model, design.md §4, §9.8), so a source does no I/O and keeps no time.

:func:`load_wav` turns a fetched WAV file (VRB-2) into that PCM: RIFF/WAVE with 16-bit
PCM, μ-law or A-law; mono, or stereo mixed down; 8 kHz, or another rate resampled.
It is pure Python, about 0.3 s of CPU per minute of 44.1 kHz audio (what the 8 kHz
output costs; 8/16/48 kHz are nearly free), so a session should call it once per
cached file, off the event loop (``asyncio.to_thread``) for long ones.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from functools import lru_cache
from itertools import repeat
from operator import add, rshift
from typing import Protocol

from dialtone.media.codecs import PCMA, PCMU

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "MAX_WAV_BYTES",
    "SAMPLE_RATE",
    "SILENT_FRAME",
    "AudioError",
    "PcmSource",
    "Silence",
    "Source",
    "ToneSource",
    "load_wav",
    "resample",
]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
"""20 ms at 8 kHz."""
FRAME_BYTES = 2 * FRAME_SAMPLES
SILENT_FRAME = bytes(FRAME_BYTES)
MAX_WAV_BYTES = 20 * 1024 * 1024
"""VRB-2: at most 20 MiB of audio."""
_FRAMES_PER_SECOND = SAMPLE_RATE // FRAME_SAMPLES
_BIG_ENDIAN = sys.byteorder == "big"


class AudioError(ValueError):
    """Audio dialtone cannot play (becomes Notification 13420, VRB-2)."""


class Source(Protocol):
    """Audio pulled by the media session, one 20 ms frame at a time."""

    def next_frame(self) -> bytes | None:
        """The next 320-byte PCM16 frame, or None when the source has finished."""
        ...


class Silence:
    """``duration`` seconds of silence (rounded to 20 ms frames), or endless with None."""

    __slots__ = ("_left",)

    def __init__(self, duration: float | None = None) -> None:
        if duration is not None and not duration >= 0:
            raise ValueError(f"silence duration must be >= 0, got {duration}")
        self._left = None if duration is None else round(duration * _FRAMES_PER_SECOND)

    def next_frame(self) -> bytes | None:
        """A silent frame, or None once the duration has passed."""
        if self._left is None:
            return SILENT_FRAME
        if self._left <= 0:
            return None
        self._left -= 1
        return SILENT_FRAME


@lru_cache(maxsize=32)
def _cadence(
    freqs: tuple[float, ...], on_frames: int, off_frames: int, level: float
) -> tuple[bytes, ...]:
    """One cycle of a cadenced tone as frames, computed once per process.

    The off frames are all the same :data:`SILENT_FRAME`, so the 6 s ringback costs
    100 frames (32 KB).  ``level`` is per frequency in dBm0: G.711's full-scale sine is
    +3.17 dBm0 (G.711 Table 5), a 16-bit peak of about 32636.
    """
    amplitude = 32636 * 10 ** ((level - 3.17) / 20)
    steps = [2 * math.pi * f / SAMPLE_RATE for f in freqs]
    samples = array(
        "h",
        (
            round(sum(amplitude * math.sin(step * n) for step in steps))
            for n in range(on_frames * FRAME_SAMPLES)
        ),
    )
    pcm = _to_bytes(samples)
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    return (*frames, *[SILENT_FRAME] * off_frames)


class ToneSource:
    """A cadenced tone, endless: by default the ringback of DIAL-30.

    440 + 480 Hz, 2 s on, 4 s off, −19 dBm0 per frequency (the North American audible
    ringing tone).  ``on``/``off`` are rounded to 20 ms; ``off=0`` is a steady tone.
    The cadence is precomputed once per process and shared, so a pull is an index.
    """

    __slots__ = ("_frames", "_index")

    def __init__(
        self,
        freqs: tuple[float, ...] = (440.0, 480.0),
        on: float = 2.0,
        off: float = 4.0,
        *,
        level: float = -19.0,
    ) -> None:
        on_frames = round(on * _FRAMES_PER_SECOND)
        off_frames = round(off * _FRAMES_PER_SECOND)
        if not freqs or not all(0 < f < SAMPLE_RATE / 2 for f in freqs):
            raise ValueError(f"tone frequencies must be in (0, 4000) Hz, got {freqs}")
        if on_frames < 1 or off_frames < 0:
            raise ValueError(f"tone cadence needs on >= 20 ms and off >= 0, got {on}/{off}")
        if len(freqs) * 10 ** ((level - 3.17) / 20) > 1:
            raise ValueError(f"tone level {level} dBm0 × {len(freqs)} would clip")
        self._frames = _cadence(tuple(float(f) for f in freqs), on_frames, off_frames, level)
        self._index = 0

    def next_frame(self) -> bytes:
        """The next frame of the cadence; a tone never finishes by itself."""
        index = self._index
        self._index = index + 1 if index + 1 < len(self._frames) else 0
        return self._frames[index]


class PcmSource:
    """PCM16 audio (8 kHz mono, e.g. from :func:`load_wav`) played ``loop`` times.

    ``loop=0`` repeats until stopped (VRB-1, VRB-2).  The last frame of each pass is
    padded with silence.  Frames are sliced on demand, so many calls can share one
    cached buffer.
    """

    __slots__ = ("_left", "_pcm", "_pos")

    def __init__(self, pcm16: bytes, loop: int = 1) -> None:
        if len(pcm16) & 1:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm16)}")
        if loop < 0:
            raise ValueError(f"loop must be >= 0, got {loop}")
        self._pcm = pcm16
        self._left: int | None = None if loop == 0 else loop  # passes still to start
        self._pos = len(pcm16)  # "at the end of a pass": the first pull starts one

    def next_frame(self) -> bytes | None:
        """The next frame, or None after the last pass (at once for empty audio)."""
        pcm, pos = self._pcm, self._pos
        if pos >= len(pcm):
            if not pcm or self._left == 0:
                return None
            if self._left is not None:
                self._left -= 1
            pos = 0
        frame = pcm[pos : pos + FRAME_BYTES]
        self._pos = pos + FRAME_BYTES
        if len(frame) < FRAME_BYTES:
            frame += bytes(FRAME_BYTES - len(frame))
        return frame


# --- WAV -----------------------------------------------------------------------------

_PCM, _ALAW, _MULAW, _EXTENSIBLE = 0x0001, 0x0006, 0x0007, 0xFFFE
# WAVE_FORMAT_EXTENSIBLE: the format code is the first 2 bytes of this GUID.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
# A writer streaming to a pipe cannot seek back to fill in sizes; espeak-ng --stdout
# writes 0x7FFFF000 and ffmpeg 0xFFFFFFFF.  Such a data chunk runs to the end of file.
_STREAMED_SIZE = 0x7FFFF000
_MIN_RATE, _MAX_RATE = 4000, 192000


def _to_samples(pcm16: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm16)
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples


def _to_bytes(samples: array[int]) -> bytes:
    if _BIG_ENDIAN:
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def _parse_fmt(body: bytes) -> tuple[int, int, int]:
    """(format, channels, rate) of a ``fmt `` chunk; AudioError unless dialtone plays it."""
    if len(body) < 16:
        raise AudioError(f"WAV fmt chunk of {len(body)} bytes, needs 16")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _EXTENSIBLE and len(body) >= 40 and body[26:40] == _GUID_TAIL:
        tag = int.from_bytes(body[24:26], "little")
    if tag not in (_PCM, _ALAW, _MULAW):
        raise AudioError(f"WAV format 0x{tag:04x} is not supported (PCM, μ-law or A-law)")
    if bits != (16 if tag == _PCM else 8):
        kind = {_PCM: "PCM", _ALAW: "A-law", _MULAW: "μ-law"}[tag]
        raise AudioError(f"{bits}-bit {kind} WAV is not supported (PCM 16-bit, G.711 8-bit)")
    if channels not in (1, 2):
        raise AudioError(f"WAV with {channels} channels is not supported (mono or stereo)")
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise AudioError(f"WAV sample rate {rate} Hz is not supported ({_MIN_RATE}-{_MAX_RATE})")
    return tag, channels, rate


def load_wav(data: bytes) -> bytes:
    """Decode a WAV file into PCM16 little-endian mono at 8 kHz.

    Accepted (VRB-2): RIFF/WAVE, 16-bit PCM, μ-law (format 7) or A-law (format 6),
    also inside WAVE_FORMAT_EXTENSIBLE; mono or stereo (averaged); 8 kHz, or 4-192 kHz
    resampled by :func:`resample`.  Chunks other than ``fmt `` and ``data`` are
    skipped.  Raises :class:`AudioError` for a file over 20 MiB, a missing or foreign
    header, an unsupported format, or a chunk that runs past the end of the file.
    """
    size = len(data)
    if size > MAX_WAV_BYTES:
        raise AudioError(f"WAV file of {size} bytes is over the 20 MiB limit")
    if size < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int] | None = None
    pos = 12
    while pos + 8 <= size:
        chunk_id = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body, end = pos + 8, pos + 8 + length
        if chunk_id == b"data":
            if fmt is None:
                raise AudioError("WAV data chunk before its fmt chunk")
            if end > size:
                if length < _STREAMED_SIZE:
                    raise AudioError(f"WAV data chunk truncated: {size - body} of {length} bytes")
                end = size
            return _convert(data[body:end], *fmt)
        if end > size:
            name = chunk_id.decode("latin-1")
            raise AudioError(f"WAV {name!r} chunk truncated: {size - body} of {length} bytes")
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body:end])
        pos = end + (length & 1)  # chunks are word aligned (RIFF pad byte)
    raise AudioError("WAV file has no data chunk" if fmt else "WAV file has no fmt chunk")


def _convert(raw: bytes, tag: int, channels: int, rate: int) -> bytes:
    """Decode, mix down and resample one ``data`` chunk."""
    width = 2 if tag == _PCM else 1
    raw = raw[: len(raw) - len(raw) % (width * channels)]  # whole sample frames only
    if tag == _MULAW:
        raw = PCMU.decode(raw)
    elif tag == _ALAW:
        raw = PCMA.decode(raw)
    if channels == 1 and rate == SAMPLE_RATE:
        return raw
    return _to_bytes(_resample(_to_samples(raw), channels, rate, SAMPLE_RATE))


def resample(pcm16: bytes, rate: int, to: int = SAMPLE_RATE) -> bytes:
    """Resample PCM16 mono from ``rate`` to ``to`` Hz by linear interpolation.

    Output sample ``i`` sits at input position ``i * rate / to``, between two input
    samples, and is their weighted average (in exact integer arithmetic, rounded).
    There is no anti-aliasing filter: content above ``to / 2`` folds back (VRB-2 asks
    only for "SHOULD be resampled"; speech has little energy there).
    """
    if rate == to or not pcm16:
        return pcm16
    return _to_bytes(_resample(_to_samples(pcm16), 1, rate, to))


def _resample(src: array[int], channels: int, rate: int, to: int) -> array[int]:
    """:func:`resample` of interleaved mono or stereo, mixing stereo as ``(l + r) // 2``.

    Stereo is mixed only at the input samples the output needs, so the work follows
    the output length (8000 a second), not the input's.
    """
    frames = len(src) // channels
    count = frames * to // rate
    if rate % to == 0:  # 8, 16, 24, 48 kHz → 8 kHz: every k-th sample, no arithmetic
        step = rate // to * channels
        if channels == 1:
            return src[::step][:count]
        # (l + r) >> 1 never leaves the 16-bit range; map/add/rshift stay in C.
        mixed = map(add, src[0::step][:count], src[1::step][:count])
        return array("h", map(rshift, mixed, repeat(1)))
    last, half = frames - 1, to // 2
    whole, part = divmod(rate, to)  # the input position advances by rate/to per output
    out: list[int] = []
    append = out.append
    j = rem = 0
    for _ in range(count):
        if channels == 1:
            a = src[j]
            if rem and j < last:
                a += ((src[j + 1] - a) * rem + half) // to
        else:
            a = (src[2 * j] + src[2 * j + 1]) >> 1
            if rem and j < last:
                b = (src[2 * j + 2] + src[2 * j + 3]) >> 1
                a += ((b - a) * rem + half) // to
        append(a)
        j += whole
        rem += part
        if rem >= to:
            rem -= to
            j += 1
    return array("h", out)
