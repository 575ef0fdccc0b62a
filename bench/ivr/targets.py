"""The two servers under test: dialtone running the IVR app, and Kamailio in front of a SIPp UAS.

dialtone: the caller dials the IncomingPhoneNumber `+15550001`, whose VoiceUrl
(bench/common/voiceapp.py, logging each request's arrival and answer) returns
`<Response><Say>one</Say><Hangup/></Response>`; dialtone fetches it, answers
with SDP, speaks "one" (espeak-ng, RTP to the caller's sink) and sends BYE.

Kamailio cannot run RCML: its closest equivalent is the stateful proxy of
bench/common/kamailio.py relaying every INVITE to one SIPp UAS
(uas_answer_bye.xml) that answers with SDP, plays nothing and sends BYE
after the Say's length, back through the proxy (Record-Route).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import kamailio
from bench.common.ports import free_ports
from bench.common.server import (
    NUMBER,
    DialtoneOptions,
    Server,
    start_dialtone_with_app,
    start_kamailio_proxy,
)

DOCUMENT = "<Response><Say>one</Say><Hangup/></Response>"
UAS_USER = "ivr"


@dataclass(frozen=True)
class TargetOptions:
    """Options shared by both targets."""

    dialtone: DialtoneOptions
    kamailio_children: int
    uas_ports: tuple[int, int, int]  # the UAS's SIP (Kamailio's static target), media, control


def start_kamailio(work: Path, options: TargetOptions) -> Server:
    """Kamailio relaying every INVITE to the UAS's static address."""
    (port,) = free_ports(1)
    cfg = kamailio.ProxyConfig(
        work_dir=work,
        port=port,
        targets=((UAS_USER, options.uas_ports[0]),),
        children=options.kamailio_children,
    )
    behind = "one SIPp UAS (bench/ivr/uas_answer_bye.xml): 180, 200 + SDP, no RTP, BYE after "
    return start_kamailio_proxy(
        cfg, options.dialtone.server_cpus, {"behind it": behind + "the Say's length"}
    )


def start_dialtone(work: Path, options: TargetOptions) -> Server:
    """dialtone with the number whose voice app answers `DOCUMENT`."""
    app_log = work / "voice-app.requests.log"
    app_log.unlink(missing_ok=True)
    server, rest, voice_url = start_dialtone_with_app(
        work, options.dialtone, DOCUMENT, app_log=app_log
    )
    try:
        rest.create("IncomingPhoneNumbers", {"PhoneNumber": NUMBER, "VoiceUrl": voice_url})
    except BaseException:
        with contextlib.suppress(Exception):
            server.stop()
        raise
    server.details = {
        "command": " ".join(server.proc.argv),
        "number": f"{NUMBER} → VoiceUrl {voice_url} (bench/common/voiceapp.py)",
        "document": DOCUMENT,
        "log": "stderr, --log-level default (info)",
    }
    return server


StartFn = Callable[[Path, TargetOptions], Server]
TARGETS: dict[str, StartFn] = {"kamailio": start_kamailio, "dialtone": start_dialtone}
