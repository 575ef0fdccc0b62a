"""In-process G.711 media: RTP sockets driven by asyncio (design.md §2, layer 2).

:class:`LocalMediaEngine` opens :class:`LocalMediaSession` s on ports of a
:class:`~dialtone.media.ports.PortPool`; each session implements
:class:`~dialtone.media.session.MediaSession` over one non-blocking UDP socket.

Pacing: one media clock per engine, no task per session.  It is a timer of the loop
(``call_at``) on a fixed 20 ms grid anchored where it started: tick ``n`` is due at
``start + n·20 ms`` (never ``sleep(0.02)`` in a row, which drifts), and each tick ticks
every open session, in the order they opened.  A session's tick sends one packet: the
playing source's next frame in the negotiated codec, a telephone-event while
``send_digits`` runs, or, when nothing plays and
:attr:`~LocalMediaSession.comfort_silence` is on, encoded silence (keeps NAT bindings
and phones' media timers alive); else the RTP clock just advances.  A bridged session's
tick sends nothing (the bridge owns its stream) and costs next to nothing, as does an
idle one without comfort silence.  A session opened while the clock runs gets its first
tick at the next tick of the grid (within 20 ms); the clock runs only while a session is
open (the last close stops its timer, the next open starts a new grid), so an idle
server does not wake up.  Woken late, the clock runs the ticks due, at most
:data:`MAX_BURST` back to back (one per turn of the loop; each counts in
``stats.late_ticks``); further behind (a stalled loop) it skips ahead: each session
counts the ticks given up in ``stats.skipped_ticks``, its RTP timestamp jumps with the
marker set, and its source resumes where it was (the prompt is delayed, not cut).
Encoded frames are cached per engine: ringback and cached prompts repeat the same frames.

Receiving: RTCP is ignored; telephone-events feed a
:class:`~dialtone.media.dtmf.DtmfDetector` (each key press once) into the digit queue
and the ``on_digit`` observers.  Symmetric RTP by default (``symmetric_rtp``): packets
go where the far end's come from, latched as :class:`~dialtone.media.ports.RemoteAddress`
describes.

Bridging: a leg's incoming audio and events go out of the *other* leg's stream (its
SSRC, sequence and RTP clock), PCMU↔PCMA transcoded when the codecs differ, events
re-numbered to its telephone-event PT (dropped when it has none); no local playback.
A key press that began before the bridge is not relayed: its remaining packets (updates,
the three end packets, their retransmissions) carry the event's first timestamp, which
the other party would take for a new press, so every event packet of the leg's stream
at or before the newest event seen when the bridge was made (within the detector's
10 s reorder window), and the §2.5.1.3 continuation segments of that event if the key
is still held, are dropped: a whisper's accepting digit stays the whisper's (WSP-3,
DIAL-33).  The next press has a new timestamp and is relayed.

Lifetime: :meth:`~LocalMediaSession.close` (or leaving ``async with``) closes the socket,
releases the port and leaves the clock at once (DOC-12).  An exception from a session's
tick is that session's end alone: it is kept in :attr:`~LocalMediaSession.error`, logged
(``media.pacer_failed``) and the session released; the clock and the other sessions go
on.  With ``task_group`` the session puts a small task into the call's group that ends
with the session and raises its error if its tick crashed (so a crash fails the group;
cancelling the group closes the session): close the session inside the group's body.
A closed session holds no reference cycle (its socket drops the callback, its bridge,
waiters and task are let go), so reference counting alone frees it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

import structlog

from dialtone.media.codecs import PCMU, codec_for, transcode
from dialtone.media.dtmf import DtmfDetector, DtmfSender
from dialtone.media.ports import PortPool, RemoteAddress, RtpSocket
from dialtone.media.rtp import RtpError, RtpPacket, RtpReceiver, RtpSender, is_rtcp, parse_rtp
from dialtone.media.session import (
    Direction,
    MediaClosed,
    MediaSession,
    MediaSessionBase,
    MediaStats,
)
from dialtone.media.sources import FRAME_SAMPLES, SILENT_FRAME, Source

__all__ = ["FRAME", "MAX_BURST", "LocalMediaEngine", "LocalMediaSession"]

log = structlog.get_logger("dialtone.media.local")

FRAME: Final = 0.02
"""Seconds per tick: one 20 ms frame of 160 samples."""
MAX_BURST: Final = 3
"""Most ticks a late clock runs back to back before it skips ahead instead."""
ENCODE_CACHE: Final = 4096
"""Encoded frames the engine remembers per codec (about 2.5 MB when full)."""
_MASK: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000
_STALE: Final = 10 * 8000
"""How far behind the bridge's event an event packet still counts as before the bridge
(the detector's reorder window: 10 s of the 8 kHz telephone-event clock)."""
_SEGMENT: Final = 0xFFFF + 160
"""Farthest a held key's next segment starts after the previous one (RFC 4733 §2.5.1.3)."""
_LONG_SEGMENT: Final = 0xFFFF - 8000
"""A segment this long may be continued by another (as in the DtmfDetector)."""


@dataclass(frozen=True, slots=True)
class _Event:
    """One telephone-event as a leg received it: the stream, its start, what it is."""

    ssrc: int
    timestamp: int
    code: int
    ended: bool
    duration: int  # the longest duration reported so far

    def merge(self, report: _Event) -> _Event:
        """This event after ``report``: a packet of the same event, or a newer one."""
        if (report.ssrc, report.timestamp) != (self.ssrc, self.timestamp):
            return report
        return _Event(
            self.ssrc,
            self.timestamp,
            self.code,
            self.ended or report.ended,
            max(self.duration, report.duration),
        )

    def held(self, report: _Event) -> bool:
        """Whether ``report`` (no marker) continues this event, a key held past the 16-bit
        duration (RFC 4733 §2.5.1.3; the same test as the DtmfDetector's)."""
        ahead = (report.timestamp - self.timestamp) & _MASK
        return (
            not self.ended
            and report.code == self.code
            and self.duration >= _LONG_SEGMENT
            and 0 < ahead <= _SEGMENT
        )


class _MediaClock:
    """An engine's 20 ms grid: tick ``n`` at ``start + n·FRAME`` for every open session.

    :meth:`add` starts the timer with the first session, :meth:`discard` stops it after
    the last one (module doc).
    """

    __slots__ = ("_handle", "_loop", "_next", "_start", "sessions")

    def __init__(self) -> None:
        self.sessions: dict[LocalMediaSession, None] = {}
        """The open sessions, in the order they opened (a dict as an ordered set)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._next = 0  # the number of the next tick

    @property
    def running(self) -> bool:
        """Whether the timer is set (some session is open)."""
        return self._handle is not None

    def add(self, session: LocalMediaSession) -> None:
        """Tick ``session`` from the next tick on; start the grid if it is the first."""
        self.sessions[session] = None
        loop = asyncio.get_running_loop()
        if self._handle is None or self._loop is not loop:  # (an engine used in a new loop)
            self.stop()
            self._loop, self._start, self._next = loop, loop.time(), 1
            self._handle = loop.call_at(self._start + FRAME, self._run)

    def discard(self, session: LocalMediaSession) -> None:
        """Stop ticking ``session``; stop the timer when no session is left."""
        self.sessions.pop(session, None)
        if not self.sessions:
            self.stop()

    def stop(self) -> None:
        """Cancel the timer (:meth:`add` starts a new grid); idempotent."""
        handle, self._handle, self._loop = self._handle, None, None
        if handle is not None:
            handle.cancel()

    def _run(self) -> None:
        """Tick ``self._next`` (or, stalled, the newest tick due) and set the next timer."""
        loop = self._loop
        assert loop is not None
        tick = self._next
        behind = int((loop.time() - self._start - tick * FRAME) / FRAME)  # more ticks due
        if behind >= MAX_BURST:  # stalled: skip ahead, don't burst
            tick += behind
        self._next = tick + 1
        self._handle = loop.call_at(self._start + (tick + 1) * FRAME, self._run)
        for session in tuple(self.sessions):  # sessions may close during the tick
            try:
                if behind > 0:
                    session._late(behind)
                session._tick()
            except Exception as exc:
                session._crash(exc)


class LocalMediaSession(MediaSessionBase):
    """One RTP stream over a UDP socket; :class:`MediaSession` (see the module doc)."""

    def __init__(self, engine: LocalMediaEngine, rtp: RtpSocket, *, symmetric: bool) -> None:
        super().__init__()
        self._engine, self._rtp, self.port = engine, rtp, rtp.port
        self._loop = asyncio.get_running_loop()
        self.comfort_silence = engine.comfort_silence
        """Send encoded silence when nothing plays (on by default; settable any time)."""
        self.remote = RemoteAddress(symmetric=symmetric)
        self._sender, self._receiver, self._detector = RtpSender(), RtpReceiver(), DtmfDetector()
        self._stats = MediaStats(ssrc=self._sender.ssrc)
        self._pt, self._codec = 0, PCMU
        self._te_pt: int | None = None
        self._encoded = engine._caches.setdefault(PCMU.name, {})
        self._sends = self._receives = False
        self._dtmf: DtmfSender | None = None
        self._dtmf_done: asyncio.Future[None] | None = None  # what send_digits awaits
        self._dtmf_base = 0
        self._dtmf_lock = asyncio.Lock()
        self._peer: LocalMediaSession | None = None
        self._relay_ssrc: int | None = None  # the incoming SSRC the relay offset is for
        self._relay_offset, self._relay_at, self._resume = 0, 0.0, False
        self._last_event: _Event | None = None  # the newest telephone-event received
        self._event_floor: _Event | None = None  # while bridged: the press not to relay
        self._ended: asyncio.Future[None] | None = None  # with a task group: till release
        self._task: asyncio.Task[None] | None = None  # with a task group: _watch
        self.error: BaseException | None = None
        """The exception that ended the session from its tick, if one did."""

    @property
    def local_address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        return self._rtp.address

    @property
    def stats(self) -> MediaStats:
        """The counters, with the send and loss figures brought up to date."""
        stats, sender, receiver = self._stats, self._sender, self._receiver
        stats.packets_sent, stats.octets_sent = sender.packets_sent, sender.octets_sent
        stats.lost, stats.remote_ssrc = receiver.lost, receiver.ssrc
        stats.send_errors = self._rtp.send_errors
        return stats

    @property
    def peer(self) -> LocalMediaSession | None:
        """The bridged session, or None."""
        return self._peer

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
        """Apply an SDP negotiation; ``remote_host`` must be an IP literal (resolve first)."""
        self._check_open()
        new_codec = codec_for(payload_type if codec is None else codec)
        self.remote.configure(remote_host, remote_port)
        self._pt, self._te_pt = payload_type, telephone_event_pt
        if new_codec is not self._codec:
            self._codec = new_codec
            self._encoded = self._engine._caches.setdefault(new_codec.name, {})
        self._sends, self._receives = direction.sends, direction.receives

    async def play(self, source: Source, *, interrupt_on_digit: bool = False) -> bool:
        """Play ``source``; True when it ended by itself (see :class:`MediaSession`)."""
        if self._peer is not None:  # (a closed session has none: _run_playback raises)
            return False
        return await self._run_playback(source, interrupt_on_digit)

    async def send_digits(self, digits: str) -> bool:
        """Send RFC 4733 events; False when no telephone-event was negotiated."""
        self._check_open()
        sender = DtmfSender(digits)
        if self._te_pt is None:
            return False
        async with self._dtmf_lock:
            self._check_open()
            done: asyncio.Future[None] = self._loop.create_future()
            self._dtmf, self._dtmf_done, self._dtmf_base = sender, done, self._sender.timestamp
            try:
                await done
            finally:
                if self._dtmf is sender:
                    self._dtmf = None
                if self._dtmf_done is done:
                    self._dtmf_done = None
                # ``done`` may hold what it raised here, whose traceback holds this frame:
                # let go of it, or that cycle would keep the session for the cyclic GC.
                del done
        return True

    def bridge(self, other: MediaSession) -> None:
        """Relay both ways with ``other``, a session of a local engine; a key press in
        progress on either leg stays that leg's (module doc)."""
        if not isinstance(other, LocalMediaSession):
            raise TypeError(f"a LocalMediaSession cannot bridge with {type(other).__name__}")
        if other is self:
            raise ValueError("a session cannot bridge with itself")
        self._check_open()
        other._check_open()
        if self._peer is other:
            return
        self.unbridge()
        other.unbridge()
        now = self._loop.time()
        for leg, peer in ((self, other), (other, self)):
            leg._peer, leg._relay_ssrc, leg._relay_at, leg._resume = peer, None, now, False
            leg._event_floor = leg._last_event  # a press in progress stays this side's
            leg.stop_playback()

    def unbridge(self) -> None:
        """End the bridge; both legs' ticks take their streams back."""
        peer = self._peer
        if peer is not None:
            for leg in (self, peer):
                leg._peer, leg._resume, leg._event_floor = None, True, None

    async def close(self) -> None:
        """Release socket and port and leave the clock at once; idempotent."""
        task = self._task
        self._release()
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.wait([task])  # the group's task ends with the session

    def _start(self, task_group: asyncio.TaskGroup | None) -> None:
        """Start receiving (the engine's clock ticks the session already)."""
        self._rtp.start(self._datagram)
        if task_group is not None:
            self._ended = self._loop.create_future()
            watch = self._watch()
            try:
                self._task = task_group.create_task(watch)
            except BaseException:  # the group is shutting down: open() releases the session
                watch.close()
                raise

    async def _watch(self) -> None:
        """The session in its call's task group: ends with it, raising its tick's error
        (which fails the group); cancelled (the group failed), it closes the session."""
        ended = self._ended
        assert ended is not None
        try:
            await ended
        finally:
            self._release()
        if self.error is not None:
            raise self.error

    def _release(self) -> None:
        """Close the socket, release the port, leave the clock, wake every waiter, let go
        of what could hold the session in a cycle: synchronous, idempotent."""
        if self._closed:
            return
        self.unbridge()
        self._close_base()
        self._rtp.close()
        self._engine._clock.discard(self)
        done, self._dtmf, self._dtmf_done = self._dtmf_done, None, None
        if done is not None and not done.done():
            done.set_exception(MediaClosed("media session closed"))
        ended, self._ended, self._task = self._ended, None, None
        if ended is not None and not ended.done():
            ended.set_result(None)

    def _crash(self, exc: Exception) -> None:
        """The session's tick raised ``exc``: record and log it, release the session."""
        if self.error is None:
            self.error = exc
        log.error("media.pacer_failed", port=self.port, exc_info=exc)
        self._release()

    def _late(self, behind: int) -> None:
        """The clock runs this tick with ``behind`` more due: late, or skipping those."""
        if self._closed:
            return
        stats = self._stats
        if behind < MAX_BURST:
            stats.late_ticks += 1
        else:
            stats.skipped_ticks += behind
            if self._peer is None and not self._resume:  # _resume measures the gap itself
                self._sender.skip(behind * FRAME_SAMPLES)

    def _tick(self) -> None:
        """One tick of the clock: this frame's packet (module doc).  A closed session has
        neither DTMF nor a peer (:meth:`_release`): bridged ones return after two reads."""
        if self._dtmf is not None and self._dtmf_tick():
            return
        if self._peer is not None or self._closed:
            return  # the bridge owns the stream
        sender = self._sender
        if self._resume:  # the bridge ended: carry the RTP clock over the gap
            self._resume = False
            gap = round((self._loop.time() - self._relay_at) / FRAME) - 1
            sender.skip(max(gap, 0) * FRAME_SAMPLES)
        payload = None
        playback = self._playback
        if playback is not None:
            try:
                frame = playback.source.next_frame()
                payload = None if frame is None else self._encode(frame)
            except Exception as exc:
                self._finish_playback(playback, exc)
            else:
                if frame is None:
                    self._finish_playback(playback, True)
        if payload is None and self.comfort_silence:
            payload = self._encode(SILENT_FRAME)
        dest = self.remote.dest
        if payload is None or dest is None or not self._sends:
            sender.skip(FRAME_SAMPLES)
            return
        self._rtp.send(sender.packet(payload, self._pt), dest)

    def _encode(self, frame: bytes) -> bytes:
        """``codec.encode`` through the engine's cache (tones and prompts repeat frames)."""
        payload = self._encoded.get(frame)
        if payload is None:
            payload = self._codec.encode(frame)
            if len(self._encoded) >= ENCODE_CACHE:
                self._encoded.clear()
            self._encoded[frame] = payload
        return payload

    def _dtmf_tick(self) -> bool:
        """Send this tick's telephone-event, if any; True when the tick is used."""
        dtmf = self._dtmf
        assert dtmf is not None
        packet = dtmf.next_tick()
        if dtmf.done:
            self._dtmf = None
            done = self._dtmf_done
            if done is not None and not done.done():
                done.set_result(None)
        if packet is None:
            return False
        self._stats.digits_sent += packet.marker
        sender, te_pt, dest = self._sender, self._te_pt, self.remote.dest
        if te_pt is None or dest is None or not self._sends:
            sender.skip(FRAME_SAMPLES)
            return True
        self._relay_ssrc = None  # a bridge re-anchors its timestamps after our packets
        timestamp = self._dtmf_base + packet.offset
        data = sender.packet(packet.payload, te_pt, marker=packet.marker, timestamp=timestamp)
        self._rtp.send(data, dest)
        return True

    def _relay(self, packet: RtpPacket, payload: bytes, pt: int, audio: bool) -> bool:
        """Send ``packet`` from the bridged leg out of this leg's stream; False if not."""
        dest = self.remote.dest
        if self._dtmf is not None or dest is None or not self._sends or self._closed:
            return False
        sender = self._sender
        marker = packet.marker
        if packet.ssrc != self._relay_ssrc:  # a new incoming stream: continue our clock
            self._relay_ssrc = packet.ssrc
            self._relay_offset = (sender.timestamp - packet.timestamp) & _MASK
            marker = marker or audio
        timestamp = (packet.timestamp + self._relay_offset) & _MASK
        data = sender.packet(payload, pt, 0, marker=marker, timestamp=timestamp)
        if audio:  # keep the clock past the newest audio (never back, for late packets)
            end = (timestamp + len(payload)) & _MASK
            if (end - sender.timestamp) & _MASK < _HALF:
                sender.timestamp = end
        self._relay_at = self._loop.time()
        self._stats.relayed += 1
        self._rtp.send(data, dest)
        return True

    def _note_event(self, packet: RtpPacket) -> _Event | None:
        """Remember the newest telephone-event of the stream; ``packet``'s report."""
        payload = packet.payload
        if len(payload) < 4:
            return None  # malformed: relayed as before (the far end ignores it too)
        report = _Event(
            packet.ssrc,
            packet.timestamp,
            payload[0],
            payload[1] >= 0x80,
            (payload[2] << 8) | payload[3],
        )
        last = self._last_event
        if last is None or last.ssrc != report.ssrc:
            self._last_event = report
        elif (report.timestamp - last.timestamp) & _MASK < _HALF:  # not older
            self._last_event = last.merge(report)
        return report

    def _before_bridge(self, report: _Event | None, marker: bool) -> bool:
        """Whether the event of ``report`` began before the bridge (not relayed, module doc)."""
        floor = self._event_floor
        if report is None or floor is None or floor.ssrc != report.ssrc:
            return False
        behind = (floor.timestamp - report.timestamp) & _MASK
        if behind == 0:  # the press in progress at the bridge
            self._event_floor = floor.merge(report)
            return True
        if behind < _STALE:  # a late packet of an older press
            return True
        if not marker and floor.held(report):  # that press, the key still held
            self._event_floor = report
            return True
        self._event_floor = None  # a new press: relayed, and so is everything after it
        return False

    def _datagram(self, data: bytes, addr: Any) -> None:
        stats = self._stats
        if is_rtcp(data):
            stats.rtcp_ignored += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError:
            stats.malformed += 1
            return
        if not self._receives or not self.remote.accept((addr[0], addr[1])):
            stats.dropped += 1
            return
        receiver = self._receiver
        if packet.ssrc != receiver.ssrc and receiver.ssrc is not None:
            self._detector.reset()  # a new stream, a new event timeline
        receiver.receive(packet)
        stats.packets_received += 1
        stats.octets_received += len(packet.payload)
        pt = packet.payload_type
        if pt == self._pt:
            stats.audio_received += 1
            if (peer := self._peer) is not None:
                payload = transcode(packet.payload, self._codec, peer._codec)
                stats.dropped += not peer._relay(packet, payload, peer._pt, True)
        elif pt == self._te_pt:
            stats.events_received += 1
            report = self._note_event(packet)
            for digit in self._detector.feed(packet.timestamp, packet.marker, packet.payload):
                stats.digits_received += 1
                self._dispatch_digit(digit, bridged=self._peer is not None)
            if (peer := self._peer) is not None:  # read again: an observer may unbridge
                te_pt = peer._te_pt
                relayed = (
                    not self._before_bridge(report, packet.marker)
                    and te_pt is not None
                    and peer._relay(packet, packet.payload, te_pt, False)
                )
                stats.dropped += not relayed
        else:
            stats.dropped += 1


class LocalMediaEngine:
    """Opens in-process sessions on a :class:`PortPool` (a :class:`MediaEngine`): ``host``
    to bind, and the defaults of ``comfort_silence`` and ``symmetric_rtp`` (module doc)."""

    def __init__(
        self,
        pool: PortPool,
        *,
        host: str = "127.0.0.1",
        comfort_silence: bool = True,
        symmetric_rtp: bool = True,
    ) -> None:
        self.pool = pool
        self.host = host
        self.comfort_silence = comfort_silence
        self.symmetric_rtp = symmetric_rtp
        self._clock = _MediaClock()
        self._caches: dict[str, dict[bytes, bytes]] = {}

    def open(
        self, host: str | None = None, *, task_group: asyncio.TaskGroup | None = None
    ) -> LocalMediaSession:
        """A session on a free port; raises ``NoMediaPorts`` (→ 503, SIP-13)."""
        asyncio.get_running_loop()  # RuntimeError before a port is taken, not after
        rtp = self.pool.open(host or self.host)
        session = None
        try:
            session = LocalMediaSession(self, rtp, symmetric=self.symmetric_rtp)
            self._clock.add(session)
            session._start(task_group)
        except BaseException:
            if session is not None:
                session._release()
            rtp.close()
            raise
        return session

    def in_use(self) -> int:
        """Media ports in use (``media_ports``)."""
        return self.pool.in_use()

    async def close(self) -> None:
        """Close every open session and stop the clock."""
        for session in list(self._clock.sessions):
            await session.close()
        self._clock.stop()
