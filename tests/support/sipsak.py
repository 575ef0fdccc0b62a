"""Bounded ``sipsak`` 0.9.8 probes (OPTIONS, REGISTER) against 127.0.0.1.

Exit codes (sipsak's own, see ``man sipsak``; without ``-N``):

==========  ==================================================================
``0``       a 2xx final response arrived (REGISTER: the whole usrloc run passed)
``1``       a final response other than 1xx/2xx arrived (e.g. 404, 403, 5xx)
``2``       local error: bad options, unresolvable name
``3``       remote error: no answer (timeout), ICMP port unreachable
            ("send failure: Connection refused"), redirect without Contact
``124``     :data:`KILLED`: sipsak outlived ``timeout`` + grace and *we* killed it
==========  ==================================================================

Port quirk: sipsak truncates a 5-digit port in the request URI it builds from
``-s`` (``sip:b@127.0.0.1:35117`` goes out as ``OPTIONS sip:b@127.0.0.1:3511``,
though the datagram reaches 35117).  So for ports below 10000 the port is put in
the URI; for higher ports the URI carries no port and ``-r PORT`` addresses the
datagram (request URI ``sip:user@127.0.0.1``).  Pass ``uri=`` to take control.

Timing: sipsak's UDP retransmissions stop after about ``T1 * (2**k - 1)`` ms with
``2**(k-1) <= D``; we pick ``-Z`` (T1) and ``-D`` so that sipsak gives up before
``timeout`` on its own, and kill it (by PID) ``grace`` seconds later if it did not.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Literal, NamedTuple

SIPSAK = "sipsak"

OK = 0
UNEXPECTED_RESPONSE = 1
LOCAL_ERROR = 2
REMOTE_ERROR = 3
KILLED = 124

Transport = Literal["udp", "tcp"]


class SipsakResult(NamedTuple):
    """``(returncode, output)`` of one sipsak run (stdout and stderr merged)."""

    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        """True when sipsak exited 0 (a 2xx arrived)."""
        return self.returncode == OK


def target_args(host: str, port: int, user: str | None = None) -> list[str]:
    """``-s`` (and ``-r``) arguments addressing ``host:port`` despite the 5-digit-port bug."""
    who = f"{user}@" if user else ""
    if port < 10000:
        return ["-s", f"sip:{who}{host}:{port}"]
    return ["-s", f"sip:{who}{host}", "-r", str(port)]


def timing_args(timeout: float) -> list[str]:
    """``-Z T1 -D factor`` so that sipsak gives up by itself within ``timeout`` seconds."""
    budget_ms = max(100, int(timeout * 1000))
    t1 = min(500, max(50, budget_ms // 2))
    factor = max(1, budget_ms // (2 * t1))
    return ["-Z", str(t1), "-D", str(factor)]


def run(args: Sequence[str], timeout: float = 5.0, grace: float = 2.0) -> SipsakResult:
    """Run ``sipsak ARGS``; kill it by PID if it runs past ``timeout + grace`` seconds."""
    proc = subprocess.Popen(
        [SIPSAK, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = proc.communicate(timeout=timeout + grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        text = out.decode("utf-8", errors="replace")
        return SipsakResult(KILLED, f"{text}\n[killed after {timeout + grace}s]")
    return SipsakResult(proc.returncode, out.decode("utf-8", errors="replace"))


def options(
    host: str = "127.0.0.1",
    port: int = 5060,
    timeout: float = 5.0,
    *,
    user: str | None = None,
    uri: str | None = None,
    transport: Transport = "udp",
    verbosity: int = 2,
    extra_args: Sequence[str] = (),
) -> SipsakResult:
    """Send one OPTIONS to ``host:port`` (request URI ``sip:[user@]host[:port]``).

    Returns ``(returncode, output)``: 0 means a 2xx came back; see the module
    docstring for the other codes.  ``verbosity`` 2 prints the reply, 3 every packet.
    """
    args = _common(host, port, timeout, user, uri, transport, verbosity)
    return run([*args, *extra_args], timeout)


def register(
    host: str,
    port: int,
    user: str,
    password: str | None = None,
    timeout: float = 5.0,
    *,
    expires: int = 60,
    contact: str | None = None,
    auth_user: str | None = None,
    uri: str | None = None,
    transport: Transport = "udp",
    verbosity: int = 2,
    extra_args: Sequence[str] = (),
) -> SipsakResult:
    """REGISTER ``user`` at ``host:port`` (sipsak usrloc mode, one run).

    ``contact`` is the binding to add (default: sipsak's own address); use
    ``contact="*"`` with ``expires=0`` to remove all bindings.  ``password``
    answers an MD5 digest challenge; the digest username is ``auth_user`` or
    ``user`` (sipsak's own guess would be ``"user@"``).  Returns
    ``(returncode, output)``; 0 means the REGISTER got a 2xx.
    """
    args = ["-U", *_common(host, port, timeout, user, uri, transport, verbosity)]
    args += ["-x", str(expires), "-u", auth_user or user]
    if contact is not None:
        args += ["-C", contact]
    if password is not None:
        args += ["-a", password]
    return run([*args, *extra_args], timeout)


def _common(
    host: str,
    port: int,
    timeout: float,
    user: str | None,
    uri: str | None,
    transport: Transport,
    verbosity: int,
) -> list[str]:
    args = ["-s", uri, "-r", str(port)] if uri is not None else target_args(host, port, user)
    args += timing_args(timeout)
    args += ["-E", transport]
    if verbosity > 0:
        args.append("-" + "v" * min(verbosity, 3))
    return args
