"""Listening sockets with startup errors that name the cause in one line."""

from __future__ import annotations

import errno
import os
import socket


def bind_tcp(host: str, port: int, what: str) -> socket.socket:
    """A listening non-blocking TCP socket; raise StartupError naming the address."""
    from dialtone.errors import StartupError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise StartupError(bind_error(what, "TCP", host, port, exc)) from None
    sock.setblocking(False)
    return sock


def bind_error(what: str, proto: str, host: str, port: int, exc: OSError) -> str:
    """One line saying why ``host:port`` could not be bound."""
    where = f"{url_host(host)}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{what} address {where} ({proto}) is already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{what} address {url_host(host)} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"{what} port {port} needs privileges (use a port above 1023)"
    return f"cannot listen on {what} {where} ({proto}): {os.strerror(exc.errno or 0)}"


def url_host(host: str) -> str:
    """``::1`` → ``[::1]`` for URLs and host:port strings."""
    return f"[{host}]" if ":" in host else host
