"""Start and stop benchmark peers by PID.

Every process is started here and stopped here, by the PID of the Popen we
hold: never by name. Optional CPU pinning with `taskset` keeps the server and
the load generator on separate cores of a small machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from bench.common.procstat import process_tree

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the harness dies (Linux prctl).

    So a harness killed hard (SIGKILL, OOM) leaves no server or SIPp behind.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_set(cpus: str) -> set[int]:
    """Parse a taskset-style CPU list ("1", "0,2", "2-3") into CPU numbers."""
    result: set[int] = set()
    for part in cpus.split(","):
        first, _, last = part.strip().partition("-")
        result.update(range(int(first), int(last or first) + 1))
    return result


def pin_self(cpus: str | None) -> None:
    """Pin the calling process (the harness) to `cpus`, keeping the server's core quiet."""
    if cpus is not None:
        os.sched_setaffinity(0, cpu_set(cpus))


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """Prefix `argv` with `taskset -c CPUS` when `cpus` is given and taskset exists."""
    if cpus is None or shutil.which("taskset") is None:
        return list(argv)
    return ["taskset", "-c", cpus, *argv]


class ManagedProcess:
    """A child process that is always stopped by its own PID.

    Output goes to files (`log_dir/name.out`, `.err`) so a chatty server
    cannot block on a full pipe. Use as a context manager or call `stop()`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        cpus: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = pinned(argv, cpus)
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            # `taskset` execs the target, so the Popen PID is the server's PID.
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                # preexec_fn is only unsafe with threads running: none do at this point.
                preexec_fn=_die_with_parent,
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def wait(self, timeout: float) -> tuple[int, bool]:
        """Wait up to `timeout` s for exit; on overrun kill it (by PID).

        Returns (exit code, timed_out). A killed process's exit code is no
        verdict (SIPp exits 0 when killed), hence the flag.
        """
        try:
            return self.popen.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            self.stop(grace=2.0)
            return self.popen.returncode, True

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, wait up to `grace` s, then SIGKILL the process and its descendants.

        Only PIDs found under our own child are signalled. Returns the exit code.
        """
        if self.popen.poll() is not None:
            return self.popen.returncode
        descendants = [pid for pid in process_tree(self.pid) if pid != self.pid]
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=grace)
        deadline = time.monotonic() + grace
        for pid in descendants:
            while _exists(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _exists(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return self.popen.returncode

    def stderr_tail(self, lines: int = 20) -> str:
        """Last lines of the process's stderr, for error messages."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _exists(pid: int) -> bool:
    """True if `pid` still exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
