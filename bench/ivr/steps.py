"""One step of the IVR benchmark: caller, RTP sink, (Kamailio's UAS), and the IVR checks.

On top of bench/common/callstep.py (the caller's exit code, failed calls,
retransmissions, achieved rate, server CPU and memory), a dialtone step is
clean only if every answered call brought the Say: the RTP sink saw at least
one stream per successful call and no stream is short (fewer speech packets,
i.e. not G.711 silence, than 90 % of the step's median). The voice app's
requests of the step give the webhook's own service time (its `--log` lines
since the step began).
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common.callstep import StepResult, StepSpec, caller_timeout, judge, run_calls
from bench.common.cli import ROOT
from bench.common.ports import LOOPBACK, free_ports
from bench.common.procs import ManagedProcess
from bench.common.server import Server
from bench.common.sipp import SippFiles, SippRun, caller_run, server_run
from bench.common.stats import percentiles
from bench.common.voiceapp import hook_lines, log_offset

HERE = Path(__file__).resolve().parent
UAC = HERE / "uac_ivr.xml"  # the caller: SDP -> the sink, waits for the server's BYE
UAS = HERE / "uas_answer_bye.xml"  # Kamailio's UAS: 180, 200 + SDP, pause -d, BYE; no RTP
SHORT_SHARE = 0.9  # a stream with fewer speech packets than this share of the median is short


@dataclass(frozen=True)
class IvrSpec:
    """How every step of a target runs."""

    base: StepSpec
    say_ms: int  # the Say's length: the UAS's hold, the caller's open-call estimate
    uas_ports: tuple[int, int, int] | None  # Kamailio: the UAS behind it
    rtp: bool  # dialtone: the caller must receive audio


@dataclass
class IvrStep(StepResult):
    """A call step's figures plus the audio received and the voice app's service time."""

    rtp_expected: bool = False
    rtp_streams: int = 0
    rtp_packets: int = 0
    rtp_packets_median: float = 0.0
    rtp_speech_median: float = 0.0  # packets that are not silence: the Say itself
    rtp_short: int = 0
    rtp_max_gap_p99_ms: float | None = None  # per stream: largest gap between two packets
    rtp_kernel_drops: int | None = None
    hook_requests: int = 0
    hook_p50_ms: float | None = None  # the voice app: request line in → answer written
    hook_p99_ms: float | None = None

    def describe(self) -> str:
        """The common progress line plus audio and webhook figures."""
        text = super().describe()
        if self.rtp_expected:
            text += (
                f", RTP {self.rtp_streams} streams ({self.rtp_packets_median:.0f} packets, "
                f"{self.rtp_speech_median:.0f} speech median, {self.rtp_short} short)"
            )
        if self.hook_requests:
            text += f", app {self.hook_requests} requests, p50 {self.hook_p50_ms:.2f} ms"
        return text


def _start_sink(
    port: int, out: Path, name: str, cpus: str | None, max_seconds: int
) -> ManagedProcess:
    argv = [
        sys.executable, "-m", "bench.ivr.rtpsink",
        "--port", str(port), "--out", str(out), "--max-seconds", str(max_seconds),
    ]  # fmt: skip
    sink = ManagedProcess(name, argv, out.parent, cpus=cpus, cwd=ROOT)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not sink.alive():
            raise RuntimeError(f"RTP sink exited at start:\n{sink.stderr_tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                return sink  # the sink holds the port
        time.sleep(0.05)
    sink.stop()
    raise RuntimeError(f"RTP sink did not bind udp:{LOOPBACK}:{port}")


def read_sink(path: Path) -> dict[str, Any] | None:
    """The sink's summary (see rtpsink.py), or None when it wrote none."""
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary


