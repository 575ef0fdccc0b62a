"""The two servers under test: Kamailio (proxy) and dialtone (b2bua), and their callees.

Both sit between the same SIPp caller and the same SIPp callees (one
answering callee, plus `fork - 1` ringing ones in the fork variant, on ports
fixed for the whole target). A server is started once per phase and stopped
by PID (bench/common/server.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from bench.common import dialtone, kamailio
from bench.common.ports import free_ports
from bench.common.server import (
    NUMBER,
    DialtoneOptions,
    Server,
    start_dialtone_with_app,
    start_kamailio_proxy,
)


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

    dialtone: DialtoneOptions
    kamailio_children: int


def start_kamailio(work: Path, callees: tuple[CalleeSpec, ...], options: TargetOptions) -> Server:
    """Kamailio relaying every INVITE to the callees' static addresses (forking if several)."""
    (port,) = free_ports(1)
    cfg = kamailio.ProxyConfig(
        work_dir=work,
        port=port,
        targets=tuple((spec.login, spec.port) for spec in callees),
        children=options.kamailio_children,
    )
    return start_kamailio_proxy(cfg, options.dialtone.server_cpus)


def document(logins: list[str]) -> str:
    """The RCML answer: one `<Dial>` ringing every Client at once."""
    nouns = "".join(f"<Client>{escape(login)}</Client>" for login in logins)
    return f"<Response><Dial>{nouns}</Dial></Response>"


def start_dialtone(work: Path, callees: tuple[CalleeSpec, ...], options: TargetOptions) -> Server:
    """dialtone with the Clients, the number and the voice app; Clients registered."""
    logins = [spec.login for spec in callees]
    app_log = work / "voice-app.requests.log"
    app_log.unlink(missing_ok=True)
    server, rest, voice_url = start_dialtone_with_app(
        work, options.dialtone, document(logins), app_log=app_log
    )
    try:
        passwords = {login: dialtone.password_for(login) for login in logins}
        for login, password in passwords.items():
            rest.create("Clients", {"Login": login, "Password": password})
        rest.create("IncomingPhoneNumbers", {"PhoneNumber": NUMBER, "VoiceUrl": voice_url})

        def register_all() -> None:
            for spec in callees:
                dialtone.register(server.sip_port, spec.login, passwords[spec.login], spec.port)

        register_all()
        server.before_step = register_all
        server.details = {
            "command": " ".join(server.proc.argv),
            "number": f"{NUMBER} → VoiceUrl {voice_url} (bench/common/voiceapp.py)",
            "document": document(logins).removeprefix("<Response>").removesuffix("</Response>"),
            "log": "stderr, --log-level default (info)",
        }
    except BaseException:
        with contextlib.suppress(Exception):
            server.stop()
        raise
    return server


StartFn = Callable[[Path, tuple[CalleeSpec, ...], TargetOptions], Server]
TARGETS: dict[str, StartFn] = {"kamailio": start_kamailio, "dialtone": start_dialtone}
