"""A fake network that wires :class:`~dialtone.sip.endpoint.SipEndpoint` objects together.

Real endpoints, fake wire and fake time (h11 ``tests/helpers.py``, trio ``testing``):
datagrams and stream writes go from one endpoint to the one at their destination
address with no delay; :meth:`FakeNetwork.run` fires timers by advancing a
:class:`~dialtone.testing.clock.FakeClock` straight to the next deadline, so a 32 s
Timer F takes no wall time.  Every message is kept in :attr:`FakeNetwork.log`;
:meth:`FakeNetwork.drop` loses chosen ones, to test retransmissions.

::

    net = FakeNetwork()
    alice = SipEndpoint(local_host="10.0.0.1", local_port=5060)
    server = SipEndpoint(local_host="10.0.0.2", local_port=5060)
    net.add(alice)
    net.add(server, handler=lambda ev: ...)  # a scripted TU: answers each event
    alice.send_request(register, Peer("udp", "10.0.0.2", 5060))
    net.run()

TCP is modelled as connections with ids: the first write to a listening address opens
one (the initiator appears from an ephemeral port), both ends see the same connection
id, and :meth:`FakeNetwork.close` ends it (``connection_lost`` on both sides).  A node
added with ``public=(host, port)`` sits behind a NAT: others see it, and reach it, at
that address instead of its Via address (RFC 3581 tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.events import Event, Outgoing, Peer, Transport
from dialtone.testing.clock import FakeClock

__all__ = ["EventHandler", "FakeNetwork", "Node", "Packet"]

EventHandler = Callable[[Event], None]
"""A scripted TU: called with each event of its endpoint while the network pumps."""

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Packet:
    """One message put on the fake wire, as :attr:`FakeNetwork.log` keeps it."""

    time: float
    transport: Transport
    source: Address
    destination: Address
    data: bytes
    delivered: bool
    connection: int | None = None

    @property
    def start_line(self) -> str:
        """The first line, e.g. ``"REGISTER sip:x SIP/2.0"`` or ``"SIP/2.0 200 OK"``."""
        return self.data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


@dataclass(eq=False)
class Node:
    """An endpoint on the network, where others reach it, and its TU."""

    endpoint: SipEndpoint
    address: Address
    handler: EventHandler | None = None
    events: list[Event] = field(default_factory=list)
    """Events collected while the node has no handler (take them with ``events()``)."""


@dataclass(slots=True)
class _Loss:
    predicate: Callable[[Packet], bool]
    times: int


@dataclass(slots=True)
class _Connection:
    initiator: Node
    initiator_address: Address  # the ephemeral port it connects from
    acceptor: Node


class FakeNetwork:
    """Endpoints by address, a packet log, loss rules and a fake clock to drive timers."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.log: list[Packet] = []
        self._nodes: dict[Address, Node] = {}
        self._by_endpoint: dict[int, Node] = {}
        self._connections: dict[int, _Connection] = {}
        self._next_connection = 1
        self._next_port = 49152
        self._losses: list[_Loss] = []

    # -- set-up ------------------------------------------------------------------------

    def add(
        self,
        endpoint: SipEndpoint,
        *,
        handler: EventHandler | None = None,
        public: Address | None = None,
    ) -> Node:
        """Attach ``endpoint`` at its local address (or behind a NAT at ``public``)."""
        address = public or (endpoint.local_host, endpoint.local_port)
        if address in self._nodes:
            raise ValueError(f"address {address} is taken")
        node = Node(endpoint, address, handler)
        self._nodes[address] = node
        self._by_endpoint[id(endpoint)] = node
        return node

    def node(self, endpoint: SipEndpoint) -> Node:
        """The node of ``endpoint``."""
        return self._by_endpoint[id(endpoint)]

    def events(self, endpoint: SipEndpoint) -> list[Event]:
        """Take the events collected for a node without handler."""
        node = self.node(endpoint)
        taken, node.events = node.events, []
        return taken

    def drop(self, predicate: Callable[[Packet], bool], times: int = 1) -> None:
        """Lose the next ``times`` packets for which ``predicate`` is true."""
        self._losses.append(_Loss(predicate, times))

    def drop_starting(self, prefix: bytes, times: int = 1) -> None:
        """Lose the next ``times`` packets whose bytes start with ``prefix``."""
        self.drop(lambda p: p.data.startswith(prefix), times)

    def sent(self, prefix: bytes = b"") -> list[Packet]:
        """The logged packets (delivered or not) whose bytes start with ``prefix``."""
        return [p for p in self.log if p.data.startswith(prefix)]

    # -- moving things -------------------------------------------------------------------

    def pump(self, max_rounds: int = 10_000) -> int:
        """Deliver events and messages until nothing moves; time stands still.

        Returns the number of packets put on the wire.
        """
        moved = 0
        for _ in range(max_rounds):
            progress = False
            for node in list(self._nodes.values()):
                endpoint = node.endpoint
                event = endpoint.next_event()
                while event is not None:
                    progress = True
                    if node.handler is None:
                        node.events.append(event)
                    else:
                        node.handler(event)
                    event = endpoint.next_event()
                for out in endpoint.datagrams_to_send(self.clock.monotonic()):
                    progress = True
                    moved += 1
                    self._route(node, out)
            if not progress:
                return moved
        raise RuntimeError("the fake network does not settle (a message loop?)")

    def run(self, seconds: float | None = None, *, max_steps: int = 100_000) -> None:
        """Pump, then jump the clock to each next deadline and fire it, until quiet.

        With ``seconds``, stop at the first deadline past ``now + seconds`` and leave
        the clock there; without, run until no endpoint has a timer.
        """
        clock = self.clock
        end = None if seconds is None else clock.monotonic() + seconds
        for _ in range(max_steps):
            self.pump()
            deadlines = [
                d for n in self._nodes.values() if (d := n.endpoint.next_timer()) is not None
            ]
            if not deadlines or (end is not None and min(deadlines) > end):
                break
            clock.advance_to(min(deadlines))
            now = clock.monotonic()
            for node in list(self._nodes.values()):
                deadline = node.endpoint.next_timer()
                if deadline is not None and deadline <= now:
                    node.endpoint.handle_timer(now)
        else:
            raise RuntimeError("timers keep firing (a retransmission loop?)")
        if end is not None:
            clock.advance_to(end)

    def inject(self, data: bytes, *, to: SipEndpoint, source: Peer) -> None:
        """Hand ``data`` to ``to`` as if it came from ``source`` (garbage, forged peers)."""
        node = self.node(to)
        self.log.append(
            Packet(
                self.clock.monotonic(),
                source.transport,
                (source.host, source.port),
                node.address,
                data,
                True,
                source.connection,
            )
        )
        to.receive(data, source, self.clock.monotonic())

    def close(self, connection: int) -> None:
        """Close a TCP connection: both ends get ``connection_lost``."""
        conn = self._connections.pop(connection)
        now = self.clock.monotonic()
        conn.initiator.endpoint.connection_lost(connection, now)
        conn.acceptor.endpoint.connection_lost(connection, now)

    def connections(self) -> list[int]:
        """The ids of the open TCP connections."""
        return list(self._connections)

    # -- routing -------------------------------------------------------------------------

    def _route(self, sender: Node, out: Outgoing) -> None:
        peer = out.peer
        now = self.clock.monotonic()
        if peer.transport == "udp":
            target = self._nodes.get((peer.host, peer.port))
            seen = Peer("udp", sender.address[0], sender.address[1])
            self._deliver(sender.address, target, out, seen, None)
            return
        conn_id = peer.connection
        conn = self._connections.get(conn_id) if conn_id is not None else None
        if conn is None:  # no (longer a) connection: open one, as §18.2.2 would
            target = self._nodes.get((peer.host, peer.port))
            if target is None:
                self.log.append(
                    Packet(now, "tcp", sender.address, (peer.host, peer.port), out.data, False)
                )
                sender.endpoint.transport_error(peer, now)
                return
            conn_id, conn = self._open(sender, target)
        if sender is conn.initiator:
            src, target = conn.initiator_address, conn.acceptor
        else:
            src, target = conn.acceptor.address, conn.initiator
        self._deliver(src, target, out, Peer("tcp", src[0], src[1], conn_id), conn_id)

    def _open(self, initiator: Node, acceptor: Node) -> tuple[int, _Connection]:
        for conn_id, conn in self._connections.items():
            if conn.initiator is initiator and conn.acceptor is acceptor:
                return conn_id, conn  # reuse, as transports do
        conn_id, self._next_connection = self._next_connection, self._next_connection + 1
        port, self._next_port = self._next_port, self._next_port + 1
        conn = _Connection(initiator, (initiator.address[0], port), acceptor)
        self._connections[conn_id] = conn
        return conn_id, conn

    def _deliver(
        self, src: Address, target: Node | None, out: Outgoing, seen: Peer, conn: int | None
    ) -> None:
        now = self.clock.monotonic()
        dst = target.address if target is not None else (out.peer.host, out.peer.port)
        packet = Packet(now, out.peer.transport, src, dst, out.data, target is not None, conn)
        if target is not None and self._lost(packet):
            packet = Packet(now, packet.transport, src, dst, out.data, False, conn)
            target = None
        self.log.append(packet)
        if target is not None:
            target.endpoint.receive(out.data, seen, now)

    def _lost(self, packet: Packet) -> bool:
        for loss in self._losses:
            if loss.times > 0 and loss.predicate(packet):
                loss.times -= 1
                return True
        return False
