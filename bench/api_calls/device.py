"""The callee: one Client registered from the port a SIPp UAS then listens on.

The Client registers with `bench.common.dialtone.register` (REGISTER over UDP from the
chosen port, MD5 digest, qop=auth); the socket is then closed so SIPp can bind the same
port. Every INVITE dialtone sends for `client:<login>` then reaches that SIPp (REG-1, LEG-1).

`UasStep` is one SIPp run of `uas_answer_bye.xml` for one step: `-m calls`, bounded by
`-timeout`, statistics in a `-trace_stat` CSV read with bench/common/sipp.py's parser.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from bench.common.ports import LOOPBACK
from bench.common.procs import ManagedProcess
from bench.common.sipp import BUFFERS, SippFiles, error_lines
from bench.common.sipp import start as start_sipp

SCENARIO = Path(__file__).with_name("uas_answer_bye.xml")


@dataclass(frozen=True)
class UasStep:
    """One bounded SIPp UAS run: answers `calls` INVITEs, hangs each up after `hold_ms`."""

    port: int
    media_port: int
    calls: int
    hold_ms: int
    out_dir: Path
    name: str
    timeout_s: int

    @property
    def files(self) -> SippFiles:
        """Its statistics and error files."""
        return SippFiles(self.name, self.out_dir)

    @property
    def stat_path(self) -> Path:
        """SIPp's `-trace_stat` CSV."""
        return self.files.stat_path

    def argv(self) -> list[str]:
        """The SIPp command line."""
        return [
            shutil.which("sipp") or "sipp",
            "-sf", str(SCENARIO),
            "-i", LOOPBACK, "-ci", LOOPBACK,
            "-p", str(self.port), "-mp", str(self.media_port),
            "-t", "u1",
            "-m", str(self.calls),
            # The registrar's keep-alive OPTIONS (REG-6, every 60 s) reaches this port:
            # answer it 200 without counting it as one of the `-m` calls (else the step's
            # last INVITE finds SIPp gone and ends no-answer).
            "-aa",
            "-set", "hold_ms", str(self.hold_ms),
            *BUFFERS,
            "-timeout", f"{self.timeout_s}s", "-timeout_error",
            "-nostdin",
            *self.files.file_args(),
        ]  # fmt: skip

    def start(self, cpus: str | None) -> ManagedProcess:
        """Start SIPp (pinned to `cpus`); the caller waits for it and reads the stats."""
        return start_sipp(self.files, self.argv(), cpus, process_name=f"sipp-{self.name}")

    def errors(self, limit: int = 5) -> list[str]:
        """First distinct lines of SIPp's error file."""
        return error_lines([self.files.error_path], limit, named=False)


def port_bound(port: int) -> bool:
    """True when some process holds UDP 127.0.0.1:`port` (SIPp is up)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False
