"""Run one SIPp load step and read its verdict and figures.

The verdict comes from SIPp's exit code (0 = every call passed, 1 = some
failed, >= 97 = SIPp itself failed); figures from the `-trace_stat` CSV
(final cumulative row). SIPp is bounded twice: by `-m` calls and by
`-timeout`, and the harness kills it by PID if it still overruns.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.common.procs import ManagedProcess
from bench.common.report import command_version

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

    def argv(self) -> list[str]:
        """The exact SIPp command line for this step."""
        sipp = shutil.which("sipp") or "sipp"
        return [
            sipp, f"127.0.0.1:{self.target_port}",
            "-sf", str(self.scenario),
            "-inf", str(self.csv_path),
            "-i", "127.0.0.1", "-p", str(self.local_port), "-mp", str(self.media_port),
            "-t", self.transport,
            "-r", str(self.rate), "-m", str(self.calls),
            # Open-call cap: 2 s worth of calls; a stalled server throttles SIPp
            # (visible as an achieved rate below the offered one), not memory.
            "-l", str(max(100, self.rate * 2)),
            "-recv_timeout", str(self.recv_timeout_ms),
            # 4 MiB socket buffers (= net.core.rmem_max here): with SIPp's 64 KiB
            # default the kernel drops responses at SIPp's socket above ~5000/s
            # and the resulting retransmissions would be blamed on the server.
            "-buff_size", "4194304",
            "-timeout", f"{self.timeout_s}s", "-timeout_error",
            # A failed REGISTER "call" must not send a BYE to the registrar.
            "-default_behaviors", "all,-bye",
            "-nostdin",
            "-trace_stat", "-stf", str(self.stat_path), "-fd", "1",
            "-trace_err", "-error_file", str(self.error_path),
        ]  # fmt: skip

    @property
    def stat_path(self) -> Path:
        """Where SIPp writes its statistics CSV."""
        return self.out_dir / f"{self.name}.stat.csv"

    @property
    def error_path(self) -> Path:
        """Where SIPp writes unexpected messages and errors."""
        return self.out_dir / f"{self.name}.errors.log"


@dataclass(frozen=True)
class SippStats:
    """Cumulative figures of one SIPp run."""

    created: int
    successful: int
    failed: int
    retransmissions: int
    out_of_call: int
    dead_call: int
    duration_s: float
    creation_s: float
    rtd_buckets: dict[str, int]

    @property
    def achieved_rate(self) -> float:
        """Successful registrations per second over the time SIPp took to start them all.

        SIPp stops starting calls while its open-call cap (`-l`) is reached, so a
        server that falls behind lowers this rate; a few late retransmitted calls
        at the end of a step do not (they are judged by the retransmission count).
        """
        return self.successful / self.creation_s if self.creation_s > 0 else 0.0

    def rtd_percentile(self, fraction: float) -> str:
        """Upper bound of the bucket holding the `fraction` quantile of rtd 1 ('<5 ms')."""
        total = sum(self.rtd_buckets.values())
        if total == 0:
            return "n/a"
        seen = 0
        for label, count in self.rtd_buckets.items():
            seen += count
            if seen >= fraction * total:
                return f"{label} ms"
        return "n/a"


def _epoch(field: str) -> float:
    # SIPp time fields look like "2026-12-01\t20:11:00.314864\t1796155860.314864".
    return float(field.split("\t")[-1])


def _creation_seconds(rows: list[dict[str, str]]) -> float:
    """When the last call was created, interpolated between the 1 s stat rows."""
    start = _epoch(rows[0]["StartTime"])
    total = int(rows[-1]["TotalCallCreated"])
    previous_time, previous_count = start, 0
    for row in rows:
        now, count = _epoch(row["CurrentTime"]), int(row["TotalCallCreated"])
        if count >= total:
            if count == previous_count:
                return now - start
            share = (total - previous_count) / (count - previous_count)
            return previous_time + share * (now - previous_time) - start
        previous_time, previous_count = now, count
    return _epoch(rows[-1]["CurrentTime"]) - start


def read_stats(path: Path) -> SippStats:
    """Parse a SIPp `-trace_stat` CSV (`-fd 1`): final cumulative row plus timing."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    if not rows:
        raise ValueError(f"empty SIPp stat file {path}")
    last = rows[-1]
    buckets = {
        key.removeprefix("ResponseTimeRepartition1_"): int(value or 0)
        for key, value in last.items()
        if key and key.startswith("ResponseTimeRepartition1_")
    }
    return SippStats(
        created=int(last["TotalCallCreated"]),
        successful=int(last["SuccessfulCall(C)"]),
        failed=int(last["FailedCall(C)"]),
        retransmissions=int(last["Retransmissions(C)"]),
        out_of_call=int(last["OutOfCallMsgs(C)"]),
        dead_call=int(last["DeadCallMsgs(C)"]),
        duration_s=_epoch(last["CurrentTime"]) - _epoch(last["StartTime"]),
        creation_s=_creation_seconds(rows),
        rtd_buckets=buckets,
    )


def start(load: SippLoad, cpus: str | None) -> ManagedProcess:
    """Start SIPp for `load` (pinned to `cpus`); the caller waits and reads the stats."""
    load.out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (load.stat_path, load.error_path):
        stale.unlink(missing_ok=True)
    return ManagedProcess(f"sipp-{load.name}", load.argv(), load.out_dir, cpus=cpus)


def error_summary(load: SippLoad, limit: int = 5) -> list[str]:
    """First distinct lines of SIPp's error file (empty when all went well)."""
    try:
        lines = load.error_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    seen: list[str] = []
    for line in lines:
        text = line.strip()
        if text and text not in seen and not text.startswith("-----"):
            seen.append(text[:200])
        if len(seen) >= limit:
            break
    return seen


def version() -> str:
    """`v3.6.1-SCTP-PCAP-RTPSTREAM` or 'unknown'."""
    return command_version(["sipp", "-v"], r"SIPp\s+(v[\w.\-]+?)\.?(?:\s|$)")
