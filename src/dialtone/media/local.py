"""In-process G.711 media: RTP sockets driven by asyncio (design.md §2, layer 2).

:class:`LocalMediaEngine` opens :class:`LocalMediaSession` s on ports of a
:class:`~dialtone.media.ports.PortPool`; each session implements
:class:`~dialtone.media.session.MediaSession` over one non-blocking UDP socket.

Pacing: one pacer task per session.  Tick ``n`` is due at ``start + n·20 ms`` (never
``sleep(0.02)`` in a row, which drifts) and sends one packet: the playing source's next
frame in the negotiated codec, a telephone-event while ``send_digits`` runs, or, when
nothing plays and :attr:`~LocalMediaSession.comfort_silence` is on, encoded silence
(keeps NAT bindings and phones' media timers alive); else the RTP clock just advances.
Woken late, the pacer sends the ticks due, at most :data:`MAX_BURST` back to back;
further behind (a stalled loop) it skips ahead: the RTP timestamp jumps with the marker
set, and the source resumes where it was (the prompt is delayed, not cut).  Encoded
frames are cached per engine: ringback and cached prompts repeat the same frames.

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

Lifetime: :meth:`~LocalMediaSession.close` (or leaving ``async with``) closes the socket
and releases the port at once, then ends the pacer; the pacer's own end, a crash too,
releases them as well (DOC-12).  With ``task_group`` the pacer is a task of the call's
group (a crash fails the group): close the session inside the group's body.
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
"""Most packets a late pacer sends back to back before it skips ahead instead."""
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
        self._dtmf_done: asyncio.Future[None] = self._loop.create_future()
        self._dtmf_base = 0
        self._dtmf_lock = asyncio.Lock()
        self._peer: LocalMediaSession | None = None
        self._relay_ssrc: int | None = None  # the incoming SSRC the relay offset is for
        self._relay_offset, self._relay_at, self._resume = 0, 0.0, False
        self._last_event: _Event | None = None  # the newest telephone-event received
        self._event_floor: _Event | None = None  # while bridged: the press not to relay
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        """The exception that killed the pacer, if one did."""

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
        """End the bridge; both legs' pacers take their streams back."""
        peer = self._peer
        if peer is not None:
            for leg in (self, peer):
                leg._peer, leg._resume, leg._event_floor = None, True, None

    async def close(self) -> None:
        """Release socket and port at once, then end the pacer; idempotent."""
        self._release()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    def _start(self, task_group: asyncio.TaskGroup | None) -> None:
        self._rtp.start(self._datagram)
        pacer = self._pace()
        self._task = task_group.create_task(pacer) if task_group else self._loop.create_task(pacer)
        self._task.add_done_callback(lambda task: task.cancelled() or task.exception())

    def _release(self) -> None:
        """Close the socket, release the port, wake every waiter: synchronous, idempotent."""
        if self._closed:
            return
        self.unbridge()
        self._close_base()
        self._rtp.close()
        self._engine._sessions.discard(self)
        if self._dtmf is not None and not self._dtmf_done.done():
            self._dtmf_done.set_exception(MediaClosed("media session closed"))

    async def _pace(self) -> None:
        loop = self._loop
        stats = self._stats
        try:
            start = loop.time()
            tick = 0
            while True:
                tick += 1
                delay = start + tick * FRAME - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late = int(-delay / FRAME)  # ticks due besides this one
                    if late >= MAX_BURST:  # stalled: skip ahead, don't burst
                        tick += late
                        stats.skipped_ticks += late
                        if self._peer is None:
                            self._sender.skip(late * FRAME_SAMPLES)
                    else:
                        stats.late_ticks += 1
                    await asyncio.sleep(0)
                self._tick()
        except Exception as exc:
            self.error = exc
            log.error("media.pacer_failed", port=self.port, exc_info=exc)
            raise
        finally:
            self._release()

    def _tick(self) -> None:
        if self._closed or (self._dtmf is not None and self._dtmf_tick()):
            return
        if self._peer is not None:
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
            if not self._dtmf_done.done():
                self._dtmf_done.set_result(None)
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
        self._sessions: set[LocalMediaSession] = set()
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
            self._sessions.add(session)
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
        """Close every open session."""
        for session in list(self._sessions):
            await session.close()
