"""A server under test behind one interface, and dialtone started with its voice app.

A server is started once per phase and stopped by PID; `before_step` and
`after_step` are what differs per step (registering Clients again, waiting for
dialtone's live-call counters to fall back to zero).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import dialtone, kamailio
from bench.common.cli import ROOT
from bench.common.ports import free_ports
from bench.common.procs import ManagedProcess

# The IncomingPhoneNumber the SIPp caller dials.
NUMBER = "+15550001"


@dataclass
class Server:
    """A running server, what the caller dials, and its per-step hooks."""

    name: str
    proc: ManagedProcess
    sip_port: int
    service: str
    details: dict[str, str] = field(default_factory=dict)
    helpers: list[ManagedProcess] = field(default_factory=list)
    before_step: Callable[[], None] = lambda: None
    # Wait (bounded) for the server to be idle again; return what is still open.
    after_step: Callable[[float], dict[str, int]] = lambda _: {}
    log_path: Path | None = None
    app_log: Path | None = None  # the voice app's request log (bench/common/voiceapp.py --log)

    def stop(self) -> int | None:
        """Stop the server and its helpers, by PID; return the server's exit code."""
        code = self.proc.stop(grace=15.0)
        for helper in self.helpers:
            helper.stop()
        return code


# The /dialtone/stats.json counts that must fall back to 0 once the calls are over
# (transactions linger for their RFC 3261 timers and are not counted).
_BUSY = ("calls", "sip_dialogs", "media_ports")


def idle_waiter(rest: dialtone.Rest) -> Callable[[float], dict[str, int]]:
    """`after_step` for dialtone: poll stats.json until nothing is live (bounded)."""

    def wait(timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                counts = rest.stats()
            except (OSError, RuntimeError, ValueError):
                return {"stats_unavailable": 1}
            if all(counts.get(key, 0) == 0 for key in _BUSY) or time.monotonic() > deadline:
                return {key: counts.get(key, 0) for key in _BUSY}
            time.sleep(0.5)

    return wait


@dataclass(frozen=True)
class DialtoneOptions:
    """How to start dialtone and where its side processes run."""

    command: str
    account: dialtone.Account
    server_cpus: str | None
    side_cpus: str | None


def start_dialtone_with_app(
    work: Path,
    options: DialtoneOptions,
    document: str,
    app_log: Path | None = None,
) -> tuple[Server, dialtone.Rest, str]:
    """dialtone plus its voice app answering `document` (bench/common/voiceapp.py).

    Returns the server (the app is its helper; `after_step` waits for
    stats.json to show nothing live), its REST API and the app's URL. The
    caller provisions the number and whatever else it needs; on failure it
    must `server.stop()`.
    """
    sip_port, http_port, app_port = free_ports(3)
    cfg = dialtone.DialtoneConfig(
        command=options.command,
        work_dir=work,
        sip_port=sip_port,
        http_port=http_port,
        account=options.account,
    )
    app_argv = [
        sys.executable, "-m", "bench.common.voiceapp",
        "--port", str(app_port), "--document", document,
    ]  # fmt: skip
    if app_log is not None:
        app_argv += ["--log", str(app_log)]
    app = ManagedProcess("voice-app", app_argv, work, cpus=options.side_cpus, cwd=ROOT)
    try:
        proc = dialtone.start(cfg, options.server_cpus, work)
    except BaseException:
        app.stop()
        raise
    server = Server(
        name="dialtone",
        proc=proc,
        sip_port=sip_port,
        service=NUMBER,
        helpers=[app],
        log_path=proc.stderr_path,
        app_log=app_log,
    )
    rest = dialtone.Rest(http_port, options.account)
    server.after_step = idle_waiter(rest)
    return server, rest, f"http://127.0.0.1:{app_port}/voice"


def start_kamailio_proxy(
    cfg: kamailio.ProxyConfig, cpus: str | None, extra: dict[str, str] | None = None
) -> Server:
    """Kamailio as the stateful proxy of `cfg`, pinned to `cpus`, with its report details."""
    proc = kamailio.start_proxy(cfg, cpus, cfg.work_dir)
    details = {
        "version": kamailio.version(),
        "config": str(cfg.work_dir / "kamailio.cfg"),
        "children": f"children={cfg.children} (UDP workers)",
        "memory": cfg.sizing.describe(),
        **(extra or {}),
    }
    return Server(
        name="kamailio",
        proc=proc,
        sip_port=cfg.port,
        service=NUMBER,
        details=details,
        log_path=proc.stderr_path,
    )
