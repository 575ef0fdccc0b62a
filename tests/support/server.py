"""Run the real ``dialtone serve`` as a subprocess on free ports (API and interop tests)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.ports import free_port, free_udp_tcp_port


@dataclass
class ServerProcess:
    """A dialtone server started by a test, stopped by PID."""

    data_dir: Path
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    http_port: int = field(default_factory=free_port)
    sip_port: int = field(default_factory=free_udp_tcp_port)
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api(self) -> str:
        """The Twilio-prefixed account base path, as an absolute URL."""
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}"

    @property
    def restcomm_api(self) -> str:
        """The Restcomm-prefixed account base path, as an absolute URL."""
        return f"{self.base_url}/restcomm/2012-04-24/Accounts/{self.account_sid}"

    def command(self) -> list[str]:
        """The command line that starts this server."""
        return [
            sys.executable,
            "-m",
            "dialtone",
            "serve",
            "--http-port",
            str(self.http_port),
            "--sip-port",
            str(self.sip_port),
            "--data-dir",
            str(self.data_dir),
            "--log-format",
            "json",
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        """The environment: fixed credentials plus any extras."""
        env = dict(os.environ)
        env.update(
            DIALTONE_ACCOUNT_SID=self.account_sid,
            DIALTONE_AUTH_TOKEN=self.auth_token,
            **self.extra_env,
        )
        return env

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start and wait until ``/health`` answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.http_port}.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dialtone exited early:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dialtone did not become ready:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it hangs)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def client(self) -> httpx.Client:
        """An HTTP client authenticated as the account."""
        return httpx.Client(auth=(self.account_sid, self.auth_token), timeout=10)
