"""The in-process media layer over real UDP on 127.0.0.1: pacing, DTMF, bridging, ports."""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import socket
import struct
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import pytest
from structlog.testing import capture_logs

from dialtone.media.codecs import PCMA, PCMU, transcode
from dialtone.media.dtmf import build_event
from dialtone.media.local import FRAME, LocalMediaEngine, LocalMediaSession, _MediaClock
from dialtone.media.ports import NoMediaPorts, PortPool
from dialtone.media.rtp import RtpPacket, RtpSender, parse_rtp
from dialtone.media.session import Direction, MediaClosed
from dialtone.media.sources import FRAME_BYTES, PcmSource, ToneSource
from tests.media.test_ports import free_range

HOST = "127.0.0.1"
TONE_FRAME = struct.pack("<160h", *(round(8000 * math.sin(n / 4)) for n in range(160)))


class Sink:
    """A plain UDP socket read by a thread, stamping each datagram as it arrives.

    A thread, not the event loop, so that arrival times stay honest while a test
    stalls the loop.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.02)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.received: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data))

    def packets(self) -> list[tuple[float, RtpPacket]]:
        return [(t, parse_rtp(data)) for t, data in list(self.received)]

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        self.sock.sendto(data, address)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``predicate`` every 5 ms; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - counters have no event to wait on
            await asyncio.sleep(0.005)


def wire(a: LocalMediaSession, b: LocalMediaSession, pt: int = 0, te: int | None = 101) -> None:
    """Point two sessions at each other with the same codec and telephone-event PT."""
    a.configure(*b.local_address, pt, te)
    b.configure(*a.local_address, pt, te)


@pytest.fixture
def pool() -> PortPool:
    return PortPool(40000, 40999)


@pytest.fixture
async def engine(pool: PortPool) -> AsyncIterator[LocalMediaEngine]:
    engine = LocalMediaEngine(pool)
    yield engine
    await engine.close()
    assert pool.in_use() == 0


async def test_a_tone_arrives_at_50_packets_a_second(engine: LocalMediaEngine) -> None:
    a, b = engine.open(), engine.open()
    wire(a, b)
    play = asyncio.create_task(a.play(ToneSource(off=0)))
    await asyncio.sleep(0.1)
    before = b.stats.audio_received
    await asyncio.sleep(0.5)
    assert 22 <= b.stats.audio_received - before <= 28
    assert b.stats.remote_ssrc == a.stats.ssrc and b.stats.dropped == 0
    a.stop_playback()
    assert await play is False


async def test_frames_comfort_silence_and_rtp_clock(engine: LocalMediaEngine) -> None:
    with Sink() as sink:
        a = engine.open()
        a.configure(*sink.address, 0, 101)
        await asyncio.sleep(0.1)  # nothing plays: comfort silence
        assert await a.play(PcmSource(TONE_FRAME * 10)) is True
        await asyncio.sleep(0.06)
        packets = [p for _, p in sink.packets()]
    silent = PCMU.encode(bytes(FRAME_BYTES))
    kinds = "".join("s" if p.payload == silent else "t" for p in packets)
    assert kinds.strip("s") == "t" * 10 and kinds.startswith("ss") and kinds.endswith("s")
    tone = PCMU.decode(next(p.payload for p in packets if p.payload != silent))
    assert max(abs(s) for s in struct.unpack("<160h", tone)) > 7000
    assert all(p.payload_type == 0 and len(p.payload) == 160 for p in packets)
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    for prev, nxt in itertools.pairwise(packets):
        assert nxt.sequence == (prev.sequence + 1) & 0xFFFF
        assert nxt.timestamp == (prev.timestamp + 160) & 0xFFFFFFFF


async def test_without_comfort_silence_an_idle_stream_is_quiet(pool: PortPool) -> None:
    engine = LocalMediaEngine(pool, comfort_silence=False)
    with Sink() as sink:
        async with engine.open() as a:
            a.configure(*sink.address, 8, None)
            await asyncio.sleep(0.1)
            assert sink.received == []
            assert await a.play(PcmSource(TONE_FRAME * 2)) is True
            await asyncio.sleep(0.05)
            packets = [p for _, p in sink.packets()]
    assert [p.payload_type for p in packets] == [8, 8] and packets[0].marker
    assert packets[0].payload == PCMA.encode(TONE_FRAME)


async def test_pacing_100_frames_take_2_seconds_without_drift(pool: PortPool) -> None:
    engine = LocalMediaEngine(pool, comfort_silence=False)
    with Sink() as sink:
        async with engine.open() as a:
            a.configure(*sink.address, 0, None)
            start = time.monotonic()
            assert await a.play(PcmSource(TONE_FRAME * 100)) is True
            played = time.monotonic() - start
            await asyncio.sleep(0.03)
        times = [t for t, _ in sink.packets()]
    assert len(times) == 100
    assert 1.98 * 0.95 <= times[-1] - times[0] <= 1.98 * 1.05
    assert 1.9 <= played <= 2.1
    errors = [t - times[0] - k * 0.02 for k, t in enumerate(times)]
    assert sorted(abs(e) for e in errors)[50] < 0.01  # most packets near their deadline
    drift = sum(errors[-10:]) / 10 - sum(errors[:10]) / 10
    assert abs(drift) < 0.01  # no creep (a sleep(0.02) loop gains up to 1 ms a tick)


async def test_a_stalled_loop_skips_ahead_instead_of_bursting(engine: LocalMediaEngine) -> None:
    with Sink() as sink:
        a = engine.open()
        a.configure(*sink.address, 0, None)
        play = asyncio.create_task(a.play(ToneSource(off=0)))
        await asyncio.sleep(0.2)
        stall_end = time.monotonic() + 0.2
        asyncio.get_running_loop().call_soon(time.sleep, 0.2)
        await asyncio.sleep(0.25)
        a.stop_playback()
        await play
        times = [t for t, _ in sink.packets()]
    after = [t for t in times if t >= stall_end - 0.005]
    assert after, "packets resumed after the stall"
    burst = max(sum(1 for t in after if s <= t < s + 0.005) for s in after)
    assert burst <= 3
    assert a.stats.skipped_ticks >= 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 0.15  # the stall itself shows as a gap, not as a burst


async def test_digits_are_received_once_each(engine: LocalMediaEngine) -> None:
    a, b = engine.open(), engine.open()
    wire(a, b)
    seen: list[str] = []
    b.on_digit(seen.append)
    assert await a.send_digits("123") is True
    assert [await b.digits.get(0.5) for _ in range(3)] == ["1", "2", "3"]
    assert await b.digits.get(0.05) is None
    assert seen == ["1", "2", "3"]
    assert b.stats.digits_received == 3 and a.stats.digits_sent == 3
    assert b.stats.events_received == 3 * 8  # 5 updates + 3 ends per digit, one press each


async def test_play_stops_at_the_first_digit(engine: LocalMediaEngine) -> None:
    a, b = engine.open(), engine.open()
    wire(a, b)
    loop = asyncio.get_running_loop()
    play = asyncio.create_task(b.play(ToneSource(), interrupt_on_digit=True))
    sent = asyncio.create_task(a.send_digits("5"))
    start = loop.time()
    assert await play is False
    assert loop.time() - start < 0.2
    assert b.digits.peek() == "5"  # the digit stays for the Gather
    assert await b.digits.get(0) == "5"
    await sent
    b.digits.put("6")
    assert await b.play(ToneSource(), interrupt_on_digit=True) is False  # one is queued


async def test_send_digits_needs_telephone_event(engine: LocalMediaEngine) -> None:
    a, b = engine.open(), engine.open()
    wire(a, b, te=None)
    assert await a.send_digits("1") is False
    with pytest.raises(ValueError, match="DTMF"):
        await a.send_digits("x")


async def test_bridge_relays_audio_transcoded_in_the_other_legs_stream(
    pool: PortPool,
) -> None:
    engine = LocalMediaEngine(pool, comfort_silence=False)
    with Sink() as c, Sink() as d:
        a, b = engine.open(), engine.open()
        a.configure(*c.address, 0, 101)  # the caller: PCMU
        b.configure(*d.address, 8, 96)  # the callee: PCMA, its own event PT
        a.bridge(b)
        assert a.peer is b and b.peer is a
        sender = RtpSender(ssrc=0xC0FFEE, sequence=65530, timestamp=0xFFFFFF00)
        payloads = [PCMU.encode(TONE_FRAME[:-2] + bytes([k, 0])) for k in range(8)]
        for payload in payloads:
            c.send(sender.packet(payload, 0), a.local_address)
        c.send(sender.packet(build_event(1, 160), 101, marker=True), a.local_address)
        c.send(b"\x81\xc8\x00\x06" + bytes(24), a.local_address)  # an RTCP SR: ignored
        await until(lambda: len(d.received) == 9)
        packets = [p for _, p in d.packets()]
        audio, event = packets[:8], packets[8]
        assert all(p.ssrc == b.stats.ssrc and p.payload_type == 8 for p in audio)
        assert [p.payload for p in audio] == [transcode(x, PCMU, PCMA) for x in payloads]
        assert audio[0].marker and not any(p.marker for p in audio[1:])
        for prev, nxt in itertools.pairwise(audio):
            assert nxt.sequence == (prev.sequence + 1) & 0xFFFF
            assert nxt.timestamp == (prev.timestamp + 160) & 0xFFFFFFFF
        assert event.payload_type == 96 and event.ssrc == b.stats.ssrc and event.marker
        assert event.timestamp == (audio[-1].timestamp + 160) & 0xFFFFFFFF
        assert a.stats.rtcp_ignored == 1 and b.stats.relayed == 9
        await engine.close()


async def test_c_to_a_bridged_to_b_to_d(engine: LocalMediaEngine) -> None:
    c, a, b, d = (engine.open() for _ in range(4))
    wire(c, a, pt=0, te=101)
    wire(b, d, pt=8, te=96)
    ringback = asyncio.create_task(a.play(ToneSource()))
    await asyncio.sleep(0.05)
    seen: list[str] = []
    a.on_digit(seen.append)  # hangupOnStar's hook sees the caller's digits
    a.bridge(b)
    assert await ringback is False  # bridging stops the ringback
    assert await a.play(ToneSource()) is False  # no local playback while bridged
    voice = asyncio.create_task(c.play(ToneSource(off=0)))
    await asyncio.sleep(0.1)
    before = d.stats.audio_received
    await asyncio.sleep(0.2)
    assert 8 <= d.stats.audio_received - before <= 12
    assert d.stats.remote_ssrc == b.stats.ssrc and d.stats.dropped == 0
    assert await c.send_digits("123") is True
    assert [await d.digits.get(0.5) for _ in range(3)] == ["1", "2", "3"]
    assert seen == ["1", "2", "3"] and len(a.digits) == 0  # bridged: not queued on A
    a.receive_digit("*")  # a SIP INFO digit is observed the same way
    assert seen[-1] == "*" and len(a.digits) == 0
    c.stop_playback()
    await voice
    a.unbridge()
    assert a.peer is None and b.peer is None
    assert await b.play(PcmSource(TONE_FRAME * 3)) is True  # B has its stream back


async def test_events_are_dropped_when_the_other_leg_has_none(
    engine: LocalMediaEngine,
) -> None:
    c, a, b, d = (engine.open() for _ in range(4))
    wire(c, a)
    wire(b, d, te=None)
    seen: list[str] = []
    a.on_digit(seen.append)
    a.bridge(b)
    await c.send_digits("*")
    await asyncio.sleep(0.05)
    assert seen == ["*"] and a.stats.dropped == 8
    assert d.stats.events_received == 0 and d.stats.dropped == 0


async def test_symmetric_rtp_latches_to_the_real_source(engine: LocalMediaEngine) -> None:
    a, b = engine.open(), engine.open()
    with Sink() as nowhere:
        a.configure(*b.local_address, 0, None)
        b.configure(*nowhere.address, 0, None)  # B's SDP says "nowhere", A sends anyway
        await until(lambda: a.stats.audio_received > 5)
        assert b.remote.latched == a.local_address
        assert b.stats.dropped == 2  # the probation packets
        silent_before = len(nowhere.received)
        await asyncio.sleep(0.05)
        assert len(nowhere.received) == silent_before  # no longer sent there


async def test_without_symmetric_rtp_the_sdp_address_is_used(pool: PortPool) -> None:
    engine = LocalMediaEngine(pool, symmetric_rtp=False)
    a, b = engine.open(), engine.open()
    with Sink() as sdp_address:
        a.configure(*b.local_address, 0, None)
        b.configure(*sdp_address.address, 0, None)
        await until(lambda: len(sdp_address.received) > 3 and b.stats.audio_received > 3)
        assert a.stats.audio_received == 0
    await engine.close()


async def test_hold_and_directions(engine: LocalMediaEngine) -> None:
    a, b = engine.open(), engine.open()
    with Sink() as sink:
        a.configure("0.0.0.0", sink.address[1], 0, None)  # hold
        b.configure(*sink.address, 0, None, Direction.RECVONLY)
        await asyncio.sleep(0.1)
        assert sink.received == []
    a.configure(*b.local_address, 0, None, Direction.SENDONLY)
    b.configure(*a.local_address, 0, None)
    await until(lambda: b.stats.audio_received > 2 and a.stats.dropped > 2)
    assert a.stats.audio_received == 0


async def test_foreign_and_malformed_packets_are_counted(engine: LocalMediaEngine) -> None:
    a, b = engine.open(), engine.open()
    wire(a, b)
    with Sink() as stranger:
        for data in (b"junk", RtpSender().packet(b"\xff" * 160, 0)):
            stranger.send(data, a.local_address)
        stranger.send(RtpSender().packet(b"\x01" * 4, 13), b.local_address)
        await until(lambda: a.stats.malformed == 1 and a.stats.dropped >= 1)
    await until(lambda: b.stats.audio_received > 0)  # latched to A, not to the stranger
    assert b.remote.latched == a.local_address


async def test_ports_are_released_on_every_path(pool: PortPool) -> None:
    engine = LocalMediaEngine(pool)

    async def verb() -> None:
        async with engine.open():
            assert pool.in_use() == 1
            raise RuntimeError("verb failed")

    with pytest.raises(RuntimeError, match="verb failed"):
        await verb()
    assert pool.in_use() == 0

    session = engine.open()
    play = asyncio.create_task(session.play(ToneSource()))
    digit = asyncio.create_task(session.digits.get(None))
    await asyncio.sleep(0.03)
    await session.close()
    await session.close()
    assert pool.in_use() == 0
    for waiter in (play, digit):
        with pytest.raises(MediaClosed):
            await waiter
    with pytest.raises(MediaClosed):
        await session.play(ToneSource())


async def test_a_crashing_pacer_releases_its_port(
    pool: PortPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = LocalMediaEngine(pool)
    session = engine.open()

    def crash() -> None:
        raise RuntimeError("pacer bug")

    monkeypatch.setattr(session, "_tick", crash)
    await until(lambda: session.closed)
    assert pool.in_use() == 0 and isinstance(session.error, RuntimeError)
    await session.close()

    async def call() -> None:
        async with asyncio.TaskGroup() as group:
            owned = engine.open(task_group=group)
            monkeypatch.setattr(owned, "_tick", crash)

    with pytest.raises(ExceptionGroup) as info:
        await call()
    assert info.group_contains(RuntimeError, match="pacer bug")
    assert pool.in_use() == 0


async def test_a_task_group_session_ends_with_its_call(pool: PortPool) -> None:
    engine = LocalMediaEngine(pool)
    async with asyncio.TaskGroup() as group:
        session = engine.open(task_group=group)
        assert await session.play(PcmSource(TONE_FRAME)) is True
        await session.close()
    assert pool.in_use() == 0


async def test_a_failing_call_group_closes_its_session(pool: PortPool) -> None:
    engine = LocalMediaEngine(pool)
    opened: list[LocalMediaSession] = []

    async def fail() -> None:
        raise ValueError("call failed")

    async def call() -> None:
        async with asyncio.TaskGroup() as group:
            opened.append(engine.open(task_group=group))
            group.create_task(fail())
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:  # the group is failing: no new session in it
                with pytest.raises(RuntimeError, match="shutting down"):
                    engine.open(task_group=group)
                raise

    with pytest.raises(ExceptionGroup) as info:
        await call()
    assert info.group_contains(ValueError) and not info.group_contains(RuntimeError)
    assert opened[0].closed and opened[0].error is None
    assert pool.in_use() == 0 and not engine._clock.running


async def test_one_sessions_crash_leaves_the_clock_and_the_others_running(
    engine: LocalMediaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sink() as sink:
        a, b = engine.open(), engine.open()
        a.configure(*sink.address, 0, None)
        b.configure(*sink.address, 0, None)

        def crash() -> None:
            raise RuntimeError("tick bug")

        with capture_logs() as logs:
            monkeypatch.setattr(a, "_tick", crash)
            await until(lambda: a.closed)
        assert [e["event"] for e in logs] == ["media.pacer_failed"]
        assert logs[0]["port"] == a.port and isinstance(a.error, RuntimeError)
        assert engine._clock.running and engine.in_use() == 1
        before = b.stats.packets_sent
        await asyncio.sleep(0.1)
        assert 2 <= b.stats.packets_sent - before <= 8  # b's ticks go on
        assert not b.closed and b.error is None


async def test_the_clock_runs_only_while_a_session_is_open(pool: PortPool) -> None:
    engine = LocalMediaEngine(pool)
    clock = engine._clock
    assert not clock.running
    a = engine.open()
    assert clock.running
    b = engine.open()
    await a.close()
    assert clock.running  # b still needs it
    await b.close()
    assert not clock.running  # an idle server does not wake 50 times a second
    with Sink() as sink:
        c = engine.open()  # a new grid
        assert clock.running
        c.configure(*sink.address, 0, None)
        await until(lambda: len(sink.received) >= 3)
        await engine.close()
    assert not clock.running and c.closed and pool.in_use() == 0


async def test_a_session_opened_later_ticks_on_the_same_grid(engine: LocalMediaEngine) -> None:
    with Sink() as sink:
        a = engine.open()
        a.configure(*sink.address, 0, None)
        await asyncio.sleep(0.05)
        opened = time.monotonic()
        b = engine.open()
        b.configure(*sink.address, 0, None)
        await until(lambda: b.stats.packets_sent >= 5)
        await asyncio.sleep(0.01)
        packets = sink.packets()
    first = next(t for t, p in packets if p.ssrc == b.stats.ssrc)
    assert first - opened < FRAME + 0.03  # the next tick of the grid (within 20 ms)
    pairs = [
        min(abs(t - u) for u, q in packets if q.ssrc == a.stats.ssrc)
        for t, p in packets
        if p.ssrc == b.stats.ssrc
    ]
    assert sorted(pairs)[len(pairs) // 2] < 0.005  # mostly sent with a's packets


async def test_a_stall_as_the_bridge_ends_is_not_counted_twice(pool: PortPool) -> None:
    """Unbridged, a leg's RTP clock goes on from the last relayed packet by the time that
    passed; a stall then must not add the ticks skipped on top of that."""
    engine = LocalMediaEngine(pool)  # comfort silence: B sends each tick once unbridged
    with Sink() as caller, Sink() as callee:
        a, b = engine.open(), engine.open()
        a.configure(*caller.address, 0, None)
        b.configure(*callee.address, 0, None)
        await asyncio.sleep(0.05)
        a.bridge(b)
        voice = RtpSender(ssrc=0xCA11)
        for _ in range(3):
            caller.send(voice.packet(PCMU.encode(TONE_FRAME), 0), a.local_address)
            await asyncio.sleep(FRAME)
        await until(lambda: b.stats.relayed == 3)
        a.unbridge()
        asyncio.get_running_loop().call_soon(time.sleep, 0.2)  # a stall, just after
        await asyncio.sleep(0)
        stalled = b.stats.packets_sent
        await until(lambda: b.stats.packets_sent >= stalled + 6)
        await asyncio.sleep(0.01)
        assert b.stats.skipped_ticks >= 5
        await engine.close()
        packets = callee.packets()
    relayed_at, relayed = max((t, p) for t, p in packets if p.payload != PCMU.encode(bytes(320)))
    after = [(t, p) for t, p in packets if t > relayed_at + 0.1]
    assert len(after) >= 5
    for sent_at, packet in after:  # the RTP clock keeps with the time, before and after
        frames = ((packet.timestamp - relayed.timestamp) & 0xFFFFFFFF) / 160
        assert abs(frames - (sent_at - relayed_at) / FRAME) <= 2


async def test_a_closed_session_is_freed_by_reference_counting(pool: PortPool) -> None:
    """No reference cycle outlives close(): the socket's callback, the bridge, waiters
    woken by the close (their futures' exceptions) and the group's task are let go."""
    engine = LocalMediaEngine(pool)
    gc.collect()
    gc.disable()
    try:
        refs = []
        async with asyncio.TaskGroup() as group:
            c, a = engine.open(), engine.open()
            b, d = engine.open(task_group=group), engine.open()
            wire(c, a)
            wire(b, d)
            seen: list[str] = []
            a.on_digit(seen.append)
            assert await a.play(PcmSource(TONE_FRAME * 2)) is True
            assert await c.send_digits("1") is True
            assert await a.digits.get(0.5) == "1"
            a.bridge(b)
            assert await c.send_digits("2") is True
            assert await d.digits.get(0.5) == "2"
            a.unbridge()
            waits: list[asyncio.Task[Any]] = [
                asyncio.create_task(a.play(ToneSource())),
                asyncio.create_task(a.send_digits("123")),
                asyncio.create_task(a.digits.get(None)),
            ]
            await asyncio.sleep(0.03)
            for session in (a, b, c, d):
                await session.close()
            for wait in waits:
                with pytest.raises(MediaClosed):
                    await wait
            assert seen == ["1", "2"] and a.stats.digits_received == 2
            refs = [weakref.ref(session) for session in (a, b, c, d)]
            del a, b, c, d, session, waits, wait
        assert [ref() for ref in refs] == [None] * 4
    finally:
        gc.enable()
    assert pool.in_use() == 0 and not engine._clock.running


class _FakeLoop:
    """What the clock asks of a loop: ``time`` (set by the test) and ``call_at``."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.timers: list[float] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        self.timers.append(when)
        return asyncio.TimerHandle(when, callback, (), asyncio.get_running_loop())


class _FakeSession:
    """Records what the clock did to it; ``_tick`` raises when told to."""

    def __init__(self, clock: _MediaClock, log: list[tuple[str, Any]], name: str) -> None:
        self.clock, self.log, self.name = clock, log, name
        self.fail = False
        self.closes: _FakeSession | None = None

    def _late(self, behind: int) -> None:
        self.log.append((self.name, ("late", behind)))

    def _tick(self) -> None:
        self.log.append((self.name, "tick"))
        if self.closes is not None:
            self.clock.discard(self.closes)  # type: ignore[arg-type]
        if self.fail:
            raise RuntimeError("bug")

    def _crash(self, exc: Exception) -> None:
        self.log.append((self.name, ("crash", str(exc))))
        self.clock.discard(self)  # type: ignore[arg-type]


async def test_the_clock_keeps_a_fixed_grid_bursts_a_little_and_skips_a_stall() -> None:
    clock = _MediaClock()
    loop = _FakeLoop(1000.0)
    clock._loop, clock._start, clock._next = loop, 1000.0, 1  # type: ignore[assignment]
    log: list[tuple[str, Any]] = []
    a, b = _FakeSession(clock, log, "a"), _FakeSession(clock, log, "b")
    clock.sessions.update({a: None, b: None})  # type: ignore[dict-item]

    def run(at: float) -> list[tuple[str, Any]]:
        loop.now = 1000.0 + at
        clock._run()
        taken = log[:]
        log.clear()
        return taken

    assert run(0.0203) == [("a", "tick"), ("b", "tick")]  # a late wake-up: no drift
    assert loop.timers[-1] == pytest.approx(1000.04)
    assert run(0.0399) == [("a", "tick"), ("b", "tick")]  # a little early: still tick 2
    assert loop.timers[-1] == pytest.approx(1000.06)
    assert run(0.105) == [("a", ("late", 2)), ("a", "tick"), ("b", ("late", 2)), ("b", "tick")]
    assert loop.timers[-1] == pytest.approx(1000.08)  # due already: the next turn
    assert run(0.106)[0] == ("a", ("late", 1))
    assert run(0.107) == [("a", "tick"), ("b", "tick")]  # caught up: 3 back to back
    assert loop.timers[-1] == pytest.approx(1000.12)
    assert run(0.2501)[0] == ("a", ("late", 6))  # stalled: ticks 6-11 skipped, 12 runs
    assert loop.timers[-1] == pytest.approx(1000.26)
    a.fail = True  # a's tick raises: a is done, b and the clock go on
    assert run(0.26) == [("a", "tick"), ("a", ("crash", "bug")), ("b", "tick")]
    assert loop.timers[-1] == pytest.approx(1000.28) and list(clock.sessions) == [b]
    c = _FakeSession(clock, log, "c")
    clock.sessions[c] = None  # type: ignore[index]
    b.closes = c  # a session closing another during the tick: the snapshot is ticked
    assert run(0.28) == [("b", "tick"), ("c", "tick")] and list(clock.sessions) == [b]
    b.closes = b  # the last one closes: the timer stops
    assert run(0.30) == [("b", "tick")] and not clock.running


async def test_a_failing_source_fails_its_play_only(engine: LocalMediaEngine) -> None:
    class Broken:
        def next_frame(self) -> bytes | None:
            raise OSError("disk gone")

    session = engine.open()
    with pytest.raises(OSError, match="disk gone"):
        await session.play(Broken())
    assert await session.play(PcmSource(TONE_FRAME)) is True


async def test_no_media_ports_when_the_range_is_exhausted() -> None:
    pool = PortPool(*free_range(1))
    engine = LocalMediaEngine(pool)
    session = engine.open()
    with pytest.raises(NoMediaPorts):
        engine.open()
    assert pool.in_use() == 1
    await session.close()
    assert pool.in_use() == 0
    await engine.open().close()


async def test_bridge_misuse(engine: LocalMediaEngine) -> None:
    a = engine.open()
    with pytest.raises(ValueError, match="itself"):
        a.bridge(a)
    with pytest.raises(TypeError):
        a.bridge(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="IPv4 or IPv6"):
        a.configure("pbx.example.com", 4000, 0, None)


async def test_encoded_frames_are_cached_within_bounds(
    pool: PortPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dialtone.media.local.ENCODE_CACHE", 4)
    engine = LocalMediaEngine(pool)
    with Sink() as sink:
        async with engine.open() as a:
            a.configure(*sink.address, 0, None)
            frames = [TONE_FRAME[:-2] + bytes([k, 0]) for k in range(6)]
            assert await a.play(PcmSource(b"".join(frames))) is True
            await asyncio.sleep(0.03)
            cache = engine._caches["PCMU"]
            assert 0 < len(cache) <= 4
        sent = [p.payload for _, p in sink.packets()]
    assert [PCMU.encode(f) for f in frames] == [p for p in sent if p != PCMU.encode(bytes(320))]


# ------------------------------------------------ a press in progress at the bridge (WSP-3)
#
# These drive the receive path synchronously: packets go straight into the session's
# datagram handler and the relayed ones are captured at the other leg's socket, so no
# time passes and nothing sleeps (the clock never gets a turn: nothing here awaits).

CALLER_END, CALLEE_END = (HOST, 5004), (HOST, 5006)


class Captured:
    """Stands in for a session's RtpSocket: records what the session sends."""

    def __init__(self, real: object) -> None:
        self._real = real
        self.sent: list[RtpPacket] = []

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        self.sent.append(parse_rtp(data))

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


class Far:
    """A far end's RTP stream into one session: audio frames and RFC 4733 key presses."""

    def __init__(self, session: LocalMediaSession, source: tuple[str, int], pt: int, te: int):
        self.session, self.source, self.pt, self.te = session, source, pt, te
        self.rtp = RtpSender(ssrc=0x5EED0000 + source[1], timestamp=48000)

    def audio(self) -> None:
        self.session._datagram(self.rtp.packet(PCMU.encode(TONE_FRAME), self.pt), self.source)

    def press(self, code: int, updates: int, *, marker: bool = True) -> int:
        """Start a key press: ``updates`` packets from its start; returns its timestamp."""
        start = self.rtp.timestamp
        for k in range(updates):
            self.event(start, code, (k + 1) * 160, marker=marker and k == 0)
        return start

    def event(
        self, start: int, code: int, duration: int, *, end: bool = False, marker: bool = False
    ) -> None:
        payload = build_event(code, duration, end=end)
        data = self.rtp.packet(payload, self.te, marker=marker, timestamp=start)
        self.session._datagram(data, self.source)

    def finish(self, start: int, code: int, duration: int, ends: int = 3) -> None:
        """The end packets of the press that began at ``start``."""
        for _ in range(ends):
            self.event(start, code, duration, end=True)


@pytest.fixture
async def legs(pool: PortPool) -> AsyncIterator[tuple[LocalMediaSession, LocalMediaSession]]:
    """The caller's leg A (PCMU, event PT 101) and a branch B (PCMA, event PT 96), each
    pointed at its far end and with its sent packets captured."""
    engine = LocalMediaEngine(pool, comfort_silence=False)
    a, b = engine.open(), engine.open()
    a.configure(*CALLER_END, 0, 101)
    b.configure(*CALLEE_END, 8, 96)
    a._rtp, b._rtp = Captured(a._rtp), Captured(b._rtp)  # type: ignore[assignment]
    yield a, b
    await engine.close()


def sent(session: LocalMediaSession) -> list[RtpPacket]:
    rtp = session._rtp
    assert isinstance(rtp, Captured)
    return rtp.sent


def events(session: LocalMediaSession, pt: int) -> list[tuple[int, int, bool, int, bool]]:
    """(timestamp, code, end, duration, marker) of the events the session sent."""
    return [
        (
            p.timestamp,
            p.payload[0],
            p.payload[1] >= 0x80,
            (p.payload[2] << 8) | p.payload[3],
            p.marker,
        )
        for p in sent(session)
        if p.payload_type == pt
    ]


async def test_the_callees_press_in_progress_at_the_bridge_is_not_relayed(
    legs: tuple[LocalMediaSession, LocalMediaSession],
) -> None:
    """The whisper's accepting key: counted by B's Gather, none of it reaches the caller."""
    a, b = legs
    callee = Far(b, CALLEE_END, 8, 96)
    start = callee.press(1, 2)  # "1" goes down; the Gather takes it and accepts
    assert b.digits.peek() == "1" and b.stats.digits_received == 1
    a.bridge(b)
    callee.audio()
    for k in range(3, 6):  # the rest of the press: updates, ends, a retransmitted end
        callee.event(start, 1, k * 160)
    callee.finish(start, 1, 800, ends=4)
    callee.audio()
    assert events(a, 101) == [], "the tail of the accepting key reached the caller"
    assert [p.payload_type for p in sent(a)] == [0, 0]  # the audio is relayed
    assert b.stats.dropped == 3 + 4 and b.stats.digits_received == 1
    again = callee.press(1, 5)  # the callee presses "1" again: a new press, relayed
    callee.finish(again, 1, 800)
    relayed = events(a, 101)
    assert len(relayed) == 8 and [e[1] for e in relayed] == [1] * 8
    assert [e[4] for e in relayed] == [True] + [False] * 7  # one press, marked once
    assert len({e[0] for e in relayed}) == 1
    assert b.stats.digits_received == 2 and len(b.digits) == 1  # bridged: not queued


async def test_after_the_bridge_every_new_press_is_relayed_both_ways(
    legs: tuple[LocalMediaSession, LocalMediaSession],
) -> None:
    """hangupOnStar's hook and plain DTMF passthrough see the presses made after the bridge;
    the caller's own press in progress at the bridge stays on its side too."""
    a, b = legs
    caller, callee = Far(a, CALLER_END, 0, 101), Far(b, CALLEE_END, 8, 96)
    seen: list[str] = []
    a.on_digit(seen.append)
    ringing = caller.press(5, 3)  # "5" during the ringback
    a.bridge(b)
    caller.event(ringing, 5, 640)
    caller.finish(ringing, 5, 800)
    assert events(b, 96) == [] and seen == ["5"]
    star = caller.press(10, 5)  # "*": observed (DIAL-37) and relayed
    caller.finish(star, 10, 800)
    assert seen == ["5", "*"]
    assert [e[1] for e in events(b, 96)] == [10] * 8
    digit = callee.press(9, 5)  # the callee's "9" reaches the caller
    callee.finish(digit, 9, 800)
    assert [e[1] for e in events(a, 101)] == [9] * 8
    assert a.stats.dropped == 4 and b.stats.dropped == 0


async def test_late_packets_of_earlier_presses_are_not_relayed(
    legs: tuple[LocalMediaSession, LocalMediaSession],
) -> None:
    a, b = legs
    callee = Far(b, CALLEE_END, 8, 96)
    first = callee.press(2, 5)
    callee.finish(first, 2, 800)
    callee.audio()
    second = callee.press(3, 1)
    a.bridge(b)
    callee.event(first, 2, 800, end=True)  # reordered: a retransmitted end of the first
    callee.event(second, 3, 320)
    assert events(a, 101) == []
    callee.press(4, 1)
    assert [(e[1], e[4]) for e in events(a, 101)] == [(4, True)]
    assert b.stats.dropped == 2


async def test_a_key_held_across_the_bridge_stays_unrelayed_in_its_next_segment(
    legs: tuple[LocalMediaSession, LocalMediaSession],
) -> None:
    """RFC 4733 §2.5.1.3: a key held past 8.2 s goes on as a new segment (a new timestamp,
    no marker); it is still the press that began before the bridge."""
    a, b = legs
    callee = Far(b, CALLEE_END, 8, 96)
    start = callee.press(7, 1)
    callee.event(start, 7, 0xFFFF)  # the first segment is full
    a.bridge(b)
    segment = (start + 0xFFFF) & 0xFFFFFFFF
    callee.event(segment, 7, 160)
    callee.event(segment, 7, 320)
    callee.finish(segment, 7, 480)
    assert events(a, 101) == [] and b.stats.digits_received == 1
    other = (segment + 480 + 480) & 0xFFFFFFFF  # a new press of the same key: marked
    callee.event(other, 7, 160, marker=True)
    assert [(e[1], e[4]) for e in events(a, 101)] == [(7, True)]


async def test_a_new_press_whose_first_packet_was_lost_is_relayed(
    legs: tuple[LocalMediaSession, LocalMediaSession],
) -> None:
    """Without the marker a new timestamp is still a new press unless it continues a held
    key (the detector's rule): short presses never merge."""
    a, b = legs
    callee = Far(b, CALLEE_END, 8, 96)
    start = callee.press(1, 2)
    a.bridge(b)
    callee.finish(start, 1, 800)
    callee.audio()
    callee.press(1, 2, marker=False)
    assert b.stats.digits_received == 2
    assert [(e[1], e[2], e[3]) for e in events(a, 101)] == [(1, False, 160), (1, False, 320)]


async def test_a_new_bridge_judges_presses_again(
    legs: tuple[LocalMediaSession, LocalMediaSession],
) -> None:
    """Unbridged, the leg's presses are its own again; a second bridge (another Dial)
    holds back only the press in progress at that bridge."""
    a, b = legs
    callee = Far(b, CALLEE_END, 8, 96)
    first = callee.press(1, 2)
    a.bridge(b)
    a.unbridge()
    callee.finish(first, 1, 800)
    second = callee.press(2, 2)
    assert b.digits.peek() == "1" and len(b.digits) == 2
    a.bridge(b)
    callee.finish(second, 2, 800)
    callee.press(3, 1)
    assert [e[1] for e in events(a, 101)] == [3]


async def test_a_recvonly_leg_bridged_relays_one_way_until_it_is_reconfigured(
    legs: tuple[LocalMediaSession, LocalMediaSession],
) -> None:
    """DIAL-31's early media: the branch B, pointed at its 183's SDP as ``recvonly`` and
    bridged, reaches the caller A; nothing of A reaches B until B's answer re-points it."""
    a, b = legs
    caller, callee = Far(a, CALLER_END, 0, 101), Far(b, CALLEE_END, 8, 96)
    b.configure(*CALLEE_END, 8, 96, Direction.RECVONLY)
    a.bridge(b)
    callee.audio()
    tone = callee.press(3, 1)  # an announcement's tone, say
    caller.audio()
    caller.press(4, 1)
    assert [p.payload_type for p in sent(a)] == [0, 101] and sent(b) == []
    assert a.stats.dropped == 2
    b.configure(*CALLEE_END, 8, 96)  # the 2xx: both ways, the same bridge
    callee.finish(tone, 3, 160)
    caller.audio()
    assert [p.payload_type for p in sent(b)] == [8]
    assert [p.payload_type for p in sent(a)] == [0, 101, 101, 101, 101]
