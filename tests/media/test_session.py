"""The backend-independent media seam: digit queue, observers, playback state, SDP glue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dialtone.media.local import LocalMediaEngine, LocalMediaSession
from dialtone.media.ports import PortPool
from dialtone.media.session import (
    DigitQueue,
    Direction,
    MediaClosed,
    MediaEngine,
    MediaSession,
    MediaSessionBase,
    MediaStats,
    configure_from,
)
from dialtone.media.sources import Silence, ToneSource
from dialtone.sip.sdp import MediaChoice, RtpMap


async def test_digits_come_out_in_order() -> None:
    queue = DigitQueue()
    for digit in "12#":
        queue.put(digit)
    assert len(queue) == 3
    assert [await queue.get(0) for _ in range(3)] == ["1", "2", "#"]
    assert await queue.get(0) is None


async def test_get_waits_for_a_digit_or_times_out() -> None:
    queue = DigitQueue()
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, queue.put, "5")
    assert await queue.get(1.0) == "5"
    start = loop.time()
    assert await queue.get(0.05) is None
    assert 0.04 <= loop.time() - start < 0.5
    assert not queue._waiters  # a timed-out wait leaves nothing behind


async def test_clear_forgets_earlier_digits() -> None:
    queue = DigitQueue()
    queue.put("1")
    queue.clear()
    assert await queue.get(0) is None


async def test_close_hands_out_queued_digits_then_raises() -> None:
    queue = DigitQueue()
    waiter = asyncio.create_task(queue.get(None))
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(MediaClosed):
        await waiter
    queue.put("7")  # a last digit that was in flight
    assert await queue.get(None) == "7"
    with pytest.raises(MediaClosed):
        await queue.get(1.0)


def test_stats_as_dict() -> None:
    stats = MediaStats(ssrc=5, packets_sent=2)
    counts = stats.as_dict()
    assert counts["ssrc"] == 5 and counts["packets_sent"] == 2 and counts["remote_ssrc"] is None


class _Session(MediaSessionBase):
    """The base alone, driven by hand as a backend would."""

    closes = 0

    async def close(self) -> None:
        self.closes += 1
        self._close_base()


async def test_digits_reach_queue_observers_and_interrupt_playback() -> None:
    session = _Session()
    seen: list[str] = []
    unsubscribe = session.on_digit(seen.append)
    play = asyncio.create_task(session._run_playback(ToneSource(), True))
    await asyncio.sleep(0)
    session._dispatch_digit("4", bridged=False)
    assert await play is False
    assert seen == ["4"] and len(session.digits) == 1
    # A digit already queued stops an interruptible prompt before it starts (VRB-5).
    assert await session._run_playback(ToneSource(), True) is False
    session.receive_digit("7")  # by SIP INFO: the same path as RFC 4733
    assert seen == ["4", "7"] and session.digits.peek() == "4" and len(session.digits) == 2
    unsubscribe()
    unsubscribe()
    session._dispatch_digit("5", bridged=False)
    assert seen == ["4", "7"]


async def test_while_bridged_digits_go_to_observers_only() -> None:
    session = _Session()
    seen: list[str] = []
    session.on_digit(seen.append)
    session._dispatch_digit("*", bridged=True)
    assert seen == ["*"] and len(session.digits) == 0


async def test_a_failing_observer_does_not_stop_the_others() -> None:
    session = _Session()
    seen: list[str] = []

    def broken(digit: str) -> None:
        raise RuntimeError("observer bug")

    session.on_digit(broken)
    session.on_digit(seen.append)
    session._dispatch_digit("9", bridged=False)
    assert seen == ["9"]


async def test_stop_and_replace_playback() -> None:
    session = _Session()
    first = asyncio.create_task(session._run_playback(ToneSource(), False))
    await asyncio.sleep(0)
    second = asyncio.create_task(session._run_playback(Silence(), False))
    assert await first is False  # replaced
    session.stop_playback()
    assert await second is False
    session.stop_playback()  # nothing playing: no-op


async def test_cancelling_play_clears_it_and_close_fails_waiters() -> None:
    session = _Session()
    play = asyncio.create_task(session._run_playback(ToneSource(), False))
    await asyncio.sleep(0)
    play.cancel()
    with pytest.raises(asyncio.CancelledError):
        await play
    assert session._playback is None
    play = asyncio.create_task(session._run_playback(ToneSource(), False))
    await asyncio.sleep(0)
    async with session:
        pass
    assert session.closes == 1 and session.closed
    with pytest.raises(MediaClosed):
        await play
    with pytest.raises(MediaClosed):
        await session._run_playback(ToneSource(), False)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def configure(
        self,
        remote_host: str,
        remote_port: int,
        payload_type: int,
        telephone_event_pt: int | None,
        direction: Direction = Direction.SENDRECV,
        *,
        codec: str | None = None,
    ) -> None:
        self.calls.append(
            (remote_host, remote_port, payload_type, telephone_event_pt, direction, codec)
        )


def test_configure_from_a_negotiated_choice() -> None:
    choice = MediaChoice(
        media_index=0,
        payload_type=8,
        codec=RtpMap("PCMA", 8000),
        telephone_event_pt=101,
        remote_address="192.0.2.10",
        remote_port=30000,
        direction=Direction.SENDONLY,
        ptime=None,
    )
    recorder = _Recorder()
    configure: Callable[[MediaSession, MediaChoice], None] = configure_from
    configure(recorder, choice)  # type: ignore[arg-type]  # a partial fake
    assert recorder.calls == [("192.0.2.10", 30000, 8, 101, Direction.SENDONLY, "PCMA")]


async def test_the_local_backend_satisfies_the_protocols() -> None:
    engine: MediaEngine = LocalMediaEngine(PortPool(40000, 40999))
    session: MediaSession = engine.open()
    assert isinstance(session, LocalMediaSession)
    assert session.local_address[0] == "127.0.0.1" and engine.in_use() == 1
    await engine.close()
    assert session.closed and engine.in_use() == 0
