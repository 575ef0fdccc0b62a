"""Random hex strings for tags, branches and Call-IDs, without a system call each.

:func:`random_hex` is ``secrets.token_hex`` from a pool of ``os.urandom`` bytes; the
endpoint, the application and the registrar draw their tags from it (re-exported by
:mod:`dialtone.sip.endpoint`).
"""

from __future__ import annotations

import os
import secrets
from typing import Final

__all__ = ["random_hex"]


class _RandomPool:
    """os.urandom bytes bought 4 KiB at a time, each handed out once (see random_hex)."""

    __slots__ = ("at", "data")

    SIZE: Final = 4096

    def __init__(self) -> None:
        self.data = b""
        self.at = 0

    def reset(self) -> None:
        # A forked child must not hand out the bytes its parent hands out.
        self.data, self.at = b"", 0


_POOL: Final = _RandomPool()
os.register_at_fork(after_in_child=_POOL.reset)


def random_hex(nbytes: int) -> str:
    """Like ``secrets.token_hex(nbytes)``: ``nbytes`` bytes from ``os.urandom``, in hex.

    The bytes come from a pool refilled 4 KiB at a time, so a tag or branch costs a
    slice rather than a ``getrandom`` system call (four per registration).  Every byte
    is used once; the randomness is the operating system's, as with :mod:`secrets`.
    """
    pool = _POOL
    at = pool.at
    end = at + nbytes
    if end > len(pool.data):
        if nbytes > _RandomPool.SIZE:
            return secrets.token_hex(nbytes)
        pool.data = os.urandom(_RandomPool.SIZE)
        at, end = 0, nbytes
    pool.at = end
    return pool.data[at:end].hex()
