"""SIPp runs of the benchmarks: common options, start/stop by PID, verdict and statistics.

The verdict of a bounded SIPp (`-m` calls, `-timeout`) is its exit code (0 =
every call passed, 1 = some failed, >= 97 = SIPp itself failed). A SIPp in
server mode is stopped with SIGUSR1 (its graceful quit: final statistics
written) and judged by the failed-call count of its `-trace_stat` file, since
a stopped SIPp exits 0 whatever happened. Figures come from the `-trace_stat`
CSV (`-fd 1`: a row per second, the last one cumulative).
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common.ports import LOOPBACK
from bench.common.procs import ManagedProcess
from bench.common.report import command_version

# Socket buffers of 4 MiB (= net.core.rmem_max here): with SIPp's 64 KiB default
# the kernel drops datagrams at SIPp's own socket in bursts, and the resulting
# retransmissions would be blamed on the server.
BUFFERS = ("-buff_size", "4194304")


@dataclass(frozen=True)
class SippFiles:
    """Where one SIPp run (`name`, in `out_dir`) writes its statistics, errors and logs."""

    name: str
    out_dir: Path

    @property
    def stat_path(self) -> Path:
        """The `-trace_stat` CSV."""
        return self.out_dir / f"{self.name}.stat.csv"

    @property
    def error_path(self) -> Path:
        """Unexpected messages and errors (`-trace_err`)."""
        return self.out_dir / f"{self.name}.errors.log"

    @property
    def log_path(self) -> Path:
        """The `<log>` lines (timestamps, `-trace_logs`)."""
        return self.out_dir / f"{self.name}.log"

    def file_args(self, trace_logs: bool = False) -> list[str]:
        """`-trace_stat`, `-trace_err` (and `-trace_logs`) options for these files."""
        args = [
            "-trace_stat", "-stf", str(self.stat_path), "-fd", "1",
            "-trace_err", "-error_file", str(self.error_path),
        ]  # fmt: skip
        if trace_logs:
            args += ["-trace_logs", "-log_file", str(self.log_path)]
        return args


@dataclass(frozen=True)
class SippRun:
    """One SIPp process of a step: its files and its exact command line."""

    files: SippFiles
    argv: tuple[str, ...]


def local_args(local_port: int, media_port: int, control_port: int | None = None) -> list[str]:
    """Loopback only, explicit SIP/media ports, one UDP socket, 4 MiB buffers, no stdin.

    `control_port`: SIPp's remote-control UDP socket, on loopback either way; without it
    SIPp takes 8888 or the next free port.
    """
    args = [
        "-i", LOOPBACK, "-p", str(local_port), "-mp", str(media_port),
        "-t", "u1", *BUFFERS, "-nostdin", "-ci", LOOPBACK,
    ]  # fmt: skip
    if control_port is not None:
        args += ["-cp", str(control_port)]
    return args


def caller_limits(rate: int, calls: int, call_seconds: float, timeout_s: int) -> list[str]:
    """A bounded caller: `-r`, `-m`, the open-call cap, `-recv_timeout` and `-timeout`.

    The open-call cap is a call's length plus 2 s worth of calls: a server that
    falls behind throttles SIPp (achieved < offered), not its memory. A call
    waiting 10 s for a message fails; overrunning `timeout_s` is an error.
    """
    cap = max(100, int(rate * (call_seconds + 2)))
    return [
        "-r", str(rate), "-m", str(calls), "-l", str(cap),
        "-recv_timeout", "10000",
        "-timeout", f"{timeout_s}s", "-timeout_error",
    ]  # fmt: skip


def server_limits(timeout_s: int) -> list[str]:
    """A SIPp server (UAS) of one step: a call waiting 10 s for a message fails; `-timeout`."""
    return ["-recv_timeout", "10000", "-timeout", f"{timeout_s}s"]


def caller_run(
    files: SippFiles,
    scenario: Path,
    target_port: int,
    service: str,
    ports: Sequence[int],
    *,
    rate: int,
    calls: int,
    call_seconds: float,
    timeout_s: int,
    trace_logs: bool = False,
    extra: Sequence[str] = (),
) -> SippRun:
    """A bounded caller: `calls` calls of `scenario` at `rate`/s to `service` at `target_port`.

    `ports`: its SIP and media ports (and control port, see `local_args`);
    `extra`: the scenario's own options (`-d`, `-set`).
    """
    argv = [
        shutil.which("sipp") or "sipp", f"{LOOPBACK}:{target_port}",
        "-sf", str(scenario), "-s", service,
        *local_args(*ports),
        *files.file_args(trace_logs),
        *extra,
        *caller_limits(rate, calls, call_seconds, timeout_s),
    ]  # fmt: skip
    return SippRun(files, tuple(argv))


def server_run(
    files: SippFiles,
    scenario: Path,
    ports: Sequence[int],
    *,
    timeout_s: int,
    trace_logs: bool = False,
    extra: Sequence[str] = (),
) -> SippRun:
    """A SIPp server (UAS) of one step on `ports` (see `caller_run`); see `stop_gracefully`."""
    argv = [
        shutil.which("sipp") or "sipp",
        "-sf", str(scenario),
        *local_args(*ports),
        *files.file_args(trace_logs),
        *extra,
        *server_limits(timeout_s),
    ]  # fmt: skip
    return SippRun(files, tuple(argv))


def start(
    files: SippFiles, argv: Sequence[str], cpus: str | None, process_name: str | None = None
) -> ManagedProcess:
    """Start one SIPp run pinned to `cpus`, its old output files removed first.

    Its stdout/stderr go to `process_name` (default `files.name`) `.out`/`.err`.
    """
    files.out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (files.stat_path, files.error_path, files.log_path):
        stale.unlink(missing_ok=True)
    return ManagedProcess(process_name or files.name, argv, files.out_dir, cpus=cpus)


def start_servers(
    runs: Sequence[tuple[SippFiles, Sequence[str]]], cpus: str | None
) -> list[ManagedProcess]:
    """Start SIPp servers (UAS scenarios) and give them a moment to bind their ports."""
    procs: list[ManagedProcess] = []
    try:
        for files, argv in runs:
            procs.append(start(files, argv, cpus))
        if procs:
            time.sleep(0.5)
        dead = [proc for proc in procs if not proc.alive()]
        if dead:
            tails = "\n".join(proc.stderr_tail(5) for proc in dead)
            names = ", ".join(proc.name for proc in dead)
            raise RuntimeError(f"SIPp server(s) {names} exited at start:\n{tails}")
    except BaseException:
        stop_gracefully(procs)
        raise
    return procs


def stop_gracefully(procs: Sequence[ManagedProcess], grace: float = 5.0) -> None:
    """SIGUSR1 (graceful quit: final statistics written), then SIGTERM/SIGKILL by PID."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        proc.stop()


