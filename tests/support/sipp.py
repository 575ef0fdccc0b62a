"""Run SIPp scenarios against a server on 127.0.0.1, bounded in time (recipes/sip-peers.md)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

SCENARIOS = Path(__file__).parents[1] / "interop" / "scenarios"


@dataclass(frozen=True)
class SippResult:
    """SIPp's exit code (0: every call passed), its error file and its message trace."""

    returncode: int
    errors: str
    messages: str
    output: str

    def describe(self) -> str:
        """Everything useful when a test fails."""
        return (
            f"sipp exit {self.returncode}\n--- errors\n{self.errors[-3000:]}\n"
            f"--- messages\n{self.messages[-6000:]}\n--- output\n{self.output[-2000:]}"
        )


def run_scenario(
    scenario: str,
    server_port: int,
    workdir: Path,
    *,
    transport: str = "udp",
    login: str = "caller",
    password: str = "x",
    auth_user: str | None = None,
    service: str | None = None,
    local_port: int | None = None,
    keys: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> SippResult:
    """Run one SIPp scenario (``-m 1``) against ``127.0.0.1:server_port``."""
    workdir.mkdir(parents=True, exist_ok=True)
    errors = workdir / f"{scenario}-errors.log"
    messages = workdir / f"{scenario}-messages.log"
    args = [
        "sipp",
        f"127.0.0.1:{server_port}",
        "-sf",
        str(SCENARIOS / f"{scenario}.xml"),
        "-t",
        "u1" if transport == "udp" else "t1",
        "-i",
        "127.0.0.1",
        "-ci",
        "127.0.0.1",  # its control socket too: nothing listens beyond loopback
        "-p",
        str(local_port or free_port()),
        "-mp",
        str(free_port()),
        "-m",
        "1",
        "-nostdin",
        *(["-s", login] if service is None else []),
        "-au",
        auth_user or login,
        "-ap",
        password,
        "-default_behaviors",
        "all,-bye",
        "-recv_timeout",
        "5000",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        str(errors),
        "-trace_msg",
        "-message_file",
        str(messages),
    ]
    if service is not None:
        args += ["-s", service]
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout + 15, check=False, cwd=workdir
    )
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    return SippResult(proc.returncode, read(errors), read(messages), proc.stdout + proc.stderr)
