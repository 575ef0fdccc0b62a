"""The media seam (design.md §4): what a call asks of its audio stream, whoever runs it.

A :class:`MediaSession` is one call leg's RTP stream.  The call layer opens it from a
:class:`MediaEngine`, configures it from the SDP negotiation (:func:`configure_from`,
SIP-12), plays prompts and ringback into it (VRB-1..VRB-3, DIAL-30), reads digits from
it (VRB-4, VRB-5), sends digits (VRB-2 ``digits``), bridges it with another leg
(DIAL-33) and closes it on every exit path (DOC-12).  The in-process G.711 backend is
:mod:`dialtone.media.local`; rtpengine can come later behind the same protocol, reusing
:class:`MediaSessionBase`.

Digits: each telephone-event key press is counted once (VRB-5) and goes to the
:meth:`MediaSession.on_digit` observers always (the ``hangupOnStar`` hook, DIAL-37),
and into :attr:`MediaSession.digits` only while the leg is *not* bridged: during a
bridge they belong to the other party, are relayed to it, and a later ``<Gather>`` does
not see them.

Errors: :class:`MediaError` (a :class:`~dialtone.errors.DialtoneError`);
:class:`MediaClosed` when the session closed under a waiting call;
``ports.NoMediaPorts`` (SIP-13) when no RTP port is free.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import Protocol, Self

import structlog

from dialtone.errors import DialtoneError
from dialtone.media.sources import Source
from dialtone.sip.sdp import Direction, MediaChoice

__all__ = [
    "DigitObserver",
    "DigitQueue",
    "Direction",
    "MediaClosed",
    "MediaEngine",
    "MediaError",
    "MediaSession",
    "MediaSessionBase",
    "MediaStats",
    "Playback",
    "configure_from",
]

log = structlog.get_logger("dialtone.media.session")

DigitObserver = Callable[[str], None]
"""Called with each digit a leg's far end presses (DIAL-37's ``hangupOnStar`` hook)."""


class MediaError(DialtoneError):
    """Base of the errors of the media layer."""


class MediaClosed(MediaError):
    """The session was closed (the call ended) while this operation waited or started."""


@dataclass(slots=True)
class MediaStats:
    """Counters of one session.  ``packets_sent`` includes the ``relayed`` ones (from
    the bridged leg); ``dropped`` are valid RTP packets not used: from a foreign source,
    of a PT not negotiated, while not receiving, or not relayable by the other leg.
    """

    ssrc: int = 0
    packets_sent: int = 0
    octets_sent: int = 0
    relayed: int = 0
    send_errors: int = 0
    packets_received: int = 0
    octets_received: int = 0
    audio_received: int = 0
    events_received: int = 0
    rtcp_ignored: int = 0
    malformed: int = 0
    dropped: int = 0
    lost: int = 0
    remote_ssrc: int | None = None
    digits_received: int = 0
    digits_sent: int = 0
    late_ticks: int = 0
    """Ticks run a frame or more late but caught up (a few packets back to back)."""
    skipped_ticks: int = 0
    """Ticks given up after a stall: the stream skipped ahead instead of bursting."""

    def as_dict(self) -> dict[str, int | None]:
        """The counters as a plain dict (for logs and JSON)."""
        return asdict(self)


class DigitQueue:
    """Digits pressed and not yet read: :meth:`get` with a timeout, :meth:`clear`.

    Single-loop asyncio: :meth:`put` is called by the receiving side, :meth:`get` by the
    verb.  After :meth:`close` (the session closed) a :meth:`get` that would wait raises
    :class:`MediaClosed`; digits already queued are still handed out first.
    """

    __slots__ = ("_closed", "_digits", "_waiters")

    def __init__(self) -> None:
        self._digits: deque[str] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False

    def __len__(self) -> int:
        return len(self._digits)

    def put(self, digit: str) -> None:
        """Queue one digit and wake whoever waits."""
        self._digits.append(digit)
        self._wake()

    def peek(self) -> str | None:
        """The next digit without taking it (the one that interrupted a prompt, say)."""
        return self._digits[0] if self._digits else None

    def clear(self) -> None:
        """Forget the digits pressed so far (a new ``<Gather>`` starts clean)."""
        self._digits.clear()

    def close(self) -> None:
        """No more digits will come: wake the waiters, who raise :class:`MediaClosed`."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def get(self, timeout: float | None) -> str | None:
        """The next digit (queued ones first), or None after ``timeout`` seconds.

        ``timeout=None`` waits without limit; ``0`` (or less) only takes a queued one.
        Raises :class:`MediaClosed` instead of waiting on a closed queue.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                while not self._digits:
                    if self._closed:
                        raise MediaClosed("the media session is closed")
                    waiter = loop.create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    finally:
                        if waiter in self._waiters:  # timed out or cancelled
                            self._waiters.remove(waiter)
        except TimeoutError:
            return None
        return self._digits.popleft()


class MediaSession(Protocol):
    """One leg's RTP stream, as the call layer drives it (design.md §4)."""

    @property
    def local_address(self) -> tuple[str, int]:
        """The bound (host, port) to put in dialtone's SDP (``c=`` and ``m=``)."""
        ...

    @property
    def digits(self) -> DigitQueue:
        """Digits pressed by the far end while not bridged (VRB-5)."""
        ...

    @property
    def stats(self) -> MediaStats:
        """The session's counters, current as of this call."""
        ...

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (or the session died)."""
        ...

    @property
    def peer(self) -> MediaSession | None:
        """The session this one is bridged with, or None."""
        ...

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
        """Apply an SDP negotiation (SIP-12); again for a re-INVITE or UPDATE (SIP-11).

        ``remote_host``/``remote_port`` is where to send (``0.0.0.0`` or port 0: hold,
        send nothing); ``payload_type`` the audio PT and ``codec`` its encoding name when
        it is not the static one (PCMU 0, PCMA 8); ``telephone_event_pt`` the RFC 4733
        PT both sides agreed, or None; ``direction`` dialtone's own direction.
        """
        ...

    async def play(self, source: Source, *, interrupt_on_digit: bool = False) -> bool:
        """Play ``source`` in 20 ms frames; True when it ran to its end, False when
        stopped: :meth:`stop_playback`, another :meth:`play`, :meth:`bridge` (while
        bridged: at once), or with ``interrupt_on_digit`` a digit, which stays queued
        (at once if one is queued).  Raises the source's error, or :class:`MediaClosed`.
        Cancelling the call stops the playback.
        """
        ...

    def stop_playback(self) -> None:
        """Stop the current :meth:`play` (it returns False); no-op when none."""
        ...

    async def send_digits(self, digits: str) -> bool:
        """Send RFC 4733 events (``w``/``W`` pause 0.5 s/1 s; VRB-2), one call after another;
        True once the last went out, False at once without a telephone-event PT.  Raises
        :class:`~dialtone.media.dtmf.DtmfError` for a character that is no digit."""
        ...

    def bridge(self, other: MediaSession) -> None:
        """Relay media (events included) both ways with ``other``; stops both legs'
        playback (DIAL-33; transcoded when the codecs differ, SIP-12)."""
        ...

    def unbridge(self) -> None:
        """End the bridge of this leg (and its peer); each goes back to its own audio."""
        ...

    def on_digit(self, observer: DigitObserver) -> Callable[[], None]:
        """Call ``observer`` with every digit received; returns the unsubscribe call."""
        ...

    def receive_digit(self, digit: str) -> None:
        """A digit signalled out of band (SIP INFO ``dtmf-relay``, VRB-5), taken like an
        RFC 4733 one: queued unless bridged, interrupting a prompt, observed."""
        ...

    async def close(self) -> None:
        """Stop everything, close the socket and release the port; idempotent (DOC-12)."""
        ...


@dataclass(slots=True, eq=False)
class Playback:
    """One :meth:`MediaSession.play` in progress: its source and the future it awaits."""

    source: Source
    interrupt: bool
    done: asyncio.Future[bool]


class MediaSessionBase:
    """The backend-independent half of a session: digits, observers, playback state.

    A backend implements the rest of :class:`MediaSession`, calls :meth:`_dispatch_digit`
    per key press, :meth:`_finish_playback` and, once, :meth:`_close_base`.  ``async with``
    awaits :meth:`close` on leaving."""

    def __init__(self) -> None:
        self._digits = DigitQueue()
        self._observers: list[DigitObserver] = []
        self._playback: Playback | None = None
        self._closed = False

    @property
    def digits(self) -> DigitQueue:
        """Digits pressed while not bridged."""
        return self._digits

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    @property
    def peer(self) -> MediaSessionBase | None:
        """The bridged session (a backend with bridges overrides this)."""
        return None

    def receive_digit(self, digit: str) -> None:
        """A digit signalled out of band (SIP INFO), taken like an RFC 4733 one."""
        self._dispatch_digit(digit, bridged=self.peer is not None)

    def on_digit(self, observer: DigitObserver) -> Callable[[], None]:
        """Call ``observer(digit)`` for every digit received; returns the unsubscribe."""
        self._observers.append(observer)

        def unsubscribe() -> None:
            with suppress(ValueError):
                self._observers.remove(observer)

        return unsubscribe

    def stop_playback(self) -> None:
        """Stop the current playback (its :meth:`play` returns False)."""
        if self._playback is not None:
            self._finish_playback(self._playback, False)

    async def close(self) -> None:
        """Close the session (the backend's)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise MediaClosed("the media session is closed")

    async def _run_playback(self, source: Source, interrupt: bool) -> bool:
        """Make ``source`` the current playback and wait for its end (see ``play``)."""
        self._check_open()
        if interrupt and self._digits:
            return False
        self.stop_playback()
        playback = Playback(source, interrupt, asyncio.get_running_loop().create_future())
        self._playback = playback
        try:
            return await playback.done
        finally:
            if self._playback is playback:  # cancelled
                self._playback = None
            # The future holds what it raised here, whose traceback holds this frame:
            # let go of it, or that cycle would keep the session for the cyclic GC.
            del playback

    def _finish_playback(self, playback: Playback, result: bool | BaseException) -> None:
        if self._playback is playback:
            self._playback = None
        if not playback.done.done():
            if isinstance(result, BaseException):
                playback.done.set_exception(result)
            else:
                playback.done.set_result(result)

    def _dispatch_digit(self, digit: str, *, bridged: bool) -> None:
        """Queue a digit (unless bridged), interrupt the playback, tell the observers."""
        if not bridged:
            self._digits.put(digit)
            playback = self._playback
            if playback is not None and playback.interrupt:
                self._finish_playback(playback, False)
        for observer in tuple(self._observers):
            try:
                observer(digit)
            except Exception:
                log.exception("media.digit_observer_failed", digit=digit)

    def _close_base(self) -> None:
        """Mark closed; waiting plays and digit reads raise :class:`MediaClosed`."""
        self._closed = True
        if self._playback is not None:
            self._finish_playback(self._playback, MediaClosed("media session closed"))
        self._digits.close()


class MediaEngine(Protocol):
    """Where sessions come from: owns the RTP ports (SIP-13)."""

    def open(
        self, host: str | None = None, *, task_group: asyncio.TaskGroup | None = None
    ) -> MediaSession:
        """A new session on a free port of ``host``; raises ``NoMediaPorts`` (→ 503).

        With ``task_group`` its background work is a task of that group (design.md §5).
        """
        ...

    def in_use(self) -> int:
        """Media ports in use now (``media_ports`` of ``/dialtone/stats.json``)."""
        ...

    async def close(self) -> None:
        """Close every session still open (server shutdown)."""
        ...


def configure_from(session: MediaSession, choice: MediaChoice) -> None:
    """:meth:`MediaSession.configure` with what an SDP offer/answer agreed (SIP-12)."""
    session.configure(
        choice.remote_address,
        choice.remote_port,
        choice.payload_type,
        choice.telephone_event_pt,
        choice.direction,
        codec=choice.codec.encoding,
    )
