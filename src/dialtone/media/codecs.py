"""G.711 μ-law (PCMU) and A-law (PCMA) behind a two-method codec interface.

PCM here is always 16-bit little-endian signed mono at 8 kHz (one 20 ms frame is 160
samples, 320 bytes).  The codecs follow ITU-T G.711 as its reference software does
(ITU-T G.191 STL ``g711.c``): μ-law quantises the 14 most significant bits of a sample
and A-law the 13 most significant, negative samples taking the one's complement, so
``encode`` is exactly the G.711 decision intervals and ``decode`` their G.711 output
values (μ-law 0 → ``0xFF``, A-law 0 → ``0xD5``).

Everything is table driven, because a call pays these per 20 ms frame (aiortc's
``codecs/g711.py`` is the model; design.md §9.8):

- encode: a 65536-entry table indexed by the sample (a negative index of ``bytes`` is
  the unsigned 16-bit index), looked up for the whole frame by one ``itemgetter``;
- decode: two 256-byte tables, the low and the high byte of each output sample, applied
  with ``bytes.translate`` and interleaved by slice assignment;
- PCMU↔PCMA (SIP-12, bridged legs that chose different codecs): one ``bytes.translate``
  with G.711's own cross-conversion tables (G.711 Tables 3 and 4), which are *not* the
  same as decoding and re-encoding.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import ClassVar, Protocol

__all__ = ["PCMA", "PCMU", "Codec", "G711Codec", "codec_for", "transcode", "transcode_table"]


class Codec(Protocol):
    """What the media session needs of a codec (design.md §9.8): two methods."""

    def encode(self, pcm16: bytes) -> bytes:
        """Encode PCM16 (little-endian, mono, 8 kHz) into an RTP payload."""
        ...

    def decode(self, payload: bytes) -> bytes:
        """Decode an RTP payload into PCM16 (little-endian, mono, 8 kHz)."""
        ...


# --- G.711 by its definition, used only to build the tables below ----------------------


def _ulaw_encode(s14: int) -> int:
    """μ-law code of a 14-bit sample (G.191 ``ulaw_compress``).

    The magnitude is biased by 33 so that every segment starts at a power of two; the
    segment is the position of its leading one, the mantissa the 4 bits after it, and
    the code word is transmitted inverted (G.711 Table 2, "character signals").
    """
    biased = min((-s14 - 1 if s14 < 0 else s14) + 33, 0x1FFF)
    segment = biased.bit_length() - 5  # 1..8: 33..63 is segment 1
    code = ((8 - segment) << 4) | (0x0F - ((biased >> segment) & 0x0F))
    return code if s14 < 0 else code | 0x80


def _alaw_encode(s12: int) -> int:
    """A-law code of a sample's 12 most significant bits (G.191 ``alaw_compress``).

    Segment 0 is linear; each further segment doubles the step.  Even bits are inverted
    on the line (the ``^ 0x55`` of G.711 Table 1).
    """
    magnitude = -s12 - 1 if s12 < 0 else s12
    if magnitude > 15:
        exponent = magnitude.bit_length() - 4  # 1..7
        magnitude = (exponent << 4) | ((magnitude >> (exponent - 1)) & 0x0F)
    return (magnitude if s12 < 0 else magnitude | 0x80) ^ 0x55


def _ulaw_decode(code: int) -> int:
    """The G.711 output value of a μ-law code, scaled to 16 bits (G.191 ``ulaw_expand``)."""
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    step = 8 << exponent
    value = (0x80 << exponent) + step * (inverted & 0x0F) + step // 2 - 132
    return value if code & 0x80 else -value


def _alaw_decode(code: int) -> int:
    """The G.711 output value of an A-law code, scaled to 16 bits (G.191 ``alaw_expand``)."""
    bits = (code ^ 0x55) & 0x7F
    exponent, mantissa = bits >> 4, bits & 0x0F
    if exponent:
        mantissa += 16
    value = (mantissa << 4) + 8
    if exponent > 1:
        value <<= exponent - 1
    return value if code & 0x80 else -value


def _encode_table(encode: Callable[[int], int], shift: int) -> bytes:
    """The 65536-entry table of ``encode`` applied to ``sample >> shift``.

    The code depends only on the top ``16 - shift`` bits, so each code is computed once
    and repeated ``2**shift`` times.  Index ``i`` is the sample's unsigned 16-bit value.
    """
    width = 16 - shift
    half = 1 << (width - 1)
    codes = bytes(encode(u - (1 << width) if u >= half else u) for u in range(1 << width))
    table = bytearray(65536)
    for k in range(1 << shift):
        table[k :: 1 << shift] = codes
    return bytes(table)


def _decode_tables(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    """Low-byte and high-byte translate tables of a codec's 256 output values."""
    words = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(w & 0xFF for w in words), bytes(w >> 8 for w in words)


