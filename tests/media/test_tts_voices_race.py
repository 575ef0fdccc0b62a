"""A race in ``SpeechEngine`` under uvloop (the server's loop, cli.py), now fixed.

``_exchange`` wrote the (empty) stdin of ``espeak-ng --voices`` without guarding the write:
when the child had already exited and uvloop had closed the pipe transport, ``write`` raised
``RuntimeError: unable to perform operation on <WriteUnixTransport closed=True ...>``.  The
first ``<Say>`` of a fresh server then failed with 12400 and the call was hung up (seen in
tests/interop/test_call_midcall_sipp.py on a loaded machine with the real espeak-ng).  The
more the loop has to do while the child starts, the likelier: 30 engines listing at once
fail nearly every time, with the real espeak-ng as with the fake used here (a shell script
that closes its stdin at once; hermetic and fast).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import uvloop

from dialtone.media.tts import SpeechEngine

FAKE = """#!/bin/sh
exec 0<&-
printf 'Pty Language Age/Gender VoiceName File Other Languages\\n'
printf ' 5  en-us  --/M  English_(America)  gmw/en-US  (en 3)\\n'
"""
RUNS = 30


def fake_espeak(tmp_path: Path) -> str:
    """An ``espeak-ng`` that closes stdin first, then lists one voice and exits 0."""
    path = tmp_path / "espeak-ng"
    path.write_text(FAKE)
    path.chmod(0o755)
    return str(path)


async def failures(binary: str) -> list[BaseException]:
    """Read the voice table with ``RUNS`` fresh engines at once; the errors raised."""
    results = await asyncio.gather(
        *(SpeechEngine(binary).voices() for _ in range(RUNS)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all("en-us" in r.voices for r in results if not isinstance(r, BaseException))
    return errors


def test_the_voice_listing_survives_a_child_that_closed_stdin_on_asyncio(tmp_path: Path) -> None:
    """The control: the fake is a valid espeak-ng for the engine (asyncio's write on a
    closed pipe does not raise)."""
    assert asyncio.run(failures(fake_espeak(tmp_path))) == []


def test_the_voice_listing_survives_a_child_that_closed_stdin_on_uvloop(tmp_path: Path) -> None:
    """The server's loop: no run may fail."""
    errors = uvloop.run(failures(fake_espeak(tmp_path)))
    assert errors == [], f"{len(errors)}/{RUNS} failed, e.g. {errors[0]!r}"
