"""The SIPp command line of one REGISTER load step.

The verdict comes from SIPp's exit code (0 = every call passed, 1 = some
failed, >= 97 = SIPp itself failed); figures from the `-trace_stat` CSV
(final cumulative row, parsed by bench/common/sipp.py). SIPp is bounded
twice: by `-m` calls and by `-timeout`, and the harness kills it by PID if it
still overruns.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.common.procs import ManagedProcess
from bench.common.sipp import BUFFERS, SippFiles, error_lines
from bench.common.sipp import start as start_sipp

SCENARIO = Path(__file__).with_name("register_auth.xml")


@dataclass(frozen=True)
class SippLoad:
    """One bounded SIPp run against `target_port`."""

    target_port: int
    local_port: int
    media_port: int
    rate: int
    calls: int
    csv_path: Path
    out_dir: Path
    name: str
    transport: str = "u1"  # u1 = one UDP socket, t1 = one TCP connection
    timeout_s: int = 60
    recv_timeout_ms: int = 10000
    scenario: Path = SCENARIO

    @property
    def files(self) -> SippFiles:
        """Its statistics and error files."""
        return SippFiles(self.name, self.out_dir)

    def argv(self) -> list[str]:
        """The exact SIPp command line for this step."""
        sipp = shutil.which("sipp") or "sipp"
        return [
            sipp, f"127.0.0.1:{self.target_port}",
            "-sf", str(self.scenario),
            "-inf", str(self.csv_path),
            "-i", "127.0.0.1", "-ci", "127.0.0.1",
            "-p", str(self.local_port), "-mp", str(self.media_port),
            "-t", self.transport,
            "-r", str(self.rate), "-m", str(self.calls),
            # Open-call cap: 2 s worth of calls; a stalled server throttles SIPp
            # (visible as an achieved rate below the offered one), not memory.
            "-l", str(max(100, self.rate * 2)),
            "-recv_timeout", str(self.recv_timeout_ms),
            # 4 MiB socket buffers (= net.core.rmem_max here): with SIPp's 64 KiB
            # default the kernel drops responses at SIPp's socket above ~5000/s
            # and the resulting retransmissions would be blamed on the server.
            *BUFFERS,
            "-timeout", f"{self.timeout_s}s", "-timeout_error",
            # A failed REGISTER "call" must not send a BYE to the registrar.
            "-default_behaviors", "all,-bye",
            "-nostdin",
            *self.files.file_args(),
        ]  # fmt: skip

    @property
    def stat_path(self) -> Path:
        """Where SIPp writes its statistics CSV."""
        return self.files.stat_path


def start(load: SippLoad, cpus: str | None) -> ManagedProcess:
    """Start SIPp for `load` (pinned to `cpus`); the caller waits and reads the stats."""
    return start_sipp(load.files, load.argv(), cpus, process_name=f"sipp-{load.name}")


def error_summary(load: SippLoad, limit: int = 5) -> list[str]:
    """First distinct lines of SIPp's error file (empty when all went well)."""
    return error_lines([load.files.error_path], limit, named=False)