# G.711 Tables 3 and 4: μ-law → A-law and A-law → μ-law, for the positive half, as the
# 1-based number of the target code (1 = smallest magnitude) indexed by the 0-based
# magnitude of the source code.  This is the form Sun's public-domain g711.c published
# them in, with its two known misprints corrected (the 0-based entry 80 of each table;
# spandsp carries the same corrected tables).  They differ from decode-then-encode near
# zero, and either round trip (μ → A → μ, A → μ → A) returns 240 of the 256 codes.
_U2A: tuple[int, ...] = (
    *(1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8),
    *range(9, 26), 27, 29, 31, *range(33, 45), 46, *range(48, 63),
    *range(64, 81), *range(82, 129),
)  # fmt: skip
_A2U: tuple[int, ...] = (
    *(1, 3, 5, 7, 9, 11, 13, 15), *range(16, 32), 32, 32, 33, 33, 34, 34, 35, 35,
    *range(36, 48), 48, 48, 49, 49, *range(50, 64), 64, 64, *range(65, 80), 80, 80,
    *range(81, 128),
)  # fmt: skip
assert len(_U2A) == 128 and len(_A2U) == 128


def _ulaw_to_alaw(code: int) -> int:
    if code & 0x80:
        return 0xD5 ^ (_U2A[0xFF ^ code] - 1)
    return 0x55 ^ (_U2A[0x7F ^ code] - 1)


def _alaw_to_ulaw(code: int) -> int:
    if code & 0x80:
        return 0xFF ^ _A2U[code ^ 0xD5]
    return 0x7F ^ _A2U[code ^ 0x55]


_PCMU_TO_PCMA = bytes(_ulaw_to_alaw(c) for c in range(256))
_PCMA_TO_PCMU = bytes(_alaw_to_ulaw(c) for c in range(256))

# One compiled Struct per frame length; 160 samples is by far the common one.
_STRUCTS: dict[int, struct.Struct] = {}


def _unpack(pcm16: bytes) -> tuple[int, ...]:
    if len(pcm16) & 1:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm16)}")
    count = len(pcm16) >> 1
    unpacker = _STRUCTS.get(count)
    if unpacker is None:
        unpacker = _STRUCTS[count] = struct.Struct(f"<{count}h")
    return unpacker.unpack(pcm16)


@dataclass(frozen=True, eq=False)
class G711Codec:
    """A G.711 law: its RTP name and static payload type (RFC 3551 §6) and its tables.

    Use the module's :data:`PCMU` and :data:`PCMA`, or :func:`codec_for`.
    """

    name: str
    payload_type: int
    _encode: bytes = field(repr=False)
    _decode_lo: bytes = field(repr=False)
    _decode_hi: bytes = field(repr=False)
    clock_rate: ClassVar[int] = 8000

    def encode(self, pcm16: bytes) -> bytes:
        """Encode PCM16 (little-endian, mono, 8 kHz) into one G.711 byte per sample.

        Raises :class:`ValueError` when ``pcm16`` has an odd length.
        """
        samples = _unpack(pcm16)
        if len(samples) < 2:  # itemgetter needs two indices to return a tuple
            return bytes(self._encode[s] for s in samples)
        return bytes(itemgetter(*samples)(self._encode))

    def decode(self, payload: bytes) -> bytes:
        """Decode G.711 bytes into PCM16 (little-endian, mono, 8 kHz), 2 bytes per byte."""
        out = bytearray(len(payload) << 1)
        out[0::2] = payload.translate(self._decode_lo)
        out[1::2] = payload.translate(self._decode_hi)
        return bytes(out)


PCMU = G711Codec("PCMU", 0, _encode_table(_ulaw_encode, 2), *_decode_tables(_ulaw_decode))
"""G.711 μ-law, RTP payload type 0."""
PCMA = G711Codec("PCMA", 8, _encode_table(_alaw_encode, 4), *_decode_tables(_alaw_decode))
"""G.711 A-law, RTP payload type 8."""

_BY_KEY: dict[int | str, G711Codec] = {0: PCMU, 8: PCMA, "PCMU": PCMU, "PCMA": PCMA}


def codec_for(key: int | str) -> G711Codec:
    """The codec for an RTP payload type (0, 8) or encoding name (``"PCMU"``, any case).

    Raises :class:`LookupError` for anything else: SDP negotiation (SIP-12) only ever
    picks these two, so another value is a programming error upstream.
    """
    codec = _BY_KEY.get(key.upper() if isinstance(key, str) else key)
    if codec is None:
        raise LookupError(f"no codec for {key!r}: dialtone speaks PCMU (0) and PCMA (8)")
    return codec


def transcode_table(src: G711Codec, dst: G711Codec) -> bytes | None:
    """The 256-byte ``bytes.translate`` table from ``src`` to ``dst`` payloads.

    ``None`` when both are the same law: the payload is relayed untouched.
    """
    if src.name == dst.name:
        return None
    return _PCMU_TO_PCMA if src.name == "PCMU" else _PCMA_TO_PCMU


def transcode(payload: bytes, src: G711Codec, dst: G711Codec) -> bytes:
    """Convert a ``src`` payload to ``dst`` per G.711 Tables 3/4 (one ``translate``)."""
    table = transcode_table(src, dst)
    return payload if table is None else payload.translate(table)
