"""The Dial section(s) of docs/benchmarks.md and results/latest*.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common.report import Machine, table
from bench.dial.latency import Latency
from bench.dial.phases import Plan, TargetResult
from bench.dial.steps import StepResult


@dataclass(frozen=True)
class RunInfo:
    """Context of one benchmark run."""

    date: str
    command: str
    machine: Machine
    sipp_version: str
    kamailio_version: str
    server_cpus: str | None
    side_cpus: str | None
    plan: Plan
    wall_seconds: float


def section_name(fork: int) -> str:
    """The docs/benchmarks.md marker name: `dial`, or `dial-fork` for the fork variant."""
    return "dial" if fork == 1 else "dial-fork"


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


_STEP_HEADERS = [
    "offered /s",
    "achieved /s",
    "ok/calls",
    "failed",
    "callee failed",
    "retrans",
    "server CPU",
    "CPU ms/call",
    "busy after",
    "SIPp CPU",
    "app CPU",
    "other CPU",
    "INVITE→200 p50 / p99",
    "RSS / Pss peak MiB",
    "left open",
    "verdict",
]


def _step_rows(steps: Sequence[StepResult]) -> list[list[object]]:
    rows: list[list[object]] = []
    for step in steps:
        left = ", ".join(f"{k} {v}" for k, v in step.leftovers.items()) or "—"
        rows.append(
            [
                step.rate,
                f"{step.achieved_rate:.0f}",
                f"{step.successful}/{step.calls}",
                step.failed,
                step.callee_failed,
                f"{step.retransmissions}+{step.callee_retransmissions}",
                f"{step.server_cpu_pct:.0f}%",
                f"{step.cpu_ms_per_call:.2f}",
                f"{step.settle_s:.0f} s",
                f"{step.sipp_cpu_pct:.0f}%",
                f"{step.helper_cpu_pct:.0f}%",
                f"{step.other_cpu_pct:.0f}%",
                f"{step.answer_p50} / {step.answer_p99}",
                f"{_mib(step.peak_rss_kib)} / {_mib(step.peak_pss_kib)}",
                left,
                "clean" if step.passed else "**fail**: " + "; ".join(step.reasons),
            ]
        )
    return rows


def _dist(values: dict[str, float] | None, key: str) -> float | None:
    return None if values is None else values.get(key)


def _latency_metric(result: TargetResult | None, attr: str, key: str) -> float | None:
    if result is None or result.latency is None:
        return None
    values: dict[str, float] | None = getattr(result.latency, attr)
    return _dist(values, key)


def _figure(result: TargetResult | None, metric: str) -> float | None:
    if result is None:
        return None
    best = result.max_clean
    if metric == "rate":
        return float(best.rate) if best else None
    if metric == "cpu":
        return best.cpu_ms_per_call if best else None
    if metric == "cpu_pct":
        return best.server_cpu_pct if best else None
    if metric == "rss":
        return best.peak_rss_kib / 1024 if best else None
    if metric == "pss":
        return best.peak_pss_kib / 1024 if best else None
    if metric == "idle" and result.idle_memory:
        return result.idle_memory.pss_sum_kib / 1024
    return None


def _show(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(dialtone: float | None, kamailio: float | None) -> str:
    if dialtone is None or kamailio is None or kamailio == 0:
        return "n/a"
    return f"{dialtone / kamailio:.2f}"


def _summary(results: dict[str, TargetResult], fork: int) -> str:
    kam, dial = results.get("kamailio"), results.get("dialtone")
    rows: list[list[object]] = []
    plain = [
        ("max clean calls/s", "rate", 0),
        ("server CPU ms per call (at its max clean step)", "cpu", 2),
        ("server CPU % of one core (at its max clean step)", "cpu_pct", 0),
        ("RSS MiB, peak of the max clean step (sum over processes)", "rss", 1),
        ("Pss MiB, peak of the max clean step (sum over processes)", "pss", 1),
        ("Pss MiB idle (sum over processes)", "idle", 1),
    ]
    for label, key, digits in plain:
        k, d = _figure(kam, key), _figure(dial, key)
        rows.append([label, _show(k, digits), _show(d, digits), _ratio(d, k)])
    latencies = [
        ("post-dial delay (caller INVITE → first branch INVITE)", "pdd"),
        ("caller INVITE → first 180 at the caller", "ringing"),
        ("caller INVITE → first 180 with SDP at the caller", "ringing_sdp"),
        ("winner's 200 → 200 at the caller", "answer_relay"),
    ]
    if fork > 1:
        latencies += [
            ("winner's 200 → CANCEL at a loser (each loser)", "cancel_each"),
            ("winner's 200 → CANCEL at the last loser (per call)", "cancel_last"),
        ]
    for label, attr in latencies:
        for key in ("p50", "p99"):
            k = _latency_metric(kam, attr, key)
            d = _latency_metric(dial, attr, key)
            rows.append([f"{label}, {key} ms", _show(k, 2), _show(d, 2), _ratio(d, k)])
    return table(["metric", "Kamailio", "dialtone", "ratio dialtone/Kamailio"], rows)


def _latency_table(latency: Latency, fork: int) -> str:
    rows: list[list[object]] = []
    entries = [
        ("post-dial delay: caller INVITE → first branch INVITE", latency.pdd),
        ("caller INVITE → first 180/183 at the caller", latency.ringing),
        ("caller INVITE → first 180/183 with SDP at the caller", latency.ringing_sdp),
        ("winner's 200 sent → 200 at the caller", latency.answer_relay),
    ]
    if fork > 1:
        entries += [
            ("winner's 200 → CANCEL received, each loser", latency.cancel_each),
            ("winner's 200 → CANCEL received, last loser of the call", latency.cancel_last),
        ]
    for label, values in entries:
        if values is None:
            rows.append([label, 0, "n/a", "n/a", "n/a", "n/a"])
        else:
            rows.append(
                [label, int(values["count"])]
                + [f"{values[k]:.2f}" for k in ("p50", "p90", "p99", "max")]
            )
    return table(["interval (ms)", "samples", "p50", "p90", "p99", "max"], rows)


def _target_section(result: TargetResult, fork: int) -> str:
    title = {"kamailio": "Kamailio (C reference, proxy)", "dialtone": "dialtone (b2bua)"}
    parts = [f"### {title[result.name]}", ""]
    if result.error:
        parts += [f"Not measured: {result.error}", ""]
    parts += [f"- {key}: `{value}`" for key, value in result.details.items()]
    if result.idle_memory:
        mem = result.idle_memory
        parts.append(
            f"- idle: {mem.processes} process(es), VmRSS sum {_mib(mem.rss_sum_kib)} MiB, "
            f"Pss sum {_mib(mem.pss_sum_kib)} MiB"
        )
    best = result.max_clean
    parts.append(
        f"- **max clean rate: {best.rate} calls/s**, {best.cpu_ms_per_call:.2f} ms server CPU "
        f"per call, peak RSS {_mib(best.peak_rss_kib)} MiB (Pss {_mib(best.peak_pss_kib)} MiB)"
        if best
        else "- **no clean step**"
    )
    if result.steps:
        parts += ["", table(_STEP_HEADERS, _step_rows(result.steps)), ""]
    if result.latency and result.latency_step:
        lat, step = result.latency, result.latency_step
        parts += [
            f"Latency step (fresh server, {lat.rate} calls/s for {step.calls} calls, "
            f"{'clean' if step.passed else 'not clean: ' + '; '.join(step.reasons)}; "
            f"{lat.branches_per_call:.2f} branch INVITEs and {lat.cancels_per_call:.2f} CANCELs "
            f"per call; paired {lat.pairing}):",
            "",
            _latency_table(lat, fork),
            "",
        ]
    summary = result.log_summary
    if summary.get("lines_by_level"):
        levels = ", ".join(f"{k} {v}" for k, v in sorted(summary["lines_by_level"].items()))
        parts.append(f"- server log lines (rate steps): {levels}")
        for event, count in summary.get("warning_and_error_events", {}).items():
            parts.append(f"  - `{event}` × {count}")
    parts += [f"- note: {note}" for note in result.notes]
    return "\n".join(parts)


def markdown(info: RunInfo, results: dict[str, TargetResult]) -> str:
    """The body of the Dial section."""
    plan = info.plan
    fork = plan.fork
    heading = "## Dial" if fork == 1 else f"## Dial, {fork}-way fork"
    if fork == 1:
        shape = (
            "`<Dial><Client>load</Client></Dial>`: one branch to a SIPp callee that answers "
            "(180, 200 with SDP)"
        )
    else:
        shape = (
            f"`<Dial>` with {fork} `<Client>`s load0…load{fork - 1}, each registered from its own "
            f"SIPp callee: load0 answers after {plan.answer_delay_ms} ms (180, then 200 with "
            f"SDP), the other {fork - 1} ring (180) until CANCEL, then 200 for the CANCEL and "
            "487 for the INVITE"
        )
    lines = [
        heading,
        "",
        f"Generated by `bench/dial/run.py` on {info.date} "
        f"(wall time {info.wall_seconds / 60:.1f} min). See `bench/dial/README.md`.",
        "",
        f"- command: `{info.command}`",
        f"- machine: {info.machine.markdown()}",
        f"- SIPp {info.sipp_version}; Kamailio `{info.kamailio_version}`",
        f"- pinning: server on CPU {info.server_cpus} (`taskset -c {info.server_cpus}`); SIPp "
        f"caller and callees, dialtone's voice app and the harness on CPU {info.side_cpus}",
        f"- call: SIPp caller → server → {shape}; the caller sends BYE after "
        f"{plan.hold_ms} ms (`-d {plan.hold_ms}`); UDP, one socket per SIPp",
        "- dialtone: the caller dials +15550001 (IncomingPhoneNumber over REST), whose VoiceUrl "
        "returns the `<Dial>`; dialtone fetches it, answers the caller with 180 + SDP and "
        "ringback, rings the Client's binding, bridges on 200 and relays the BYE. Kamailio: "
        "stateful proxy with `record_route()`, `t_relay()` to the callees' static addresses "
        "(parallel fork with `append_branch`), no media, no HTTP: the ratio compares a full "
        "b2bua with media against a pure SIP relay",
        f"- {plan.step_seconds:g} s per step (`-r RATE -m RATE*{plan.step_seconds:g}`), rates "
        f"{', '.join(map(str, plan.rates))}; a step is clean when the caller's SIPp exits 0, no "
        f"call fails at the caller or a callee, retransmissions ≤ "
        f"{plan.criteria.max_retrans_pct:g}% of the calls and the achieved rate ≥ "
        f"{plan.criteria.min_achieved_pct:g}% of the offered one; the run stops at the first "
        "failing step",
        "- server CPU: run time of every thread of the server's process tree over the step "
        "(/proc/PID/task/TID/schedstat): per successful call over the whole step including "
        'the time the server stays busy after the last call ("busy after": until it uses '
        "< 5% of a core; still busy after --settle-seconds fails the step), and in % of "
        "one core while calls are steadily starting and ending (from one hold time into the "
        "step to its end); RSS / Pss peak: VmRSS and Pss (shared pages split: fair for "
        "Kamailio's 7 processes) summed over the tree, sampled every 2 s; SIPp CPU: caller + "
        "callees; app CPU: dialtone's voice app; other CPU: machine-wide user+system minus "
        "all of those (the harness and anything else on this shared machine); left open: "
        "dialtone's /dialtone/stats.json calls, dialogs or media ports still non-zero 10 s "
        "after the step",
        "- latency: a separate step on a fresh server at half the max clean rate, with "
        "`-trace_logs` on every SIPp: `gettimeofday` stamps when the caller sends the INVITE "
        "and receives 180/200, when callees receive the INVITE/CANCEL and send their 200 "
        "(see `bench/dial/latency.py`); figures include SIPp's own scheduling, so Kamailio's "
        "are the floor of the method",
        "",
        "### Summary",
        "",
        _summary(results, fork),
        "",
    ]
    target = 300 if fork == 1 else 50
    dial = results.get("dialtone")
    best = dial.max_clean if dial else None
    if dial is not None:
        met = best is not None and best.rate >= target
        lines += [
            f"Target: ≥ {target} calls/s — {'met' if met else 'not met'} "
            f"({best.rate if best else 0} calls/s).",
            "",
        ]
    else:
        lines += ["dialtone was not measured in this run (`--target both` gives the ratio).", ""]
    for name in ("kamailio", "dialtone"):
        if name in results:
            lines += [_target_section(results[name], fork), ""]
    return "\n".join(lines)


def write_json(path: Path, info: RunInfo, results: dict[str, TargetResult]) -> None:
    """Raw per-step results."""
    plan = info.plan
    data: dict[str, Any] = {
        "date": info.date,
        "command": info.command,
        "machine": info.machine.__dict__,
        "sipp_version": info.sipp_version,
        "kamailio_version": info.kamailio_version,
        "server_cpus": info.server_cpus,
        "side_cpus": info.side_cpus,
        "fork": plan.fork,
        "hold_ms": plan.hold_ms,
        "answer_delay_ms": plan.answer_delay_ms,
        "step_seconds": plan.step_seconds,
        "rates": list(plan.rates),
        "criteria": plan.criteria.__dict__,
        "wall_seconds": info.wall_seconds,
        "targets": {name: result.as_json() for name, result in results.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