def open_calls(files: SippFiles) -> int | None:
    """Calls a running SIPp still has open, from its latest 1 s statistics row."""
    try:
        lines = files.stat_path.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 2:
        return None
    header = lines[0].split(";")
    last = lines[-1].split(";")
    try:
        return int(last[header.index("CurrentCall")])
    except (ValueError, IndexError):
        return None


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
        """Successful calls per second over the time SIPp took to start them all.

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


def stats_of(path: Path) -> SippStats | None:
    """Final statistics of a finished SIPp, or None when it left none."""
    try:
        return read_stats(path)
    except (OSError, ValueError, KeyError, IndexError):
        return None


def error_lines(paths: Sequence[Path], limit: int = 6, *, named: bool = True) -> list[str]:
    """First distinct lines of SIPp error files (empty when all went well).

    `named`: prefix each line with its file's stem (which SIPp run said it).
    """
    seen: list[str] = []
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            text = line.strip()
            if not text or text.startswith(("-----", "The following")):
                continue
            entry = f"{path.stem}: {text[:240]}" if named else text[:200]
            if entry not in seen:
                seen.append(entry)
            if len(seen) >= limit:
                return seen
    return seen


def log_time(seconds: str, micros: str) -> float:
    """A `<gettimeofday>` pair as logged by `<log message="... [$s] [$us]"/>`: epoch seconds."""
    return float(seconds) + float(micros) / 1e6


def log_lines(path: Path | None) -> list[str]:
    """The lines of a `-trace_logs` file (or any text file); none when it is missing."""
    if path is None:
        return []
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def version() -> str:
    """`v3.6.1-SCTP-PCAP-RTPSTREAM` or 'unknown'."""
    return command_version(["sipp", "-v"], r"SIPp\s+(v[\w.\-]+?)\.?(?:\s|$)")
