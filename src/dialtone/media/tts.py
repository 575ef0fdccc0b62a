"""Text to speech for ``<Say>`` (VRB-1): espeak-ng in a subprocess, PCM16 at 8 kHz, cached.

:class:`SpeechEngine` turns (text, voice, language) into the audio
:class:`~dialtone.media.sources.PcmSource` plays.  :func:`choose_voice` maps the RCML voice
(``man``: the default male voice; ``woman``, ``alice``: the ``+f3`` female variant;
``Polly.*``/``Google.*``: the variant of their gender) and the BCP 47 language (exact among
the voices of ``espeak-ng --voices``, else subtags dropped down to the base language, else
``en-us``); a mapping that is not exact is flagged (:attr:`Speech.mapped`: record warning
13511).  espeak-ng runs with an argument list, never a shell: text on stdin, WAV on stdout,
resampled to 8 kHz by :func:`decode_wav`.  Results are kept in an LRU cache per (text,
espeak voice) within a byte budget (a hit starts nothing; concurrent requests for one text
share one process); at most ``max_processes`` run at once, each for at most ``timeout``
seconds, and a process is killed when it times out, floods its output, or everyone waiting
for it is cancelled.  Failures raise :class:`SpeechError` naming the binary and the cause.
"""

from __future__ import annotations

import asyncio
import re
from asyncio.subprocess import PIPE
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Final

from dialtone.errors import DialtoneError
from dialtone.media.sources import MAX_WAV_BYTES, AudioError, PcmSource, load_wav, resample

__all__ = [
    "DEFAULT_LANGUAGE",
    "FEMALE_VARIANT",
    "MAX_OUTPUT_BYTES",
    "Speech",
    "SpeechEngine",
    "SpeechError",
    "SpeechTimeout",
    "VoiceChoice",
    "VoiceTable",
    "choose_voice",
    "decode_wav",
]

#: The espeak-ng language used when nothing nearer exists (VRB-1: "else en-US").
DEFAULT_LANGUAGE: Final = "en-us"
#: The espeak-ng variant that makes a voice female.
FEMALE_VARIANT: Final = "f3"
#: The most WAV bytes read from one process (about 25 minutes at 22.05 kHz).
MAX_OUTPUT_BYTES: Final = 64 * 1024 * 1024
_STDERR_KEPT = 2048
_CHUNK = 64 * 1024

#: Amazon Polly voices with a male voice; every other ``Polly.*`` name is taken as female.
_POLLY_MALE_NAMES: Final = (
    "adriano andres arthur brian cristiano daniel enrique geraint giorgio gregory hans jacek "
    "jan joey justin karl kevin liam mads mathieu matthew maxim miguel pedro remi rémi "
    "ricardo ruben russell sergio stephen takumi thiago zayd"
)
_POLLY_MALE: Final = frozenset(_POLLY_MALE_NAMES.split())
_ALIAS = re.compile(r"\(([^\s()]+) (\d+)\)")


class SpeechError(DialtoneError):
    """espeak-ng could not produce speech (missing, failed, or unusable output)."""


class SpeechTimeout(SpeechError):
    """espeak-ng did not finish in time; the process was killed."""


@dataclass(frozen=True, slots=True)
class VoiceTable:
    """The languages espeak-ng speaks: lower-case tag → the espeak-ng voice to use.

    ``voices`` holds the voices' own language names, ``aliases`` the "other languages" they
    cover (``en`` → ``en-gb``, ``es-mx`` → ``es-419``), each resolved to the voice of best
    priority.  Both count as exact matches.
    """

    voices: Mapping[str, str]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, listing: str) -> VoiceTable:
        """Read the output of ``espeak-ng --voices``.

        Each line is ``Pty Language Age/Gender VoiceName File (other 5)(languages 8)``; a
        lower priority number wins when several voices claim the same tag.
        """
        voices: dict[str, str] = {}
        best: dict[str, tuple[int, str]] = {}  # alias → (priority, voice)
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[0].isdigit():
                continue  # the header, blank lines
            language = voices.setdefault(parts[1].lower(), parts[1].lower())
            for alias, priority in _ALIAS.findall(line):
                if best.get(alias.lower(), (99, ""))[0] > int(priority):
                    best[alias.lower()] = (int(priority), language)
        return cls(voices, {alias: voice for alias, (_, voice) in best.items()})

    @classmethod
    def of(cls, *languages: str) -> VoiceTable:
        """A table of exactly these espeak-ng languages (tests, fixed deployments)."""
        return cls(voices={language.lower(): language.lower() for language in languages})

    def exact(self, tag: str) -> str | None:
        """The voice named by ``tag`` (lower case), or None."""
        return self.voices.get(tag) or self.aliases.get(tag)


@dataclass(frozen=True, slots=True)
class VoiceChoice:
    """The espeak-ng voice chosen for an RCML voice and language.

    ``exact`` is False when something had to be mapped (VRB-1: warning 13511); ``note``
    then says what, for the Notification.
    """

    language: str
    female: bool = False
    exact: bool = True
    note: str = ""

    @property
    def name(self) -> str:
        """The ``-v`` argument: ``en-us`` or ``en-us+f3``."""
        return f"{self.language}+{FEMALE_VARIANT}" if self.female else self.language


