"""The two servers under test behind one interface: Kamailio (proxy) and dialtone (b2bua).

Both sit between the same SIPp caller and the same SIPp callees (`Callees`:
one answering callee, plus `fork - 1` ringing ones in the fork variant, on
ports fixed for the whole target). A server is started once per target and
stopped by PID; `before_step` and `after_step` are what differs per step.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common.ports import free_ports
from bench.common.procs import ManagedProcess
from bench.dial import dialtone, kamailio

NUMBER = "+15550001"


@dataclass(frozen=True)
class CalleeSpec:
    """One SIPp callee: the Client login it registers as, its SIP and media ports."""

    login: str
    port: int
    media_port: int
    answer: bool


def callee_specs(fork: int) -> tuple[CalleeSpec, ...]:
    """`load` alone, or load0 (answers) .. load{fork-1} (ring until CANCEL)."""
    ports = free_ports(2 * fork)
    if fork == 1:
        return (CalleeSpec("load", ports[0], ports[1], answer=True),)
    return tuple(
        CalleeSpec(f"load{index}", ports[2 * index], ports[2 * index + 1], answer=index == 0)
        for index in range(fork)
    )


@dataclass(frozen=True)
class TargetOptions:
    """Options shared by both targets."""

    server_cpus: str | None
    side_cpus: str | None  # SIPp, the voice app, the harness
    kamailio_children: int
    dialtone_cmd: str
    account: dialtone.Account


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

    def stop(self) -> int | None:
        """Stop the server and its helpers, by PID; return the server's exit code."""
        code = self.proc.stop(grace=15.0)
        for helper in self.helpers:
            helper.stop()
        return code


def start_kamailio(work: Path, callees: tuple[CalleeSpec, ...], options: TargetOptions) -> Server:
    """Kamailio relaying every INVITE to the callees' static addresses (forking if several)."""
    (port,) = free_ports(1)
    cfg = kamailio.KamailioConfig(
        work_dir=work,
        port=port,
        targets=tuple((spec.login, spec.port) for spec in callees),
        children=options.kamailio_children,
    )
    proc = kamailio.start(cfg, options.server_cpus, work)
    details = {
        "version": kamailio.version(),
        "config": str(work / "kamailio.cfg"),
        "children": f"children={cfg.children} (UDP workers)",
        "memory": f"-m {cfg.shm_mb} MB shm, -M {cfg.pkg_mb} MB pkg per process",
    }
    return Server(
        name="kamailio",
        proc=proc,
        sip_port=port,
        service=NUMBER,
        details=details,
        log_path=proc.stderr_path,
    )


# The /dialtone/stats.json counts that must fall back to 0 once the calls are over
# (transactions linger for their RFC 3261 timers and are not counted).
_BUSY = ("calls", "sip_dialogs", "media_ports")


def _idle_waiter(rest: dialtone.Rest) -> Callable[[float], dict[str, int]]:
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


def start_dialtone(work: Path, callees: tuple[CalleeSpec, ...], options: TargetOptions) -> Server:
    """dialtone with the Clients, the number and the voice app; Clients registered."""
    sip_port, http_port, app_port = free_ports(3)
    cfg = dialtone.DialtoneConfig(
        command=options.dialtone_cmd,
        work_dir=work,
        sip_port=sip_port,
        http_port=http_port,
        account=options.account,
    )
    logins = [spec.login for spec in callees]
    app = ManagedProcess(
        "voice-app",
        [
            sys.executable,
            "-m",
            "bench.dial.webapp",
            "--port",
            str(app_port),
            "--clients",
            ",".join(logins),
        ],
        work,
        cpus=options.side_cpus,
        cwd=Path(__file__).resolve().parents[2],
    )
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
    )
    try:
        rest = dialtone.Rest(http_port, options.account)
        passwords = {login: dialtone.password_for(login) for login in logins}
        for login, password in passwords.items():
            rest.create("Clients", {"Login": login, "Password": password})
        voice_url = f"http://127.0.0.1:{app_port}/voice"
        rest.create("IncomingPhoneNumbers", {"PhoneNumber": NUMBER, "VoiceUrl": voice_url})

        def register_all() -> None:
            for spec in callees:
                dialtone.register(sip_port, spec.login, passwords[spec.login], spec.port)

        register_all()
        server.before_step = register_all
        server.after_step = _idle_waiter(rest)
        server.details = {
            "command": " ".join(proc.argv),
            "number": f"{NUMBER} → VoiceUrl {voice_url} (bench/dial/webapp.py)",
            "document": f"<Dial>{''.join(f'<Client>{x}</Client>' for x in logins)}</Dial>",
            "log": "stderr, --log-level default (info)",
        }
    except BaseException:
        with contextlib.suppress(Exception):
            server.stop()
        raise
    return server


StartFn = Callable[[Path, tuple[CalleeSpec, ...], TargetOptions], Server]
TARGETS: dict[str, StartFn] = {"kamailio": start_kamailio, "dialtone": start_dialtone}
