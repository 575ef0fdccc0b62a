"""SIP over TCP: Content-Length framing, CRLF keep-alives, connection reuse (RFC 3261 §18.3).

Inbound connections are kept in a registry by id, so responses and later requests to a
Client that registered over TCP go back over the same connection (SIP-1).  Requests to a
peer without an open connection open one and queue the bytes until it is up.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable
from typing import cast

import structlog

from dialtone.sip.errors import FramingError
from dialtone.sip.events import Peer
from dialtone.sip.framing import KeepAlive, StreamFramer

log = structlog.get_logger("dialtone.transports.tcp")

_ids = itertools.count(1)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, conn_id: int | None = None) -> None:
        self.owner = owner
        self.id = conn_id if conn_id is not None else next(_ids)
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        host, port = self.transport.get_extra_info("peername")[:2]
        self.peer = Peer("tcp", host, port, self.id)
        self.owner._opened(self)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            items = self.framer.feed(data)
        except FramingError as exc:
            log.info("tcp.framing_error", peer=str(self.peer), reason=exc.reason)
            self.transport.close()
            return
        delivered = False
        for item in items:
            if isinstance(item, KeepAlive):
                self.transport.write(b"\r\n")  # RFC 5626 §4.4.1 pong
            else:
                self.owner._on_message(item, self.peer)
                delivered = True
        if delivered:
            self.owner._on_batch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._closed(self)


class TcpTransport:
    """A TCP listener plus outgoing connections, all addressed by connection id."""

    def __init__(
        self,
        on_message: Callable[[bytes, Peer], None],
        on_batch: Callable[[], None],
        on_closed: Callable[[int], None],
        on_unreachable: Callable[[Peer], None],
    ) -> None:
        self._on_message = on_message
        self._on_batch = on_batch
        self._on_closed = on_closed
        self._on_unreachable = on_unreachable
        self._by_id: dict[int, _Connection] = {}
        self._by_addr: dict[tuple[str, int], int] = {}
        self._connecting: dict[tuple[str, int], list[bytes]] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, sock: socket.socket) -> None:
        """Serve inbound connections on a bound, listening socket."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock)

    def connection_count(self) -> int:
        """Open connections."""
        return len(self._by_id)

    def _opened(self, conn: _Connection) -> None:
        assert conn.peer is not None
        self._by_id[conn.id] = conn
        self._by_addr[(conn.peer.host, conn.peer.port)] = conn.id

    def _closed(self, conn: _Connection) -> None:
        self._by_id.pop(conn.id, None)
        if conn.peer is not None:
            key = (conn.peer.host, conn.peer.port)
            if self._by_addr.get(key) == conn.id:
                del self._by_addr[key]
        self._on_closed(conn.id)

    def send(self, data: bytes, peer: Peer) -> None:
        """Write on the peer's connection, reusing or opening one as needed."""
        conn_id = peer.connection
        if conn_id is None or conn_id not in self._by_id:
            conn_id = self._by_addr.get((peer.host, peer.port))
        conn = self._by_id.get(conn_id) if conn_id is not None else None
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            return
        key = (peer.host, peer.port)
        if key in self._connecting:
            self._connecting[key].append(data)
            return
        self._connecting[key] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(key, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, key: tuple[str, int], peer: Peer) -> None:
        loop = asyncio.get_running_loop()
        conn = _Connection(self)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: conn, *key), timeout=5)
        except (OSError, TimeoutError) as exc:
            log.info("tcp.connect_failed", host=key[0], port=key[1], error=str(exc))
            self._connecting.pop(key, None)
            self._on_unreachable(peer)
            return
        for data in self._connecting.pop(key, []):
            if conn.transport is not None:
                conn.transport.write(data)

    async def close(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._by_id.values()):
            if conn.transport is not None:
                conn.transport.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