def _gender(voice: str) -> tuple[bool, bool]:
    """(female, exact) for an RCML voice (VRB-1)."""
    lowered = voice.lower()
    if lowered == "man":
        return False, True
    if lowered in ("woman", "alice"):
        return True, True
    if voice.startswith("Polly."):
        name = voice[len("Polly.") :].split("-", 1)[0].lower()  # Joanna-Neural → joanna
        return name not in _POLLY_MALE, False
    if voice.startswith("Google."):
        return True, False  # Google names carry no gender; its default voices are female
    return False, False


def choose_voice(voice: str, language: str, table: VoiceTable) -> VoiceChoice:
    """Map an RCML ``voice`` and BCP 47 ``language`` to an espeak-ng voice (VRB-1).

    The language is matched exactly (case-insensitive, ``_`` read as ``-``), else with its
    last subtags dropped one by one down to the base language, else ``en-us``.
    """
    female, voice_exact = _gender(voice)
    tag = language.strip().lower().replace("_", "-")
    notes: list[str] = []
    if not voice_exact:
        kind = "female" if female else "male"
        notes.append(f"voice {voice!r} has no espeak-ng voice, a {kind} voice is used")
    chosen = table.exact(tag)
    if chosen is None:
        parts = tag.split("-")
        while chosen is None and len(parts) > 1:
            parts.pop()
            chosen = table.exact("-".join(parts))
        if chosen is None:
            chosen = table.exact(DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE
        notes.append(f"language {language!r} has no espeak-ng voice, {chosen!r} is used")
    return VoiceChoice(chosen, female, exact=not notes, note="; ".join(notes))


@dataclass(frozen=True, slots=True)
class Speech:
    """Rendered speech: PCM16 8 kHz mono and the voice that spoke it."""

    pcm: bytes
    choice: VoiceChoice

    @property
    def mapped(self) -> bool:
        """True when the voice or language was mapped: record warning 13511 (VRB-1)."""
        return not self.choice.exact

    @property
    def voice(self) -> str:
        """The espeak-ng voice used (``fr-fr+f3``)."""
        return self.choice.name

    @property
    def seconds(self) -> float:
        """The duration of the audio."""
        return len(self.pcm) / 16000

    def source(self, loop: int = 1) -> PcmSource:
        """A fresh source playing the speech ``loop`` times."""
        return PcmSource(self.pcm, loop)


def decode_wav(wav: bytes) -> bytes:
    """espeak-ng's WAV output → PCM16 8 kHz mono (empty output: no audio).

    Up to ``<Play>``'s 20 MiB this is :func:`~dialtone.media.sources.load_wav`.  A long
    text can exceed that; its streamed header (44 bytes, ``data`` last) is checked by
    ``load_wav`` alone and the samples after it are resampled.
    """
    if not wav:
        return b""
    try:
        if len(wav) <= MAX_WAV_BYTES:
            return load_wav(wav)
        if wav[36:40] != b"data" or int.from_bytes(wav[22:24], "little") != 1:
            raise AudioError("long WAV without espeak-ng's 44-byte mono header")
        load_wav(wav[:44])  # validates RIFF and the fmt chunk
        body = wav[44 : len(wav) - len(wav) % 2]
        return resample(body, int.from_bytes(wav[24:28], "little"))
    except AudioError as exc:
        raise SpeechError(f"espeak-ng output is not usable audio: {exc}") from exc


@dataclass(slots=True)
class _Job:
    """A render in progress, shared by everyone waiting for the same text and voice."""

    task: asyncio.Task[bytes]
    waiters: int = 0


class SpeechEngine:
    """espeak-ng behind a cache, a process limit and a timeout (see the module docstring).

    ``binary`` is the program run (a path or a name on ``PATH``); ``voices`` skips asking it
    for ``--voices``.  One engine serves every call of a process; create it inside the event
    loop that uses it.
    """

    def __init__(
        self,
        binary: str = "espeak-ng",
        *,
        cache_bytes: int = 64 * 1024 * 1024,
        max_processes: int = 4,
        timeout: float = 10.0,
        voices: VoiceTable | None = None,
    ) -> None:
        if max_processes < 1:
            raise ValueError(f"max_processes must be >= 1, got {max_processes}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.binary = binary
        self.cache_bytes = cache_bytes
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_processes)
        self._voices = voices
        self._voices_lock = asyncio.Lock()
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cached = 0
        self._jobs: dict[tuple[str, str], _Job] = {}
        self.processes = 0
        """How many espeak-ng processes were started (``--voices`` included)."""
        self.hits = 0
        """How many renders the cache answered."""

    @property
    def cached_bytes(self) -> int:
        """Bytes of PCM in the cache (at most ``cache_bytes``)."""
        return self._cached

    async def voices(self) -> VoiceTable:
        """The voice table, read from ``espeak-ng --voices`` once."""
        if self._voices is None:
            async with self._voices_lock:
                if self._voices is None:
                    async with self._slots:
                        listing = await self._run(["--voices"], b"")
                    self._voices = VoiceTable.parse(listing.decode("utf-8", "replace"))
        return self._voices

    async def choose(self, voice: str, language: str) -> VoiceChoice:
        """The espeak-ng voice for an RCML voice and language (:func:`choose_voice`)."""
        return choose_voice(voice, language, await self.voices())

    async def render(self, text: str, voice: str = "man", language: str = "en-US") -> Speech:
        """Speak ``text``: from the cache, or from a (possibly shared) espeak-ng run."""
        choice = await self.choose(voice, language)
        key = (text, choice.name)
        pcm = self._cache.get(key)
        if pcm is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return Speech(pcm, choice)
        return Speech(await self._shared(key), choice)

    async def aclose(self) -> None:
        """Cancel every render in progress (their processes are killed)."""
        tasks = [job.task for job in self._jobs.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # --- inside ----------------------------------------------------------------------------

    async def _shared(self, key: tuple[str, str]) -> bytes:
        """Wait for the render of ``key``, starting it if nobody has.

        The render is cancelled (and its process killed) when its last waiter is.
        """
        job = self._jobs.get(key)
        if job is None:
            job = _Job(asyncio.create_task(self._synthesize(key)))
            self._jobs[key] = job
            job.task.add_done_callback(lambda task: self._finished(key, task))
        job.waiters += 1
        try:
            return await asyncio.shield(job.task)
        except asyncio.CancelledError:
            if job.waiters == 1 and not job.task.done():
                job.task.cancel()
                await asyncio.wait([job.task])
            raise
        finally:
            job.waiters -= 1

    def _finished(self, key: tuple[str, str], task: asyncio.Task[bytes]) -> None:
        job = self._jobs.get(key)
        if job is not None and job.task is task:
            del self._jobs[key]
        if not task.cancelled():
            task.exception()  # retrieved: the waiters have it

    async def _synthesize(self, key: tuple[str, str]) -> bytes:
        text, voice = key
        async with self._slots:
            wav = await self._run(["-v", voice, "--stdout", "--stdin", "-b", "1"], text.encode())
        pcm = await asyncio.to_thread(decode_wav, wav)
        self._store(key, pcm)
        return pcm

    def _store(self, key: tuple[str, str], pcm: bytes) -> None:
        """Keep ``pcm``, evicting the least recently used entries over the budget."""
        if len(pcm) > self.cache_bytes or key in self._cache:
            return
        self._cache[key] = pcm
        self._cached += len(pcm)
        while self._cached > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)

    async def _run(self, args: list[str], stdin: bytes) -> bytes:
        """Run the binary with ``args``; its stdout, or SpeechError.  Always reaped."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.binary, *args, stdin=PIPE, stdout=PIPE, stderr=PIPE
            )
        except OSError as exc:
            raise SpeechError(f"cannot run {self.binary!r}: {exc}") from exc
        self.processes += 1
        errors = asyncio.create_task(_read_kept(proc.stderr))
        try:
            async with asyncio.timeout(self.timeout):
                out = await _exchange(proc, stdin)
                code = await proc.wait()
                detail = (await errors).decode("utf-8", "replace").strip()
        except TimeoutError as exc:
            raise SpeechTimeout(
                f"{self.binary} did not finish within {self.timeout} s (killed)"
            ) from exc
        finally:
            if proc.returncode is None:
                with suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            errors.cancel()
        if code != 0:
            first = detail.splitlines()[0] if detail else "no message"
            raise SpeechError(f"{self.binary} {' '.join(args[:2])} exited with {code}: {first}")
        return out


async def _exchange(proc: asyncio.subprocess.Process, stdin: bytes) -> bytes:
    """Write ``stdin``, then read stdout to its end (at most MAX_OUTPUT_BYTES)."""
    if proc.stdin is None or proc.stdout is None:  # pragma: no cover - PIPEs were asked
        raise SpeechError("subprocess pipes missing")
    if stdin:
        # A child that already exited (or closed its input) is judged by its exit code;
        # uvloop raises RuntimeError where asyncio ignores a write to a closed pipe.
        with suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            proc.stdin.write(stdin)
            await proc.stdin.drain()  # the text is small: it fits the pipe buffer
    proc.stdin.close()
    out = bytearray()
    while chunk := await proc.stdout.read(_CHUNK):
        out += chunk
        if len(out) > MAX_OUTPUT_BYTES:
            raise SpeechError(f"espeak-ng output over {MAX_OUTPUT_BYTES} bytes")
    return bytes(out)


async def _read_kept(stream: asyncio.StreamReader | None) -> bytes:
    """Read ``stream`` to its end, keeping its first bytes (error messages)."""
    kept = b""
    while stream is not None and (chunk := await stream.read(_CHUNK)):
        kept += chunk[: max(0, _STDERR_KEPT - len(kept))]
    return kept
