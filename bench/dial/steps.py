"""One step of the Dial benchmark: the SIPp callees and caller for `bench.common.callstep`.

A step starts the SIPp callees (on the registered/static ports), runs one
bounded SIPp caller at `rate` calls/s for `seconds`, waits for the callees to
finish their calls, stops them, and judges the step (see
bench/common/callstep.py for what makes it clean). The caller's exit code is
its verdict (0 = every call passed); the callees' is the failed-call count of
their `-trace_stat` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common.callstep import StepResult, StepSpec, caller_timeout, judge, run_calls
from bench.common.ports import free_ports
from bench.common.server import Server
from bench.common.sipp import SippFiles, caller_run, server_run
from bench.common.voiceapp import hook_lines, log_offset
from bench.dial.targets import CalleeSpec

HERE = Path(__file__).resolve().parent
UAC = HERE / "uac_call.xml"
UAS_ANSWER = HERE / "uas_answer.xml"
UAS_RING = HERE / "uas_ring.xml"


@dataclass(frozen=True)
class DialSpec:
    """How every step of a target runs."""

    base: StepSpec
    hold_ms: int
    answer_delay_ms: int


def run_step(
    server: Server,
    specs: tuple[CalleeSpec, ...],
    spec: DialSpec,
    *,
    rate: int,
    seconds: float,
    label: str,
    out: Path,
    trace_logs: bool = False,
) -> StepResult:
    """Run one step against `server` and return the judged result."""
    result = StepResult(label=label, rate=rate, calls=max(1, int(rate * seconds)))
    timeout = caller_timeout(seconds, spec.hold_ms / 1000)
    callees = {
        item.login: server_run(
            SippFiles(f"{server.name}-{label}-{item.login}", out),
            UAS_ANSWER if item.answer else UAS_RING,
            (item.port, item.media_port),
            timeout_s=timeout + 30,
            trace_logs=trace_logs,
            extra=("-d", str(spec.answer_delay_ms)),
        )
        for item in specs
    }
    caller = caller_run(
        SippFiles(f"{server.name}-{label}-caller", out),
        UAC,
        server.sip_port,
        server.service,
        free_ports(2),
        rate=rate,
        calls=result.calls,
        call_seconds=spec.hold_ms / 1000,
        timeout_s=timeout,
        trace_logs=trace_logs,
        extra=("-d", str(spec.hold_ms)),
    )
    offset = log_offset(server.app_log)
    run_calls(result, server, caller, callees, spec.base, seconds=seconds, timeout=timeout)
    if trace_logs and server.app_log is not None:
        hooks = out / f"{server.name}-{label}-hooks.log"
        hook_lines(server.app_log, offset, hooks)
        result.log_files["hooks"] = str(hooks)
    judge(result, spec.base.criteria)
    return result
