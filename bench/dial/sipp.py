"""SIPp command lines of the Dial benchmark: one caller (UAC) and one or more callees (UAS).

The caller is bounded by `-m` calls and `-timeout`; its exit code is the
verdict (0 = every call passed). Callees run in server mode for one step and
are stopped with SIGUSR1 (SIPp's graceful quit: it writes its final
statistics) once the caller is done; their verdict is the failed-call count
of their `-trace_stat` file, since a stopped SIPp exits 0 whatever happened.
Statistics are parsed by `bench.register.sipp.read_stats`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common.procs import ManagedProcess
from bench.register.sipp import SippStats, read_stats

HERE = Path(__file__).resolve().parent
UAC = HERE / "uac_call.xml"
UAS_ANSWER = HERE / "uas_answer.xml"
UAS_RING = HERE / "uas_ring.xml"

# Socket buffers of 4 MiB (= net.core.rmem_max here), as in bench/register: with
# SIPp's 64 KiB default the kernel drops datagrams at SIPp's own socket in bursts.
_BUFFERS = ("-buff_size", "4194304")


def _common(local_port: int, media_port: int, out: Path, name: str) -> list[str]:
    return [
        "-i", "127.0.0.1", "-p", str(local_port), "-mp", str(media_port),
        "-t", "u1", *_BUFFERS, "-nostdin",
        "-trace_stat", "-stf", str(out / f"{name}.stat.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(out / f"{name}.errors.log"),
    ]  # fmt: skip


@dataclass(frozen=True)
class Caller:
    """One bounded caller run: `calls` calls at `rate`/s to `service` at `target_port`."""

    name: str
    target_port: int
    service: str
    local_port: int
    media_port: int
    rate: int
    calls: int
    hold_ms: int
    out_dir: Path
    timeout_s: int
    trace_logs: bool = False

    def argv(self) -> list[str]:
        """The exact SIPp command line."""
        argv = [
            shutil.which("sipp") or "sipp", f"127.0.0.1:{self.target_port}",
            "-sf", str(UAC), "-s", self.service,
            *_common(self.local_port, self.media_port, self.out_dir, self.name),
            "-r", str(self.rate), "-m", str(self.calls), "-d", str(self.hold_ms),
            # Open-call cap: the hold time plus 2 s worth of calls. A server that
            # falls behind throttles SIPp (achieved < offered), not its memory.
            "-l", str(max(100, int(self.rate * (self.hold_ms / 1000 + 2)))),
            "-recv_timeout", "10000",
            "-timeout", f"{self.timeout_s}s", "-timeout_error",
        ]  # fmt: skip
        if self.trace_logs:
            argv += ["-trace_logs", "-log_file", str(self.log_path)]
        return argv

    @property
    def stat_path(self) -> Path:
        """The `-trace_stat` CSV."""
        return self.out_dir / f"{self.name}.stat.csv"

    @property
    def error_path(self) -> Path:
        """Unexpected messages and errors."""
        return self.out_dir / f"{self.name}.errors.log"

    @property
    def log_path(self) -> Path:
        """The `<log>` lines (timestamps), latency step only."""
        return self.out_dir / f"{self.name}.log"


@dataclass(frozen=True)
class Callee:
    """One SIPp callee listening on `port`: answers (`answer=True`) or rings until CANCEL."""

    name: str
    port: int
    media_port: int
    answer: bool
    out_dir: Path
    answer_delay_ms: int = 0
    timeout_s: int = 120
    trace_logs: bool = False

    def argv(self) -> list[str]:
        """The exact SIPp command line."""
        argv = [
            shutil.which("sipp") or "sipp",
            "-sf", str(UAS_ANSWER if self.answer else UAS_RING),
            *_common(self.port, self.media_port, self.out_dir, self.name),
            "-d", str(self.answer_delay_ms),
            "-recv_timeout", "10000",
            "-timeout", f"{self.timeout_s}s",
        ]  # fmt: skip
        if self.trace_logs:
            argv += ["-trace_logs", "-log_file", str(self.log_path)]
        return argv

    @property
    def stat_path(self) -> Path:
        """The `-trace_stat` CSV."""
        return self.out_dir / f"{self.name}.stat.csv"

    @property
    def error_path(self) -> Path:
        """Unexpected messages and errors."""
        return self.out_dir / f"{self.name}.errors.log"

    @property
    def log_path(self) -> Path:
        """The `<log>` lines (timestamps), latency step only."""
        return self.out_dir / f"{self.name}.log"


def _clear(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def start_caller(caller: Caller, cpus: str | None) -> ManagedProcess:
    """Start the caller pinned to `cpus`."""
    caller.out_dir.mkdir(parents=True, exist_ok=True)
    _clear(caller.stat_path, caller.error_path, caller.log_path)
    return ManagedProcess(caller.name, caller.argv(), caller.out_dir, cpus=cpus)


def start_callees(callees: list[Callee], cpus: str | None) -> list[ManagedProcess]:
    """Start every callee and give them a moment to bind their ports."""
    procs: list[ManagedProcess] = []
    try:
        for callee in callees:
            callee.out_dir.mkdir(parents=True, exist_ok=True)
            _clear(callee.stat_path, callee.error_path, callee.log_path)
            procs.append(ManagedProcess(callee.name, callee.argv(), callee.out_dir, cpus=cpus))
        time.sleep(0.5)
        dead = [proc.name for proc in procs if not proc.alive()]
        if dead:
            tails = "\n".join(proc.stderr_tail(5) for proc in procs if not proc.alive())
            raise RuntimeError(f"SIPp callee(s) {', '.join(dead)} exited at start:\n{tails}")
    except BaseException:
        stop_callees(procs)
        raise
    return procs


def stop_callees(procs: list[ManagedProcess], grace: float = 5.0) -> None:
    """SIGUSR1 (graceful quit: final statistics written), then SIGTERM/SIGKILL by PID."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        proc.stop()


def open_calls(callee: Callee) -> int | None:
    """Calls a running callee still has open, from its latest 1 s statistics row."""
    try:
        lines = callee.stat_path.read_text().splitlines()
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


def stats_of(path: Path) -> SippStats | None:
    """Final statistics of a finished SIPp, or None when it left none."""
    try:
        return read_stats(path)
    except (OSError, ValueError, KeyError, IndexError):
        return None
