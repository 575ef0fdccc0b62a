"""RTP ports, sockets and addresses: the ``--rtp-ports`` pool (SIP-13), symmetric RTP.

Every media stream gets one UDP socket on an **even** port; the odd port above it is
reserved for its RTCP (the RFC 3550 §11 convention), so it is never handed out, though
dialtone does not bind it (it sends no RTCP, and an unused socket per call would double
the file descriptors).  A port counts as free when a UDP bind on the requested host
succeeds: ports some other process holds are skipped, not reported.

Allocation goes round the range from where the previous one stopped, so a port just
released is the *last* to be reused: a late packet of the old call then finds no one
rather than the next call.  When no port of the range can be bound,
:class:`NoMediaPorts` is raised; the call layer answers the INVITE with ``503`` (or
fails the branch).  :meth:`PortPool.release` is idempotent, so every exit path of a call
may call it (DOC-12), and :meth:`PortPool.in_use` is the ``media_ports`` figure of
``/dialtone/stats.json``.

The pool never sets ``SO_REUSEADDR``: on Linux that would let two UDP sockets share a
port, which is exactly what the bind is there to rule out.

:class:`RtpSocket` is one allocated port's socket as a session uses it (drained on each
wake-up, sent to without queueing, closed and released once); :class:`RemoteAddress` is
the other end of a stream: where to send, and which sources to accept (symmetric RTP).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Final

import structlog

from dialtone.media.session import MediaError

__all__ = [
    "LATCH_PACKETS",
    "SOCKET_BUFFER",
    "NoMediaPorts",
    "PortPool",
    "RemoteAddress",
    "RtpSocket",
    "bind_rtp_socket",
]

log = structlog.get_logger("dialtone.media.ports")

SOCKET_BUFFER: Final = 256 * 1024
"""Send and receive buffer per RTP socket: a few seconds of G.711, generous for bursts."""

BATCH: Final = 64
"""Datagrams read per wake-up at most, so one busy socket cannot starve the loop."""
RECV_SIZE: Final = 4096
LATCH_PACKETS: Final = 3
"""Packets in a row from an address other than the SDP one before latching to it."""

_NO_ADDRESS: Final = frozenset({"0.0.0.0", "::"})  # RFC 2543 hold (RFC 3264 §8.4)

# Bind errors meaning "this port is taken (or forbidden) here, try the next one".
_SKIP_ERRNOS: Final = frozenset({errno.EADDRINUSE, errno.EACCES})


class NoMediaPorts(MediaError):
    """Every RTP port of the configured range is in use: answer ``503`` (SIP-13)."""


def bind_rtp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``(host, port)``; raises :class:`OSError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class PortPool:
    """Even RTP ports from ``first``-``last`` (inclusive), RTCP's odd port reserved.

    An even port ``p`` is usable when ``p + 1`` is inside the range too, so
    ``PortPool(10000, 20000)`` offers 10000, 10002 … 19998: 5000 streams.  Raises
    :class:`ValueError` for a range outside 1-65535, reversed, or without one pair.
    """

    __slots__ = ("_cursor", "_in_use", "_ports", "allocated", "exhausted", "first", "last")

    def __init__(self, first: int, last: int) -> None:
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"RTP port range {first}-{last} is not within 1-65535, low-high")
        self.first = first
        self.last = last
        self._ports = range(first + (first & 1), last, 2)  # p even and p + 1 <= last
        if not self._ports:
            raise ValueError(f"RTP port range {first}-{last} holds no even/odd port pair")
        self._in_use: set[int] = set()
        self._cursor = 0
        self.allocated = 0
        """Ports handed out since start (a counter, not the current figure)."""
        self.exhausted = 0
        """Times :meth:`allocate` raised :class:`NoMediaPorts`."""

    @classmethod
    def parse(cls, text: str) -> PortPool:
        """A pool from ``--rtp-ports`` text, ``"LOW-HIGH"``; :class:`ValueError` if bad."""
        low, sep, high = text.partition("-")
        if not sep or not low.strip().isdigit() or not high.strip().isdigit():
            raise ValueError(f"RTP port range {text!r} is not LOW-HIGH")
        return cls(int(low), int(high))

    @property
    def capacity(self) -> int:
        """How many streams the range can hold at once (ignoring foreign processes)."""
        return len(self._ports)

    def in_use(self) -> int:
        """Ports allocated and not yet released (``media_ports`` of the stats)."""
        return len(self._in_use)

    def __contains__(self, port: object) -> bool:
        return port in self._in_use

    def allocate(self, host: str) -> tuple[socket.socket, int]:
        """Bind a UDP socket on the next free even port of the range on ``host``.

        Returns the non-blocking socket and its port; the caller owns the socket and
        must :meth:`release` the port after closing it.  Ports in use here or bound by
        anyone else are skipped; when none is left :class:`NoMediaPorts` is raised.
        Another bind error (an address this machine does not have, say) is raised as
        the :class:`OSError` it is: it is a configuration error, not a full pool.
        """
        ports = self._ports
        count = len(ports)
        for step in range(count):
            index = (self._cursor + step) % count
            port = ports[index]
            if port in self._in_use:
                continue
            try:
                sock = bind_rtp_socket(host, port)
            except OSError as exc:
                if exc.errno in _SKIP_ERRNOS:
                    continue
                raise
            self._cursor = (index + 1) % count
            self._in_use.add(port)
            self.allocated += 1
            return sock, port
        self.exhausted += 1
        raise NoMediaPorts(
            f"no free RTP port in {self.first}-{self.last} on {host} "
            f"({len(self._in_use)} in use by dialtone)"
        )

    def open(self, host: str) -> RtpSocket:
        """:meth:`allocate` wrapped in an :class:`RtpSocket` that releases on close."""
        sock, port = self.allocate(host)
        return RtpSocket(self, sock, port)

    def release(self, port: int) -> None:
        """Return ``port`` to the pool.  Releasing a port twice (or a foreign one) is a no-op."""
        self._in_use.discard(port)

    def __repr__(self) -> str:
        return f"PortPool({self.first}, {self.last}, in_use={len(self._in_use)})"


class RtpSocket:
    """An allocated port's socket: read by a callback, written without queueing.

    :meth:`start` registers a reader with the running loop that drains up to
    :data:`BATCH` datagrams per wake-up into ``on_datagram(data, address)``.
    :meth:`send` drops a datagram the socket cannot take at once (real-time media is
    not queued) and counts it in :attr:`send_errors`.  :meth:`close` is idempotent:
    it removes the reader, closes the socket, releases the port and drops the callback
    (a session's bound method: no cycle keeps a closed session alive).
    """

    __slots__ = (
        "_loop",
        "_on_datagram",
        "address",
        "closed",
        "pool",
        "port",
        "send_errors",
        "sock",
    )

    def __init__(self, pool: PortPool, sock: socket.socket, port: int) -> None:
        self.pool = pool
        self.sock = sock
        self.port = port
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.closed = False
        self.send_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_datagram: Callable[[bytes, Any], None] | None = None

    def start(self, on_datagram: Callable[[bytes, Any], None]) -> None:
        """Start reading in the running loop."""
        self._on_datagram = on_datagram
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        """Send one datagram now, or drop it (buffer full, ICMP error) and count it."""
        try:
            self.sock.sendto(data, dest)
        except OSError:
            self.send_errors += 1

    def close(self) -> None:
        """Stop reading, close the socket and release the port; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            with suppress(Exception):  # the loop may be closing already
                self._loop.remove_reader(self.sock.fileno())
        self._loop = self._on_datagram = None
        self.sock.close()
        self.pool.release(self.port)

    def _readable(self) -> None:
        sock, on_datagram = self.sock, self._on_datagram
        if on_datagram is None:  # closed since the loop saw the socket readable
            return
        for _ in range(BATCH):
            if self.closed:
                return
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error of an earlier send; the next read goes on
                continue
            on_datagram(data, addr)


class RemoteAddress:
    """The far end of one stream: where packets go, and which sources are accepted.

    With ``symmetric=True`` (the default) the address *latches*: the first packet from
    the SDP address latches at once; packets from another address are refused until
    :data:`LATCH_PACKETS` in a row came from it, which then latches too.  Once latched,
    only the latched address is accepted, and it is where packets go: a phone behind
    NAT puts its private address in SDP, but its packets come from the NAT's public one,
    and only that reaches it.  The latch holds until :meth:`configure` changes the SDP
    address (re-INVITE).  With ``symmetric=False`` packets go to the SDP address and are
    accepted from the SDP host (any port: some phones send from another port).

    Before :meth:`configure` nothing is accepted and nothing sent; an SDP address of
    ``0.0.0.0`` or port 0 is hold: packets are accepted, none are sent.
    """

    __slots__ = ("_candidate", "_count", "dest", "latched", "sdp", "symmetric")

    def __init__(self, *, symmetric: bool = True) -> None:
        self.symmetric = symmetric
        self.sdp: tuple[str, int] | None = None
        """The address of the SDP (``c=`` host, ``m=`` port)."""
        self.dest: tuple[str, int] | None = None
        """Where to send now, or None (not configured, or hold)."""
        self.latched: tuple[str, int] | None = None
        self._candidate: tuple[str, int] | None = None
        self._count = 0

    def configure(self, host: str, port: int) -> None:
        """Take the SDP address; ``host`` must be an IP literal (:class:`ValueError`).

        A name would cost a DNS lookup per packet: the call layer resolves it first.
        """
        ipaddress.ip_address(host)
        sdp = (host, port)
        if sdp != self.sdp:
            self.latched = self._candidate = None
        self.sdp = sdp
        hold = host in _NO_ADDRESS or port == 0
        self.dest = None if hold else self.latched or sdp

    def accept(self, source: tuple[str, int]) -> bool:
        """Whether a packet from ``source`` is the far end's; may latch to ``source``."""
        sdp = self.sdp
        if sdp is None:
            return False
        if not self.symmetric:
            return source[0] == sdp[0]
        if self.latched is not None:
            return source == self.latched
        if source != sdp:
            if source != self._candidate:
                self._candidate, self._count = source, 0
            self._count += 1
            if self._count < LATCH_PACKETS:
                return False
            log.info("media.latched", sdp=f"{sdp[0]}:{sdp[1]}", source=f"{source[0]}:{source[1]}")
        self.latched = source
        if self.dest is not None:
            self.dest = source
        return True
