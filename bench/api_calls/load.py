"""Offer `POST /Calls` at a fixed rate with a bounded number of requests in flight.

Request *i* is due at `start + i / rate`. It is sent when due and a slot is free (at most
`in_flight` requests open, over as many keep-alive connections); a server that answers too
slowly fills the slots, later requests leave late and the achieved rate falls below the
offered one. The response time of a request is measured from when it was sent, not from
when it was due (the lateness is reported separately).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Attempt:
    """One `POST /Calls`."""

    due: float
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    sid: str | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        """Response time (sent → response read)."""
        return self.answered - self.sent


@dataclass
class LoadResult:
    """Every attempt of one step, in due order."""

    rate: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def created(self) -> list[str]:
        """CallSids of the 201 answers."""
        return [a.sid for a in self.attempts if a.status == 201 and a.sid]

    @property
    def failures(self) -> list[Attempt]:
        """Attempts without a 201 (an HTTP error, a refused connection, a timeout)."""
        return [a for a in self.attempts if a.status != 201 or not a.sid]

    @property
    def achieved_rate(self) -> float:
        """Requests sent per second, from the first to the last one sent."""
        sent = sorted(a.sent for a in self.attempts if a.sent)
        if len(sent) < 2:
            return float(len(sent))
        span = sent[-1] - sent[0]
        return (len(sent) - 1) / span if span > 0 else float("inf")

    def percentile_ms(self, fraction: float) -> float:
        """Response time at `fraction` (nearest rank), in ms, over the 201 answers."""
        times = sorted(a.seconds for a in self.attempts if a.status == 201)
        if not times:
            return float("nan")
        rank = max(0, min(len(times) - 1, math.ceil(fraction * len(times)) - 1))
        return 1000.0 * times[rank]

    @property
    def max_late_ms(self) -> float:
        """Worst lateness of a request behind its due time (slots full, harness busy)."""
        late = [a.sent - a.due for a in self.attempts if a.sent]
        return 1000.0 * max(late) if late else 0.0


async def _one(client: httpx.AsyncClient, url: str, form: dict[str, str], attempt: Attempt) -> None:
    attempt.sent = time.monotonic()
    try:
        response = await client.post(url, data=form)
        attempt.status = response.status_code
        if response.status_code == 201:
            attempt.sid = response.json().get("sid")
        else:
            attempt.error = response.text[:300]
    except (httpx.HTTPError, ValueError) as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"
    attempt.answered = time.monotonic()


async def offer(
    *,
    url: str,
    auth: tuple[str, str],
    form: dict[str, str],
    rate: int,
    calls: int,
    in_flight: int,
    timeout: float = 30.0,
) -> LoadResult:
    """Send `calls` requests at `rate`/s, at most `in_flight` at once; wait for them all."""
    result = LoadResult(rate=rate)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    slots = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(auth=auth, limits=limits, timeout=timeout) as client:
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic() + 0.05
        for index in range(calls):
            attempt = Attempt(due=start + index / rate)
            result.attempts.append(attempt)
            delay = attempt.due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()

            async def run(attempt: Attempt = attempt) -> None:
                try:
                    await _one(client, url, form, attempt)
                finally:
                    slots.release()

            tasks.append(asyncio.create_task(run()))
        await asyncio.gather(*tasks)
    return result
