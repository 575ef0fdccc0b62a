"""G.711 codecs: ITU vectors, quantisation, G.711 cross-conversion, the codec interface."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialtone.media.codecs import (
    PCMA,
    PCMU,
    Codec,
    G711Codec,
    codec_for,
    transcode,
    transcode_table,
)

ALL_SAMPLES = struct.pack("<65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))
PCMU_ALL = PCMU.encode(ALL_SAMPLES)
PCMA_ALL = PCMA.encode(ALL_SAMPLES)


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples_of(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(data) // 2}h", data)


def levels(codec: G711Codec) -> tuple[int, ...]:
    """The decoded value of every code, indexed by code."""
    return samples_of(codec.decode(ALL_CODES))


# --- known vectors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "sample", "code"),
    [
        (PCMU, 0, 0xFF),
        (PCMU, 1, 0xFF),
        (PCMU, -1, 0x7F),  # one's complement: -1 is in the negative zero interval
        (PCMU, 32767, 0x80),
        (PCMU, -32768, 0x00),
        (PCMU, 1000, 0xCE),
        (PCMA, 0, 0xD5),
        (PCMA, -1, 0x55),
        (PCMA, 32767, 0xAA),
        (PCMA, -32768, 0x2A),
        (PCMA, 1000, 0xFA),
    ],
)
def test_encode_vectors(codec: G711Codec, sample: int, code: int) -> None:
    assert codec.encode(pcm(sample, sample)) == bytes([code, code])


@pytest.mark.parametrize(
    ("codec", "code", "sample"),
    [
        (PCMU, 0xFF, 0),
        (PCMU, 0x7F, 0),
        (PCMU, 0x80, 32124),  # G.711's largest μ-law output, 8031 × 4
        (PCMU, 0x00, -32124),
        (PCMU, 0xFE, 8),
        (PCMA, 0xD5, 8),
        (PCMA, 0x55, -8),
        (PCMA, 0xAA, 32256),  # G.711's largest A-law output, 4032 × 8
        (PCMA, 0x2A, -32256),
    ],
)
def test_decode_vectors(codec: G711Codec, code: int, sample: int) -> None:
    assert samples_of(codec.decode(bytes([code]))) == (sample,)


# --- quantisation properties over every 16-bit sample -----------------------------------


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_levels_are_midpoints_of_decision_intervals(codec: G711Codec) -> None:
    """G.711's quantiser: each code covers one contiguous run of samples (monotonic in
    the sample) and decodes to the middle of that run.

    Exceptions, as G.711 defines them: μ-law's overload codes (its top interval runs on
    to full scale) and its two zeros, the 16-bit samples 0..3 and -4..-1.
    """
    codes = codec.encode(ALL_SAMPLES)
    decoded = samples_of(codec.decode(codes))
    assert list(decoded) == sorted(decoded)  # monotonic
    runs: dict[int, tuple[int, int]] = {}
    previous = -1
    for x, code in zip(range(-32768, 32768), codes, strict=True):
        if code != previous:
            assert code not in runs, f"code {code:#x} covers two runs"
            runs[code] = (x, x)
            previous = code
        runs[code] = (runs[code][0], x)
    assert len(runs) == 256
    table = levels(codec)
    off = {code: table[code] - (low + high + 1) / 2 for code, (low, high) in runs.items()}
    expected = {0x80: -66.0, 0x00: 66.0, 0xFF: -2.0, 0x7F: 2.0} if codec is PCMU else {}
    assert {code: d for code, d in off.items() if d} == expected


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_decode_then_encode_is_identity(codec: G711Codec) -> None:
    again = codec.encode(codec.decode(ALL_CODES))
    differ = [c for c in range(256) if again[c] != c]
    # μ-law has two zeros; +0 (0xFF) is what 0 encodes to.
    assert differ == ([0x7F] if codec is PCMU else [])


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_round_trip_error_bound(codec: G711Codec) -> None:
    """Relative error ≤ half a step (1/32 of the level) above the linear segments."""
    top = max(levels(codec))
    decoded = samples_of(codec.decode(codec.encode(ALL_SAMPLES)))
    for x, y in zip(range(-32768, 32768), decoded, strict=True):
        if abs(x) <= top:
            assert abs(y - x) <= abs(x) / 32 + 16, (x, y)


# --- G.711 cross-conversion (SIP-12 transcoding) -----------------------------------------


def test_cross_tables_are_g711_tables_3_and_4() -> None:
    """SHA-256 of spandsp's tables "copied from the CCITT G.711 specification"."""
    u2a, a2u = transcode_table(PCMU, PCMA), transcode_table(PCMA, PCMU)
    assert u2a is not None and a2u is not None
    assert hashlib.sha256(u2a).hexdigest() == (
        "021355cc78820e9e43a87564118844f4b6e443f355675db65083435a181e3f61"
    )
    assert hashlib.sha256(a2u).hexdigest() == (
        "c1515c134eca6f1dd608e1bdf78e3e66c83d349952ab8b966ae41dad8f230c0a"
    )


