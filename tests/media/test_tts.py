"""SpeechEngine: real espeak-ng, the voice mapping of VRB-1, cache, limits, timeout, kill.

The limit, timeout and cancellation tests run a small shell script in place of espeak-ng
(the ``binary`` argument), so they take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import time
from array import array
from pathlib import Path

import pytest

from dialtone.media.sources import MAX_WAV_BYTES
from dialtone.media.tts import (
    SpeechEngine,
    SpeechError,
    SpeechTimeout,
    VoiceChoice,
    VoiceTable,
    choose_voice,
    decode_wav,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng")

LISTING = """\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  de              --/M      German             gmw/de
 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  es              --/M      Spanish_(Spain)    roa/es
 5  es-419          --/M      Spanish_(Latin_America) roa/es-419           (es-mx 6)(es 6)
 5  fr-be           --/M      French_(Belgium)   roa/fr-BE            (fr 8)
 5  fr-fr           --/M      French_(France)    roa/fr               (fr 5)
 5  cmn             --/M      Chinese_(Mandarin) sit/cmn   (zh-cmn 5)(zh 5)
"""
TABLE = VoiceTable.parse(LISTING)


def wav(pcm: bytes, rate: int = 8000, *, streamed: bool = False) -> bytes:
    """A mono PCM16 WAV; ``streamed`` writes espeak-ng's "unknown length" sizes."""
    size = 0x7FFFF000 if streamed else len(pcm)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16)
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<I", 16)
    return header + fmt + b"data" + struct.pack("<I", size) + pcm


