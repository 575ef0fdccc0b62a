"""Micro-benchmark of the digest core: µs per operation on this machine.

Run: ``.venv/bin/python bench/digest_micro.py [--number N]``. The registrar targets
>= 3000 authenticated REGISTER/s on 2 shared cores, so the digest work (issue a nonce,
check it, verify the response, record nc) must stay at a few µs per REGISTER.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from dialtone.sip.digest import (
    DigestParams,
    build_authorization,
    compute_ha1,
    parse_digest,
    verify,
)
from dialtone.sip.nonce import NonceManager, NonceStatus

REALM = "127.0.0.1"
USER = "alice"
PASSWORD = "secret"
URI = "sip:127.0.0.1:5060"


def measure(name: str, func: Callable[[], object], number: int) -> float:
    """Run ``func`` ``number`` times (best of 5) and print µs/op."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, time.perf_counter() - start)
    per_op = best / number * 1e6
    print(f"{name:<44} {per_op:7.2f} µs/op")
    return per_op


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=50_000)
    number = parser.parse_args().number
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")

    for algorithm in ("MD5", "SHA-256"):
        manager = NonceManager(b"0123456789abcdef0123456789abcdef")
        ha1 = compute_ha1(USER, REALM, PASSWORD, algorithm)
        nonce = manager.issue(1000.0, realm=REALM)
        challenge = parse_digest(
            f'Digest realm="{REALM}", nonce="{nonce}", qop="auth", algorithm={algorithm}'
        )
        header = build_authorization(
            challenge, "REGISTER", URI, USER, PASSWORD, cnonce="6b8b4567327b23c6"
        )
        params = parse_digest(header)
        assert manager.check(nonce, 1001.0, realm=REALM) is NonceStatus.VALID
        assert verify(params, "REGISTER", ha1)

        print(f"-- {algorithm}")
        measure("issue", lambda m=manager: m.issue(1000.0, realm=REALM), number)
        measure("check", lambda m=manager, n=nonce: m.check(n, 1001.0, realm=REALM), number)
        measure("verify", lambda p=params, h=ha1: verify(p, "REGISTER", h), number)
        measure("parse_digest (Authorization)", lambda v=header: parse_digest(v), number)

        def full(m: NonceManager = manager, h: str = ha1, p: DigestParams = params) -> None:
            n = m.issue(1000.0, realm=REALM)
            m.check(n, 1001.0, realm=REALM)
            verify(p, "REGISTER", h)
            m.accept_nc(n, 1)

        measure("issue + check + verify + accept_nc", full, number)
        manager.prune(2000.0)


if __name__ == "__main__":
    main()
