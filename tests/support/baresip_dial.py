"""Helpers for `<Dial>` tests with baresip phones: who heard what, and when.

baresip's ``ausine`` source sends a pure sine of the phone's ``sine_hz``; dialtone's
ringback is 440+480 Hz (DIAL-30); ``<Say>`` is broadband speech.  So the received-audio
dump of a phone (``*-dec.wav``, 16-bit mono) tells, window by window, whether it heard
the other phone, ringback, speech or silence.  :func:`timeline` labels each window with
a Goertzel filter per candidate tone; :func:`runs` squeezes the labels into segments.
"""

from __future__ import annotations

import array
import math
import sys
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MIXED",
    "RINGBACK",
    "SILENCE",
    "SPEECH",
    "Segment",
    "describe",
    "first_index",
    "read_wav",
    "runs",
    "timeline",
]

RINGBACK: tuple[float, ...] = (440.0, 480.0)
"""DIAL-30's ringback tone pair."""
SILENCE = "silence"
"""Label of a window quieter than the silence threshold."""
SPEECH = "speech"
"""Label of an audible window that is none of the tones (e.g. ``<Say>``)."""
MIXED = "mixed"
"""Label of a window that holds two known tones (a transition between them)."""


def read_wav(path: Path) -> tuple[int, array.array[int]]:
    """The sample rate and 16-bit samples of a mono PCM WAV (sndfile's dumps)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: not 16-bit mono")
        rate = wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    return rate, samples


def _power(samples: Sequence[int], start: int, count: int, rate: int, freq: float) -> float:
    """Goertzel: the share-normalised power of ``freq`` in ``samples[start:start+count]``."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for index in range(start, start + count):
        s0 = samples[index] + coeff * s1 - s2
        s2, s1 = s1, s0
    magnitude = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2.0 * magnitude / count


def timeline(
    path: Path,
    tones: Mapping[str, Sequence[float]],
    *,
    window: float = 0.1,
    silence_rms: float = 300.0,
    share: float = 0.6,
) -> list[str]:
    """One label per ``window`` seconds of ``path``: a key of ``tones``, or one of
    :data:`SILENCE`, :data:`SPEECH`, :data:`MIXED`.

    A window is labelled with a tone when that tone's frequencies carry more than ``share``
    of the window's energy; :data:`MIXED` when known tones together carry most of it;
    :data:`SILENCE` below ``silence_rms`` (of 32767); :data:`SPEECH` otherwise.
    """
    rate, samples = read_wav(path)
    size = max(1, round(rate * window))
    labels: list[str] = []
    for start in range(0, len(samples) - size + 1, size):
        energy = sum(samples[i] * samples[i] for i in range(start, start + size))
        if math.sqrt(energy / size) < silence_rms:
            labels.append(SILENCE)
            continue
        shares = {
            name: sum(_power(samples, start, size, rate, f) for f in freqs) / energy
            for name, freqs in tones.items()
        }
        best = max(shares, key=lambda name: shares[name]) if shares else None
        if best is not None and shares[best] > share:
            labels.append(best)
        elif sum(shares.values()) > share:
            labels.append(MIXED)
        else:
            labels.append(SPEECH)
    return labels


@dataclass(frozen=True)
class Segment:
    """A run of equal labels: ``label`` from window ``start`` for ``length`` windows."""

    label: str
    start: int
    length: int


def runs(labels: Sequence[str]) -> list[Segment]:
    """``labels`` as runs of equal labels, in order."""
    out: list[Segment] = []
    for index, label in enumerate(labels):
        if out and out[-1].label == label:
            last = out[-1]
            out[-1] = Segment(label, last.start, last.length + 1)
        else:
            out.append(Segment(label, index, 1))
    return out


def first_index(labels: Sequence[str], label: str, *, run: int = 1, after: int = 0) -> int | None:
    """Index of the first window (from ``after``) that starts ``run`` windows of ``label``."""
    for index in range(after, len(labels) - run + 1):
        if all(labels[index + k] == label for k in range(run)):
            return index
    return None


def describe(labels: Sequence[str], window: float = 0.1) -> str:
    """A readable summary of a timeline, for assertion messages."""
    return " ".join(
        f"{seg.label}@{seg.start * window:.1f}s+{seg.length * window:.1f}" for seg in runs(labels)
    )
