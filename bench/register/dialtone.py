"""dialtone as the registrar under test: start it and create its Clients over REST.

Interface assumed (see bench/register/README.md):

* `dialtone serve --sip-port P --http-port H --data-dir D` (the command is a
  template, `--dialtone-cmd`), SIP on UDP+TCP 127.0.0.1:P, HTTP on 127.0.0.1:H;
* `DIALTONE_ACCOUNT_SID` / `DIALTONE_AUTH_TOKEN` fix the account's credentials,
  `DIALTONE_DOMAIN=127.0.0.1` (realm = domain) is passed as well;
* `GET /health` answers 200 once the server is up (API-60), OPTIONS gets an
  answer (SIP-3);
* `POST /2010-04-01/Accounts/{sid}/Clients.json` with `Login`, `Password`
  and HTTP Basic auth creates a Client and answers 201 (API-30).
"""

from __future__ import annotations

import base64
import http.client
import secrets
import shlex
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.common.ports import LOOPBACK
from bench.common.procs import ManagedProcess
from bench.common.sip import wait_sip_ready
from bench.register.users import User, users

DEFAULT_CMD = (
    "{venv}/bin/dialtone serve --sip-port {sip_port} --http-port {http_port} --data-dir {data_dir}"
)


@dataclass(frozen=True)
class Account:
    """dialtone account credentials: AccountSid = AC + 32 hex, AuthToken = 32 hex."""

    sid: str
    token: str

    @staticmethod
    def generate() -> Account:
        """Fresh random credentials."""
        return Account(sid="AC" + secrets.token_hex(16), token=secrets.token_hex(16))

    def basic_auth(self) -> str:
        """The HTTP `Authorization` header value."""
        raw = f"{self.sid}:{self.token}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class DialtoneConfig:
    """How to start dialtone for one benchmark phase."""

    command: str
    work_dir: Path
    sip_port: int
    http_port: int
    account: Account
    startup_timeout_s: float = 60.0

    def argv(self) -> list[str]:
        """The command template filled in and split like a shell would."""
        venv = Path(sys.executable).parent.parent
        text = self.command.format(
            venv=venv,
            sip_port=self.sip_port,
            http_port=self.http_port,
            data_dir=self.work_dir / "data",
        )
        return shlex.split(text)

    def env(self) -> dict[str, str]:
        """Environment fixing the account and the SIP domain."""
        return {
            "DIALTONE_ACCOUNT_SID": self.account.sid,
            "DIALTONE_AUTH_TOKEN": self.account.token,
            "DIALTONE_DOMAIN": LOOPBACK,
        }


def _wait_health(cfg: DialtoneConfig, proc: ManagedProcess) -> None:
    deadline = time.monotonic() + cfg.startup_timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"dialtone exited at start-up:\n{proc.stderr_tail()}")
        conn = http.client.HTTPConnection(LOOPBACK, cfg.http_port, timeout=2)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"dialtone /health not 200 within {cfg.startup_timeout_s} s")


def start(cfg: DialtoneConfig, cpus: str | None, log_dir: Path) -> ManagedProcess:
    """Start dialtone pinned to `cpus`; return once HTTP and SIP both answer."""
    (cfg.work_dir / "data").mkdir(parents=True, exist_ok=True)
    try:
        proc = ManagedProcess("dialtone", cfg.argv(), log_dir, cpus=cpus, env=cfg.env())
    except FileNotFoundError as exc:
        raise RuntimeError(f"cannot start dialtone ({exc}); is it installed in the venv?") from exc
    try:
        _wait_health(cfg, proc)
        wait_sip_ready(cfg.sip_port, timeout=cfg.startup_timeout_s)
    except (RuntimeError, TimeoutError):
        proc.stop()
        raise
    return proc


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
