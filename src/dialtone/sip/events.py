"""The vocabulary between the sans-IO SIP endpoint and what drives it.

Transports hand the endpoint bytes with a :class:`Peer`; the endpoint hands back
:class:`Outgoing` datagrams/stream writes and the events below (small frozen dataclasses,
wsproto/aioquic style).  Services (registrar, calls) consume events and answer through
the endpoint's methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dialtone.sip.message import Request, Response

Transport = Literal["udp", "tcp"]


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote transport address; ``connection`` identifies a stream connection (TCP)."""

    transport: Transport
    host: str
    port: int
    connection: int | None = None

    @property
    def reliable(self) -> bool:
        """Streams are reliable: no retransmissions (RFC 3261 §17.1.1.2)."""
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Bytes to send to a peer (a datagram, or a write on its connection)."""

    data: bytes
    peer: Peer


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request arrived in a new server transaction (not a retransmission).

    Answer it with ``endpoint.respond(event.transaction, response)``.  ``transaction`` is
    ``None`` for an ACK (ACKs have no server transaction; a 2xx ACK goes to the dialog).
    """

    request: Request
    peer: Peer
    transaction: str | None


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE server transaction; the endpoint answered it 200.

    The call layer should answer the INVITE (``invite_transaction``) with 487.
    """

    request: Request
    peer: Peer
    invite_transaction: str


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction (or a 2xx retransmission after it ended)."""

    response: Response
    peer: Peer
    transaction: str | None


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """A client transaction got no final response in time (Timer B or F), or a server
    INVITE transaction got no ACK for its final response (Timer H)."""

    transaction: str
    request: Request


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """Sending a transaction's message failed (connection refused or closed)."""

    transaction: str
    request: Request


Event = RequestReceived | CancelReceived | ResponseReceived | TransactionTimeout | TransportFailed
