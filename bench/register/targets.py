"""The registrars under test, behind one small interface.

A target is started fresh for each phase (rate steps, bindings RSS) with a
given number of users already provisioned, and stopped by PID afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import dialtone
from bench.common import kamailio as common_kamailio
from bench.common.ports import free_ports
from bench.common.procs import ManagedProcess
from bench.register import kamailio
from bench.register.dialtone import create_clients


@dataclass
class Server:
    """A running registrar: its process, SIP port and what to report about it."""

    name: str
    proc: ManagedProcess
    sip_port: int
    details: dict[str, str] = field(default_factory=dict)
    # SIPp's local SIP and media ports, the same for every step against this
    # server: the Contact (keyed by its URI) then stays one binding per user.
    client_ports: tuple[int, int] = field(default_factory=lambda: _two_ports())


def _two_ports() -> tuple[int, int]:
    first, second = free_ports(2)
    return first, second


@dataclass(frozen=True)
class TargetOptions:
    """Options shared by every target."""

    server_cpus: str | None
    kamailio_children: int
    dialtone_cmd: str
    account: dialtone.Account


StartFn = Callable[[Path, int, TargetOptions], Server]


def start_kamailio(work_dir: Path, user_count: int, options: TargetOptions) -> Server:
    """Kamailio with `user_count` HA1s in its htable."""
    (port,) = free_ports(1)
    cfg = kamailio.KamailioConfig(
        work_dir=work_dir,
        port=port,
        users=user_count,
        children=options.kamailio_children,
        tcp_children=options.kamailio_children,
    )
    proc = kamailio.start(cfg, options.server_cpus, work_dir)
    details = {
        "version": common_kamailio.version(),
        "config": str(work_dir / "kamailio.cfg"),
        "children": f"children={cfg.children}, tcp_children={cfg.tcp_children}",
        "memory": cfg.sizing.describe(),
    }
    return Server(name="kamailio", proc=proc, sip_port=port, details=details)


def start_dialtone(work_dir: Path, user_count: int, options: TargetOptions) -> Server:
    """dialtone with `user_count` Clients created over its REST API."""
    sip_port, http_port = free_ports(2)
    cfg = dialtone.DialtoneConfig(
        command=options.dialtone_cmd,
        work_dir=work_dir,
        sip_port=sip_port,
        http_port=http_port,
        account=options.account,
    )
    proc = dialtone.start(cfg, options.server_cpus, work_dir)
    try:
        seconds = create_clients(cfg, user_count)
    except Exception:
        proc.stop()
        raise
    details = {
        "command": " ".join(proc.argv),
        "clients": f"{user_count} Clients created over REST in {seconds:.1f} s",
    }
    time.sleep(1.0)  # let the server settle after the REST burst
    return Server(name="dialtone", proc=proc, sip_port=sip_port, details=details)


TARGETS: dict[str, StartFn] = {"kamailio": start_kamailio, "dialtone": start_dialtone}
