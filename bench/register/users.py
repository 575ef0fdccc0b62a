"""Benchmark users: logins alice0000…, deterministic passwords, HA1, SIPp CSV.

Passwords follow a fixed rule so any tool (Kamailio's HA1 table, dialtone's
Clients, the SIPp CSV) can be regenerated without storing them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REALM = "127.0.0.1"
_SEED = "dialtone-bench-register"


@dataclass(frozen=True)
class User:
    """One SIP user (a dialtone Client)."""

    login: str
    password: str

    def ha1(self, realm: str = REALM) -> str:
        """MD5(login:realm:password), RFC 2617 §3.2.2.2."""
        return hashlib.md5(  # noqa: S324 - SIP digest is MD5 by definition
            f"{self.login}:{realm}:{self.password}".encode()
        ).hexdigest()


def user(index: int, width: int = 4) -> User:
    """The `index`-th user: login `alice0042`, password `Pw0042-<10 hex>`."""
    digest = hashlib.sha256(f"{_SEED}:{index}".encode()).hexdigest()[:10]
    number = f"{index:0{width}d}"
    return User(login=f"alice{number}", password=f"Pw{number}-{digest}")


def users(count: int) -> Iterator[User]:
    """Users 0..count-1; logins are at least 4 digits wide (alice0000…alice9999)."""
    width = max(4, len(str(count - 1)))
    for index in range(count):
        yield user(index, width)


def write_sipp_csv(path: Path, count: int, order: str = "SEQUENTIAL") -> Path:
    """Write a SIPp `-inf` file: `login;[authentication username=… password=…];`.

    SIPp 3.6 cannot nest `[field0]` inside `[authentication …]`, so the whole
    keyword is a field of its own (field1); field0 is the login.
    """
    lines = [order]
    for entry in users(count):
        lines.append(
            f"{entry.login};[authentication username={entry.login} password={entry.password}];"
        )
    path.write_text("\n".join(lines) + "\n")
    return path