def script(tmp_path: Path, name: str, body: str) -> str:
    """An executable shell script standing in for espeak-ng."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def gone(pid: int) -> bool:
    """Whether process ``pid`` no longer exists (it was killed and reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- the real espeak-ng -------------------------------------------------------------------------


@needs_espeak
async def test_real_espeak_renders_hello_as_8khz_pcm() -> None:
    engine = SpeechEngine()
    speech = await engine.render("hello", "man", "en-US")
    assert not speech.mapped
    assert speech.voice == "en-us"
    assert 0.2 < speech.seconds < 2.0
    assert len(speech.pcm) % 2 == 0
    samples = array("h", speech.pcm)
    assert max(abs(s) for s in samples) > 1000  # not silence
    frames = list(iter(speech.source().next_frame, None))
    assert all(len(f) == 320 for f in frames)
    assert len(frames) == -(-len(speech.pcm) // 320)


@needs_espeak
async def test_cache_hit_is_instant_and_starts_nothing() -> None:
    engine = SpeechEngine()
    first = await engine.render("cached words", "woman", "en-US")
    started = engine.processes
    begin = time.perf_counter()
    again = await engine.render("cached words", "woman", "en-US")
    assert time.perf_counter() - begin < 0.005
    assert again.pcm is first.pcm
    assert (engine.processes, engine.hits) == (started, 1)
    assert engine.cached_bytes == len(first.pcm)


@needs_espeak
async def test_real_voice_table_and_mapping() -> None:
    engine = SpeechEngine()
    table = await engine.voices()
    assert table.exact("en-us") == "en-us"
    assert table.exact("fr-fr") == "fr-fr"
    spoken = await engine.render("bonjour", "alice", "fr-CA")
    assert spoken.mapped
    assert spoken.voice == "fr-fr+f3"
    assert "fr-CA" in spoken.choice.note


@needs_espeak
async def test_espeak_error_is_a_clear_speech_error() -> None:
    engine = SpeechEngine(voices=VoiceTable.of("zz-nonexistent"))
    with pytest.raises(SpeechError, match="exited with 1: Error: The specified espeak-ng voice"):
        await engine.render("hello", "man", "zz-nonexistent")


# --- the voice mapping (VRB-1) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voice", "language", "expected"),
    [
        ("man", "en-US", VoiceChoice("en-us")),
        ("woman", "en-US", VoiceChoice("en-us", female=True)),
        ("alice", "fr-FR", VoiceChoice("fr-fr", female=True)),
        ("man", "EN_us", VoiceChoice("en-us")),
        ("man", "es-MX", VoiceChoice("es-419")),  # espeak-ng's own alias
        ("man", "zh", VoiceChoice("cmn")),
        ("man", "en", VoiceChoice("en-gb")),  # espeak-ng's priority for "en"
    ],
)
def test_exact_voices(voice: str, language: str, expected: VoiceChoice) -> None:
    assert choose_voice(voice, language, TABLE) == expected


@pytest.mark.parametrize(
    ("voice", "language", "name"),
    [
        ("Polly.Joanna", "en-US", "en-us+f3"),
        ("Polly.Joanna-Neural", "en-US", "en-us+f3"),
        ("Polly.Matthew", "en-US", "en-us"),
        ("Google.en-US-Standard-C", "en-US", "en-us+f3"),
        ("man", "de-DE", "de"),  # base language
        ("woman", "fr-CA", "fr-fr+f3"),
        ("man", "es-MX-x-foo", "es-419"),  # subtags dropped one by one
        ("man", "xx-YY", "en-us"),  # else en-US
        ("man", "sw", "en-us"),
    ],
)
def test_mapped_voices_are_flagged(voice: str, language: str, name: str) -> None:
    choice = choose_voice(voice, language, TABLE)
    assert choice.name == name
    assert not choice.exact
    assert choice.note


def test_voice_table_parse_prefers_the_best_priority() -> None:
    assert TABLE.voices["es"] == "es"  # its own name beats es-419's alias
    assert TABLE.aliases["fr"] == "fr-fr"
    assert TABLE.aliases["en"] == "en-gb"
    assert "pty" not in TABLE.voices


# --- process limits, cache budget, errors ---------------------------------------------------------


async def test_concurrency_limit(tmp_path: Path) -> None:
    (tmp_path / "out.wav").write_bytes(wav(b"\x10\x00" * 800))
    log = tmp_path / "log"
    binary = script(
        tmp_path,
        "slow",
        f'echo start >> "{log}"; sleep 0.1; echo end >> "{log}"; cat "{tmp_path}/out.wav"',
    )
    engine = SpeechEngine(binary, max_processes=2, voices=VoiceTable.of("en-us"))
    spoken = await asyncio.gather(*(engine.render(f"text {i}") for i in range(6)))
    assert all(len(s.pcm) == 1600 for s in spoken)
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak == 2
    assert engine.processes == 6


async def test_concurrent_requests_for_one_text_share_a_process(tmp_path: Path) -> None:
    (tmp_path / "out.wav").write_bytes(wav(b"\x10\x00" * 80))
    binary = script(tmp_path, "one", f'sleep 0.05; cat "{tmp_path}/out.wav"')
    engine = SpeechEngine(binary, voices=VoiceTable.of("en-us"))
    spoken = await asyncio.gather(*(engine.render("same") for _ in range(5)))
    assert engine.processes == 1
    assert len({id(s.pcm) for s in spoken}) == 1


async def test_lru_cache_keeps_to_its_byte_budget(tmp_path: Path) -> None:
    (tmp_path / "out.wav").write_bytes(wav(b"\x10\x00" * 500))  # 1000 bytes of PCM
    binary = script(tmp_path, "quick", f'cat "{tmp_path}/out.wav"')
    engine = SpeechEngine(binary, cache_bytes=2500, voices=VoiceTable.of("en-us"))
    for text in ("a", "b", "a", "c"):  # "a" was used again: "b" is the least recent
        await engine.render(text)
    assert engine.processes == 3
    assert engine.cached_bytes == 2000
    await engine.render("a")
    assert engine.processes == 3
    await engine.render("b")
    assert engine.processes == 4
    tiny = SpeechEngine(binary, cache_bytes=999, voices=VoiceTable.of("en-us"))
    await tiny.render("a")
    assert tiny.cached_bytes == 0  # an entry over the budget is not kept


async def test_timeout_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    binary = script(tmp_path, "hang", f'echo $$ > "{pidfile}"; exec sleep 30')
    engine = SpeechEngine(binary, timeout=0.3, voices=VoiceTable.of("en-us"))
    begin = time.perf_counter()
    with pytest.raises(SpeechTimeout, match=r"did not finish within 0.3 s \(killed\)"):
        await engine.render("hello")
    assert time.perf_counter() - begin < 2
    assert gone(int(pidfile.read_text()))
    assert engine.cached_bytes == 0


async def test_cancellation_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    binary = script(tmp_path, "hang", f'echo $$ > "{pidfile}"; exec sleep 30')
    engine = SpeechEngine(binary, voices=VoiceTable.of("en-us"))
    task = asyncio.create_task(engine.render("hello"))
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gone(int(pidfile.read_text()))


async def test_missing_binary(tmp_path: Path) -> None:
    engine = SpeechEngine(str(tmp_path / "nope"), voices=VoiceTable.of("en-us"))
    with pytest.raises(SpeechError, match="cannot run"):
        await engine.render("hello")
    with pytest.raises(SpeechError, match="cannot run"):
        await SpeechEngine(str(tmp_path / "nope")).voices()


async def test_output_that_is_not_wav(tmp_path: Path) -> None:
    binary = script(tmp_path, "junk", "echo junk")
    engine = SpeechEngine(binary, voices=VoiceTable.of("en-us"))
    with pytest.raises(SpeechError, match="not usable audio"):
        await engine.render("hello")


def test_engine_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_processes"):
        SpeechEngine(max_processes=0)
    with pytest.raises(ValueError, match="timeout"):
        SpeechEngine(timeout=0)


# --- decoding ------------------------------------------------------------------------------------


def test_decode_wav_resamples_and_accepts_empty_output() -> None:
    assert decode_wav(b"") == b""
    assert len(decode_wav(wav(b"\x01\x00" * 16000, 16000))) == 16000


def test_decode_wav_past_the_play_limit() -> None:
    samples = (MAX_WAV_BYTES // 2) + 1000
    long = wav(b"\x01\x00" * samples, 16000, streamed=True)
    assert len(long) > MAX_WAV_BYTES
    pcm = decode_wav(long)
    assert len(pcm) == samples // 2 * 2
    with pytest.raises(SpeechError, match="not usable"):
        decode_wav(b"RIFF" + bytes(MAX_WAV_BYTES))