def test_cross_vectors() -> None:
    assert transcode(bytes([0xFF, 0x7F, 0x80, 0x00]), PCMU, PCMA) == bytes([0xD5, 0x55, 0xAA, 0x2A])
    assert transcode(bytes([0xD5, 0x55, 0xAA, 0x2A]), PCMA, PCMU) == bytes([0xFE, 0x7E, 0x80, 0x00])


def test_cross_conversion_keeps_the_level() -> None:
    lu, la = levels(PCMU), levels(PCMA)
    to_a, to_u = transcode(ALL_CODES, PCMU, PCMA), transcode(ALL_CODES, PCMA, PCMU)
    for code in range(256):
        assert abs(la[to_a[code]] - lu[code]) <= max(16, abs(lu[code]) / 16)
        assert abs(lu[to_u[code]] - la[code]) <= max(16, abs(la[code]) / 16)


def test_pcmu_pcma_pcmu_round_trip() -> None:
    """Transparent except the 16 μ-law codes finer than A-law's first step (|v| < 128).

    Those come back one μ-law code away: 8 units, G.711's smallest step.
    """
    lu = levels(PCMU)
    back = transcode(transcode(ALL_CODES, PCMU, PCMA), PCMA, PCMU)
    moved = [c for c in range(256) if back[c] != c]
    assert len(moved) == 16
    for code in moved:
        assert abs(lu[code]) < 128
        assert abs(lu[back[code]] - lu[code]) == 8
    la = levels(PCMA)
    back = transcode(transcode(ALL_CODES, PCMA, PCMU), PCMU, PCMA)
    for code in range(256):
        assert abs(la[back[code]] - la[code]) <= abs(la[code]) / 16


def test_same_law_is_relayed_untouched() -> None:
    payload = bytes(range(160))
    assert transcode_table(PCMU, PCMU) is None
    assert transcode(payload, PCMA, PCMA) is payload


# --- interface ---------------------------------------------------------------------------


def test_codec_for() -> None:
    assert codec_for(0) is PCMU and codec_for("pcmu") is PCMU and codec_for("PCMU") is PCMU
    assert codec_for(8) is PCMA and codec_for("PCMA") is PCMA
    assert (PCMU.payload_type, PCMA.payload_type, PCMU.clock_rate) == (0, 8, 8000)
    for bad in (9, "G722", "opus", 101):
        with pytest.raises(LookupError, match="no codec"):
            codec_for(bad)


def test_codec_protocol_is_two_methods() -> None:
    codec: Codec = PCMU
    frame = pcm(*range(-8000, 8000, 100))
    assert len(codec.encode(frame)) == 160
    assert len(codec.decode(codec.encode(frame))) == 320


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_lengths(codec: G711Codec) -> None:
    assert codec.encode(b"") == b"" and codec.decode(b"") == b""
    assert codec.encode(pcm(0)) == codec.encode(pcm(0, 0))[:1]
    with pytest.raises(ValueError, match="even"):
        codec.encode(b"\x00\x01\x02")


@given(st.binary(max_size=400))
def test_decode_encode_decode_is_stable(payload: bytes) -> None:
    for codec in (PCMU, PCMA):
        once = codec.decode(payload)
        assert codec.decode(codec.encode(once)) == once


@given(st.lists(st.integers(-32768, 32767), max_size=200))
def test_encode_matches_whole_table(samples: list[int]) -> None:
    """Any frame length encodes like the sample-by-sample table."""
    data = pcm(*samples)
    for codec, table in ((PCMU, PCMU_ALL), (PCMA, PCMA_ALL)):
        assert codec.encode(data) == bytes(table[s + 32768] for s in samples)
