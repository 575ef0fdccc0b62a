"""SIP over UDP: a reader that drains the socket per wake-up, and non-blocking sends.

asyncio's datagram transport reads one datagram per readiness callback; under load that
is one loop iteration per message.  Here one wake-up reads every queued datagram (up to a
batch limit), hands them all to the driver, and only then lets the driver process events
and flush responses, so a burst costs one pump, not one per datagram.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable
from typing import Final

import structlog

from dialtone.sip.events import Peer

log = structlog.get_logger("dialtone.transports.udp")

BATCH: Final = 512
RECV_SIZE: Final = 65536  # one more than the 64 KiB limit, so oversize is detectable
SOCKET_BUFFER: Final = 4 * 1024 * 1024


def bind_udp(host: str, port: int) -> socket.socket:
    """A bound non-blocking UDP socket with large buffers (raises OSError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class UdpTransport:
    """One UDP socket serving SIP."""

    def __init__(
        self,
        sock: socket.socket,
        on_datagram: Callable[[bytes, Peer], None],
        on_batch: Callable[[], None],
    ) -> None:
        self.sock = sock
        self._on_datagram = on_datagram
        self._on_batch = on_batch
        self._pending: deque[tuple[bytes, tuple[str, int]]] = deque()
        self._loop = asyncio.get_running_loop()
        self._writing = False
        self.dropped_sends = 0

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self.sock.getsockname()[:2]
        return host, port

    def start(self) -> None:
        """Start reading."""
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        """Stop reading and writing and close the socket."""
        self._loop.remove_reader(self.sock.fileno())
        if self._writing:
            self._loop.remove_writer(self.sock.fileno())
        self.sock.close()

    def _readable(self) -> None:
        received = 0
        while received < BATCH:
            try:
                data, addr = self.sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # ICMP port unreachable from an earlier send shows up here on Linux.
                log.debug("udp.recv_error", error=str(exc))
                continue
            received += 1
            self._on_datagram(data, Peer("udp", addr[0], addr[1]))
        if received:
            self._on_batch()

    def send(self, data: bytes, peer: Peer) -> None:
        """Send a datagram now, or queue it while the socket buffer is full."""
        addr = (peer.host, peer.port)
        if self._pending:
            self._pending.append((data, addr))
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._pending.append((data, addr))
            self._want_write()
        except OSError as exc:
            self.dropped_sends += 1
            log.debug("udp.send_error", peer=str(peer), error=str(exc))

    def _want_write(self) -> None:
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self.sock.fileno(), self._writable)

    def _writable(self) -> None:
        while self._pending:
            data, addr = self._pending[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.dropped_sends += 1
            self._pending.popleft()
        self._loop.remove_writer(self.sock.fileno())
        self._writing = False
