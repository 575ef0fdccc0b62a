"""Sources pulled in 20 ms frames, and the WAV loader (VRB-2)."""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialtone.media.codecs import PCMA, PCMU, G711Codec
from dialtone.media.sources import (
    FRAME_BYTES,
    MAX_WAV_BYTES,
    SILENT_FRAME,
    AudioError,
    PcmSource,
    Silence,
    Source,
    ToneSource,
    load_wav,
    resample,
)


def pcm(samples: list[int]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples_of(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def sine(freq: float, rate: int, count: int, amplitude: float = 10000) -> list[int]:
    return [round(amplitude * math.sin(2 * math.pi * freq * n / rate)) for n in range(count)]


def magnitude(samples: list[int], freq: float, rate: int = 8000) -> float:
    """Amplitude of ``freq`` in ``samples`` (a single-bin DFT)."""
    w = 2 * math.pi * freq / rate
    re = sum(s * math.cos(w * n) for n, s in enumerate(samples))
    im = sum(s * math.sin(w * n) for n, s in enumerate(samples))
    return 2 * math.hypot(re, im) / len(samples)


def pull(source: Source, limit: int = 10_000) -> list[bytes]:
    frames: list[bytes] = []
    while (frame := source.next_frame()) is not None and len(frames) < limit:
        assert len(frame) == FRAME_BYTES
        frames.append(frame)
    return frames


# --- Silence, ToneSource, PcmSource -------------------------------------------------------


def test_silence() -> None:
    assert pull(Silence(0.1)) == [SILENT_FRAME] * 5
    assert pull(Silence(0)) == []
    assert len(pull(Silence(None), limit=500)) == 500
    with pytest.raises(ValueError, match=">= 0"):
        Silence(-1)


def test_ringback_cadence() -> None:
    """DIAL-30: 440 + 480 Hz, 2 s on, 4 s off, and again."""
    tone = ToneSource()
    cycle = [tone.next_frame() for _ in range(300)]
    assert all(f != SILENT_FRAME for f in cycle[:100])
    assert all(f is SILENT_FRAME for f in cycle[100:])
    assert tone.next_frame() is cycle[0]  # the 6 s cycle repeats
    on = samples_of(b"".join(cycle[:100]))
    level = 32636 * 10 ** ((-19 - 3.17) / 20)  # −19 dBm0 per frequency
    assert magnitude(on, 440) == pytest.approx(level, rel=0.01)
    assert magnitude(on, 480) == pytest.approx(level, rel=0.01)
    assert magnitude(on, 1000) < level / 100
    assert max(map(abs, on)) <= 2 * level + 1


def test_tone_frames_are_computed_once_per_process() -> None:
    a, b = ToneSource(), ToneSource()
    assert a.next_frame() is b.next_frame()


def test_tone_variants_and_validation() -> None:
    steady = ToneSource((1000.0,), on=1.0, off=0)
    assert all(f != SILENT_FRAME for f in (steady.next_frame() for _ in range(120)))
    busy = ToneSource((480.0, 620.0), on=0.5, off=0.5)
    frames = [busy.next_frame() for _ in range(50)]
    assert frames[25:] == [SILENT_FRAME] * 25
    for bad in ({"freqs": ()}, {"freqs": (4000.0,)}, {"on": 0.0}, {"off": -1.0}, {"level": 0.0}):
        with pytest.raises(ValueError, match="tone"):
            ToneSource(**bad)


def test_pcm_source_pads_and_loops() -> None:
    audio = pcm(list(range(500)))  # 1000 bytes: 3 frames and a bit
    frames = pull(PcmSource(audio))
    assert len(frames) == 4
    assert b"".join(frames)[:1000] == audio and frames[-1][40:] == bytes(280)
    assert pull(PcmSource(audio, loop=3)) == frames * 3
    assert len(pull(PcmSource(audio, loop=0), limit=1000)) == 1000  # until stopped


def test_pcm_source_edges() -> None:
    assert pull(PcmSource(b"", loop=0)) == []
    assert pull(PcmSource(SILENT_FRAME * 2)) == [SILENT_FRAME] * 2
    with pytest.raises(ValueError, match="even"):
        PcmSource(b"\x00")
    with pytest.raises(ValueError, match="loop"):
        PcmSource(b"", loop=-1)


# --- WAV ----------------------------------------------------------------------------------


def stdlib_wav(samples: list[int], rate: int = 8000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm(samples))
    return buf.getvalue()


def riff(*chunks: tuple[bytes, bytes], riff_size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(
        cid + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)
        for cid, data in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def fmt(tag: int = 1, channels: int = 1, rate: int = 8000, bits: int = 16) -> tuple[bytes, bytes]:
    align = channels * bits // 8
    return b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def test_pcm_8k_mono_passes_through() -> None:
    samples = sine(1000, 8000, 800)
    assert load_wav(stdlib_wav(samples)) == pcm(samples)


def test_44k1_is_resampled_to_8k() -> None:
    samples = sine(1000, 44100, 44100 // 2)  # 0.5 s
    out = samples_of(load_wav(stdlib_wav(samples, rate=44100)))
    assert len(out) == 4000
    assert magnitude(out, 1000) == pytest.approx(10000, rel=0.02)
    assert magnitude(out, 2000) < 100


@pytest.mark.parametrize("rate", [16000, 48000, 11025, 22050, 32000, 4000])
def test_other_rates(rate: int) -> None:
    out = samples_of(load_wav(stdlib_wav(sine(440, rate, rate // 5), rate=rate)))
    assert len(out) == 1600
    # Linear interpolation loses a little at 440 Hz when it has to *up*-sample 4 kHz.
    assert magnitude(out, 440) == pytest.approx(10000, rel=0.05 if rate < 8000 else 0.02)


def test_stereo_is_mixed_down() -> None:
    frames = [v for _ in range(100) for v in (1000, -3001)]
    assert samples_of(load_wav(stdlib_wav(frames, channels=2))) == [-1001] * 100


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 22050])
def test_stereo_at_other_rates_mixes_like_mono(rate: int) -> None:
    left, right = sine(700, rate, rate // 10), sine(300, rate, rate // 10, amplitude=5000)
    mono = [(a + b) >> 1 for a, b in zip(left, right, strict=True)]
    interleaved = [v for pair in zip(left, right, strict=True) for v in pair]
    stereo = samples_of(load_wav(stdlib_wav(interleaved, rate=rate, channels=2)))
    assert stereo == samples_of(load_wav(stdlib_wav(mono, rate=rate)))


@pytest.mark.parametrize(("tag", "codec"), [(7, PCMU), (6, PCMA)])
def test_g711_wav(tag: int, codec: G711Codec) -> None:
    payload = bytes(range(256)) * 4
    data = riff(fmt(tag, bits=8), (b"fact", struct.pack("<I", 1024)), (b"data", payload))
    assert load_wav(data) == codec.decode(payload)


def test_g711_stereo_wav() -> None:
    payload = bytes([0xFF, 0x80] * 10)  # left 0, right +32124
    data = riff(fmt(7, channels=2, bits=8), (b"data", payload))
    assert samples_of(load_wav(data)) == [16062] * 10


def test_extensible_format() -> None:
    guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    cid, base = fmt()
    ext = base + struct.pack("<HHI", 22, 16, 4) + struct.pack("<H", 1) + guid_tail
    body = struct.pack("<H", 0xFFFE) + ext[2:]
    assert load_wav(riff((cid, body), (b"data", pcm([1, 2, 3])))) == pcm([1, 2, 3])


def test_odd_chunks_are_skipped_with_their_pad_byte() -> None:
    data = riff((b"LIST", b"odd"), fmt(), (b"junk", b"x" * 7), (b"data", pcm([5, -5])))
    assert load_wav(data) == pcm([5, -5])


def test_trailing_partial_sample_frames_are_dropped() -> None:
    assert load_wav(riff(fmt(), (b"data", pcm([7]) + b"\x01"))) == pcm([7])
    assert load_wav(riff(fmt(channels=2), (b"data", pcm([2, 4, 6])))) == pcm([3])


@pytest.mark.parametrize("size", [0x7FFFF000, 0xFFFFFFFF])
def test_streamed_wav_sizes_read_to_the_end(size: int) -> None:
    """espeak-ng --stdout and ffmpeg pipes cannot seek back to fill in the sizes."""
    data = riff(fmt(), (b"data", pcm([1, 2, 3, 4])), riff_size=size)
    data = data[: -len(pcm([1, 2, 3, 4])) - 4] + struct.pack("<I", size) + pcm([1, 2, 3, 4])
    assert load_wav(data) == pcm([1, 2, 3, 4])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a WAV"),
        (b"RIFX" + bytes(4) + b"WAVE", "not a WAV"),
        (b"RIFF" + bytes(4) + b"AVI ", "not a WAV"),
        (riff(fmt(tag=3, bits=32), (b"data", bytes(8))), "format 0x0003"),
        (riff(fmt(tag=0x55, bits=0), (b"data", bytes(8))), "format 0x0055"),  # MP3
        (riff(fmt(tag=2, bits=4), (b"data", bytes(8))), "format 0x0002"),  # ADPCM
        (riff(fmt(bits=8), (b"data", bytes(8))), "8-bit PCM"),
        (riff(fmt(bits=24), (b"data", bytes(8))), "24-bit PCM"),
        (riff(fmt(tag=7, bits=16), (b"data", bytes(8))), "16-bit μ-law"),
        (riff(fmt(channels=3), (b"data", bytes(12))), "3 channels"),
        (riff(fmt(channels=0), (b"data", bytes(12))), "0 channels"),
        (riff(fmt(rate=2000), (b"data", bytes(8))), "2000 Hz"),
        (riff(fmt(rate=384000), (b"data", bytes(8))), "384000 Hz"),
        (riff((b"fmt ", bytes(14)), (b"data", bytes(8))), "fmt chunk of 14"),
        (riff((b"data", bytes(8)), fmt()), "before its fmt"),
        (riff(fmt()), "no data chunk"),
        (riff((b"LIST", b"abcd")), "no fmt chunk"),
        (riff(fmt(), (b"data", bytes(100)))[:-10], "data chunk truncated"),
        (riff(fmt())[:-4], "'fmt ' chunk truncated"),
    ],
)
def test_unplayable_audio_is_a_clear_audio_error(data: bytes, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        load_wav(data)


def test_over_20_mib_is_refused() -> None:
    data = riff(fmt(), (b"data", bytes(MAX_WAV_BYTES)))
    with pytest.raises(AudioError, match="20 MiB"):
        load_wav(data)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_real_espeak_ng_output(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    subprocess.run(["espeak-ng", "-w", str(out), "hello"], check=True, timeout=30)
    data = out.read_bytes()
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (22050, 2, 1)
        frames = w.getnframes()
    speech = samples_of(load_wav(data))
    assert abs(len(speech) - frames * 8000 // 22050) <= 1
    assert max(map(abs, speech)) > 1000  # not silence
    streamed = subprocess.run(["espeak-ng", "--stdout", "hello"], check=True, capture_output=True)
    assert load_wav(streamed.stdout) == load_wav(data)


# --- resampler ------------------------------------------------------------------------------


def test_linear_interpolation_values() -> None:
    assert samples_of(resample(pcm([0, 100, 200]), 4000)) == [0, 50, 100, 150, 200, 200]
    assert samples_of(resample(pcm([0, 10, 20, 30, 40, 50]), 12000)) == [0, 15, 30, 45]
    assert samples_of(resample(pcm([1, 2, 3, 4, 5, 6]), 16000)) == [1, 3, 5]
    assert resample(b"", 44100) == b"" and resample(pcm([1]), 8000) == pcm([1])


@given(st.lists(st.integers(-32768, 32767), max_size=300), st.sampled_from([4000, 11025, 44100]))
def test_resample_stays_in_range_and_length(samples: list[int], rate: int) -> None:
    out = samples_of(resample(pcm(samples), rate))
    assert len(out) == len(samples) * 8000 // rate
    if samples:
        assert min(samples) <= min(out, default=0) or not out
        assert max(out, default=0) <= max(samples) or not out


# --- properties -------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_load_wav_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(AudioError):
        load_wav(data)


headers = st.builds(
    lambda tag, ch, rate, bits, extra, body: riff(
        (b"fmt ", struct.pack("<HHIIHH", tag, ch, rate, 0, 0, bits) + extra), (b"data", body)
    ),
    st.sampled_from([1, 3, 6, 7, 0xFFFE, 0]),
    st.integers(0, 3),
    st.sampled_from([0, 4000, 8000, 11025, 44100, 192000, 0xFFFFFFFF]),
    st.sampled_from([0, 8, 16, 24]),
    st.binary(max_size=30),
    st.binary(max_size=200),
)


@given(headers, st.integers(0, 400))
def test_load_wav_structured_garbage(data: bytes, cut: int) -> None:
    for candidate in (data, data[:cut], data[: len(data) - cut]):
        try:
            out = load_wav(candidate)
        except AudioError:
            continue
        assert len(out) % 2 == 0
