"""Audio for ``<Play>``: signed GET without parameters, size-limited, cached by HTTP headers.

VRB-2: WAV (PCM 16-bit, μ-law, A-law; other rates resampled) of at most 20 MiB, fetched
with a signed GET and cached by its cache headers (``Cache-Control: max-age``, ``no-store``,
``Expires``); a failure is a warning and the verb is skipped, so errors come back as
:class:`AudioFailure` values, never exceptions.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

from dialtone import __version__
from dialtone.media.sources import MAX_WAV_BYTES, AudioError, load_wav
from dialtone.webhooks.signing import SIGNATURE_HEADER, signature

DEFAULT_TTL: Final = 300.0
CACHE_BYTES: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AudioFailure:
    """Why audio could not be played: the Notification code and message (11200, 13420…)."""

    code: int
    message: str


class AudioCache:
    """Fetches and decodes ``<Play>`` audio once per URL while its cache headers allow."""

    def __init__(self, *, timeout: float = 15.0, cache_bytes: int = CACHE_BYTES) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            follow_redirects=True,
            trust_env=False,
            headers={"User-Agent": f"dialtone/{__version__}", "Accept": "audio/*"},
        )
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._budget = cache_bytes
        self._inflight: dict[str, asyncio.Task[bytes | AudioFailure]] = {}

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def pcm(self, url: str, auth_token: str) -> bytes | AudioFailure:
        """PCM16 8 kHz mono for ``url``, or why not."""
        entry = self._entries.get(url)
        if entry is not None and entry[0] > time.monotonic():
            self._entries.move_to_end(url)
            return entry[1]
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.create_task(self._fetch(url, auth_token))
            self._inflight[url] = task
            task.add_done_callback(lambda _t: self._inflight.pop(url, None))
        return await asyncio.shield(task)

    async def _fetch(self, url: str, auth_token: str) -> bytes | AudioFailure:
        headers = {SIGNATURE_HEADER: signature(auth_token, url, None)}
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                if not 200 <= response.status_code < 300:
                    return AudioFailure(11200, f"GET {url} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_WAV_BYTES:
                        return AudioFailure(13420, f"{url}: audio is larger than 20 MiB")
                ttl = _ttl(response.headers)
        except httpx.TimeoutException:
            return AudioFailure(11205, f"GET {url} timed out")
        except httpx.HTTPError as exc:
            return AudioFailure(11205, f"GET {url} failed: {exc}")
        try:
            pcm = await asyncio.to_thread(load_wav, bytes(body))
        except AudioError as exc:
            return AudioFailure(13420, f"{url}: {exc}")
        if ttl > 0:
            self._store(url, pcm, ttl)
        return pcm

    def _store(self, url: str, pcm: bytes, ttl: float) -> None:
        old = self._entries.pop(url, None)
        if old is not None:
            self._bytes -= len(old[1])
        self._entries[url] = (time.monotonic() + ttl, pcm)
        self._bytes += len(pcm)
        while self._bytes > self._budget and self._entries:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= len(dropped)


_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


def _ttl(headers: httpx.Headers) -> float:
    """Seconds the response may be reused: no-store/no-cache → 0; max-age; Expires; else 5 min."""
    control = headers.get("cache-control", "")
    if re.search(r"no-store|no-cache", control, re.IGNORECASE):
        return 0.0
    match = _MAX_AGE.search(control)
    if match:
        return float(match.group(1))
    expires = headers.get("expires")
    if expires:
        try:
            when = parsedate_to_datetime(expires)
            date = parsedate_to_datetime(headers["date"]) if "date" in headers else None
        except (TypeError, ValueError):
            return 0.0
        if date is not None:
            return max(0.0, (when - date).total_seconds())
        return 0.0
    return DEFAULT_TTL
