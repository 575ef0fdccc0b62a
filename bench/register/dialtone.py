"""dialtone as the registrar under test: create its Clients over REST, in bulk.

Starting dialtone and the interface it must offer are in bench/common/dialtone.py
(see also bench/register/README.md); here:
`POST /2010-04-01/Accounts/{sid}/Clients.json` with `Login`, `Password` and HTTP
Basic auth creates a Client and answers 201 (API-30), over a few keep-alive
connections in parallel.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from bench.common.dialtone import DialtoneConfig
from bench.common.ports import LOOPBACK
from bench.register.users import User, users


def _chunks(items: Sequence[User], parts: int) -> Iterator[Sequence[User]]:
    size = max(1, -(-len(items) // parts))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _create_some(cfg: DialtoneConfig, batch: Sequence[User]) -> int:
    path = f"/2010-04-01/Accounts/{cfg.account.sid}/Clients.json"
    headers = {
        "Authorization": cfg.account.basic_auth(),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    conn = http.client.HTTPConnection(LOOPBACK, cfg.http_port, timeout=30)
    try:
        for entry in batch:
            body = urllib.parse.urlencode({"Login": entry.login, "Password": entry.password})
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode(errors="replace")
            if response.status != 201:
                raise RuntimeError(
                    f"POST Clients.json {entry.login} -> {response.status}: {text[:300]}"
                )
    finally:
        conn.close()
    return len(batch)


def create_clients(cfg: DialtoneConfig, count: int, workers: int = 4) -> float:
    """Create Clients alice0000… with the benchmark passwords; return seconds taken."""
    started = time.monotonic()
    wanted = list(users(count))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = sum(pool.map(lambda batch: _create_some(cfg, batch), _chunks(wanted, workers)))
    if done != count:
        raise RuntimeError(f"created {done} Clients, wanted {count}")
    return time.monotonic() - started