def _rtp_figures(result: IvrStep, summary: dict[str, Any] | None) -> None:
    if summary is None:
        result.reasons.append("no RTP sink summary")
        return
    streams = summary["streams"]
    packets = [int(row[2]) for row in streams]
    result.rtp_streams = len(streams)
    result.rtp_packets = sum(packets)
    result.rtp_kernel_drops = summary.get("kernel_drops")
    if packets:
        speech = [int(row[6]) for row in streams]
        result.rtp_packets_median = statistics.median(packets)
        result.rtp_speech_median = statistics.median(speech)
        least = max(1.0, SHORT_SHARE * result.rtp_speech_median)
        result.rtp_short = sum(1 for count in speech if count < least)
        gaps = percentiles([float(row[5]) for row in streams])
        result.rtp_max_gap_p99_ms = gaps["p99"] if gaps else None
    if result.rtp_streams < result.successful:
        missing = result.successful - result.rtp_streams
        result.reasons.append(f"{missing} answered calls without RTP")
    if result.rtp_short:
        result.reasons.append(
            f"{result.rtp_short} calls with short or no speech (< {SHORT_SHARE:.0%} of the "
            f"median {result.rtp_speech_median:.0f} speech packets)"
        )


def _hook_figures(result: IvrStep, lines: list[str]) -> None:
    services: list[float] = []
    for line in lines:
        fields = line.split()
        if len(fields) == 5:
            services.append(float(fields[4]) - float(fields[3]))
    result.hook_requests = len(services)
    dist = percentiles(services)
    if dist:
        result.hook_p50_ms, result.hook_p99_ms = dist["p50"], dist["p99"]


def run_step(
    server: Server,
    spec: IvrSpec,
    *,
    rate: int,
    seconds: float,
    label: str,
    out: Path,
    trace_logs: bool = False,
) -> IvrStep:
    """Run one step against `server` and return the judged result."""
    result = IvrStep(
        label=label, rate=rate, calls=max(1, int(rate * seconds)), rtp_expected=spec.rtp
    )
    prefix = f"{server.name}-{label}"
    timeout = caller_timeout(seconds, spec.say_ms / 1000)
    sip_port, media_port, control_port, sink_port = free_ports(4)
    caller = caller_run(
        SippFiles(f"{prefix}-caller", out),
        UAC,
        server.sip_port,
        server.service,
        # The media port is unused: the SDP offer names the sink instead.
        (sip_port, media_port, control_port),
        rate=rate,
        calls=result.calls,
        call_seconds=spec.say_ms / 1000,
        timeout_s=timeout,
        trace_logs=trace_logs,
        extra=("-set", "rtp_port", str(sink_port)),
    )
    callees: dict[str, SippRun] = {}
    if spec.uas_ports is not None:
        callees["uas"] = server_run(
            SippFiles(f"{prefix}-uas", out),
            UAS,
            spec.uas_ports,
            timeout_s=timeout + 30,
            trace_logs=trace_logs,
            extra=("-d", str(spec.say_ms)),  # the Say's length, then BYE
        )
    offset = log_offset(server.app_log)
    sink_out = out / f"{prefix}-rtp.json"
    sink_out.unlink(missing_ok=True)
    sink = (
        _start_sink(
            sink_port,
            sink_out,
            f"{prefix}-rtpsink",
            spec.base.side_cpus,
            max_seconds=timeout + 120,  # past the caller's bound and the settle wait
        )
        if spec.rtp
        else None
    )
    try:
        run_calls(
            result,
            server,
            caller,
            callees,
            spec.base,
            seconds=seconds,
            timeout=timeout,
            helpers=[sink] if sink else [],
        )
    finally:
        if sink is not None:
            sink.stop()
    if sink is not None:
        _rtp_figures(result, read_sink(sink_out))
    hooks = out / f"{prefix}-hooks.log"
    _hook_figures(result, hook_lines(server.app_log, offset, hooks))
    if trace_logs:
        result.log_files["hooks"] = str(hooks)
        if sink is not None:
            result.log_files["rtp"] = str(sink_out)
    judge(result, spec.base.criteria)
    return result
