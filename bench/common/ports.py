"""Free loopback ports for benchmark peers.

The OS picks the port (bind to port 0), so parallel runs never collide. A SIP
server listens on UDP and TCP at the same port number, hence `free_port`
checks both. Port 5060 is never returned: the lead's dev server may own it.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
_RESERVED = frozenset({5060, 5061})


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(*, udp: bool = True, tcp: bool = True, exclude: set[int] | None = None) -> int:
    """Return a loopback port that is free now on every requested transport.

    Ports in `exclude` (e.g. ones already handed out in this run) are skipped.
    The port is below 60000 and not 5060/5061. There is an unavoidable race
    between this check and the peer's own bind; the caller retries on failure.
    """
    taken = _RESERVED | (exclude or set())
    for _ in range(200):
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if port in taken or port >= 60000:
            continue
        if udp and not _bindable(port, socket.SOCK_DGRAM):
            continue
        if tcp and not _bindable(port, socket.SOCK_STREAM):
            continue
        return port
    raise RuntimeError("no free loopback port found")


def free_ports(count: int, *, udp: bool = True, tcp: bool = True) -> list[int]:
    """Return `count` distinct free loopback ports (see `free_port`)."""
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(udp=udp, tcp=tcp, exclude=set(ports)))
    return ports
