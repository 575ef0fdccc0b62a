"""The `## REGISTER` section of docs/benchmarks.md and results/latest.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.common.report import table
from bench.common.summary import RunInfo, mib, ratio, write_results
from bench.register.phases import Plan, TargetResult
from bench.register.steps import StepResult

RegisterRun = RunInfo[Plan]


def _step_rows(steps: Sequence[StepResult]) -> list[list[object]]:
    rows: list[list[object]] = []
    for step in steps:
        memory = step.memory
        rows.append(
            [
                step.rate,
                f"{step.achieved_rate:.0f}",
                f"{step.successful}/{step.calls}",
                step.failed,
                step.retransmissions,
                f"{step.server_cpu_pct:.0f}%",
                f"{step.cpu_us_per_registration:.0f} / {step.cpu_us_per_registration_stat:.0f}",
                f"{step.sipp_cpu_pct:.0f}%",
                f"{step.other_cpu_pct:.0f}%",
                f"{step.rtd_p50} / {step.rtd_p99}",
                mib(memory.pss_sum_kib if memory else None),
                "clean" if step.passed else "**fail**: " + "; ".join(step.reasons),
            ]
        )
    return rows


_STEP_HEADERS = [
    "offered /s",
    "achieved /s",
    "ok/calls",
    "failed",
    "retrans",
    "server CPU",
    "CPU µs/reg (sched / stat)",
    "SIPp CPU",
    "other CPU",
    "p50 / p99",
    "Pss MiB",
    "verdict",
]


def _summary(results: dict[str, TargetResult]) -> str:
    def figure(name: str, metric: str) -> float | None:
        result = results.get(name)
        if result is None:
            return None
        best = result.max_clean
        if metric == "rate":
            return float(best.rate) if best else None
        if metric == "cpu":
            return best.cpu_us_per_registration if best else None
        if metric == "idle" and result.idle_memory:
            return result.idle_memory.pss_sum_kib / 1024
        if metric == "bind" and result.bindings:
            return result.bindings.after.pss_sum_kib / 1024
        if metric == "per" and result.bindings:
            return result.bindings.kib_per_binding
        return None

    def show(value: float | None, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    bindings = next((r.bindings.count for r in results.values() if r.bindings), None)
    metrics = [
        ("max clean registrations/s", "rate", 0),
        ("server CPU µs per registration (at its max clean step)", "cpu", 0),
        ("Pss MiB idle (users provisioned, no bindings)", "idle", 1),
        (f"Pss MiB with {bindings or 'N'} bindings", "bind", 1),
        ("KiB per binding (Pss growth / bindings)", "per", 2),
    ]
    rows = [
        [
            label,
            show(figure("kamailio", key), digits),
            show(figure("dialtone", key), digits),
            ratio(figure("dialtone", key), figure("kamailio", key)),
        ]
        for label, key, digits in metrics
    ]
    return table(["metric", "Kamailio", "dialtone", "ratio dialtone/Kamailio"], rows)


def _target_section(result: TargetResult) -> str:
    title = {"kamailio": "Kamailio (C reference)", "dialtone": "dialtone"}[result.name]
    parts = [f"### {title}", ""]
    if result.error:
        parts += [f"Not measured: {result.error}", ""]
        return "\n".join(parts)
    parts += [f"- {key}: `{value}`" for key, value in result.details.items()]
    if result.idle_memory:
        mem = result.idle_memory
        parts.append(
            f"- idle: {mem.processes} process(es), VmRSS main {mib(mem.rss_main_kib)} MiB, "
            f"VmRSS sum {mib(mem.rss_sum_kib)} MiB, Pss sum {mib(mem.pss_sum_kib)} MiB"
        )
    best = result.max_clean
    parts.append(
        f"- **max clean rate: {best.rate} registrations/s** "
        f"({2 * best.rate} REGISTER requests/s), "
        f"{best.cpu_us_per_registration:.0f} µs server CPU per registration"
        if best
        else "- **no clean step**"
    )
    parts += ["", table(_STEP_HEADERS, _step_rows(result.steps)), ""]
    if result.bindings:
        b = result.bindings
        parts.append(
            f"Bindings phase (fresh server): {b.step.successful}/{b.count} users registered once "
            f"at {b.rate}/s; Pss {mib(b.before.pss_sum_kib)} → {mib(b.after.pss_sum_kib)} MiB, "
            f"VmRSS sum {mib(b.before.rss_sum_kib)} → {mib(b.after.rss_sum_kib)} MiB, "
            f"VmRSS main {mib(b.before.rss_main_kib)} → {mib(b.after.rss_main_kib)} MiB "
            f"({b.kib_per_binding:.2f} KiB Pss per binding)"
            + ("" if b.step.passed else "; **not clean**: " + "; ".join(b.step.reasons))
        )
        parts.append("")
    parts += [f"- note: {note}" for note in result.notes]
    return "\n".join(parts)


def markdown(info: RegisterRun, results: dict[str, TargetResult]) -> str:
    """The body of the REGISTER section."""
    plan = info.plan
    transport = {"u1": "UDP, one socket (`-t u1`)", "t1": "TCP, one connection (`-t t1`)"}
    lines = [
        "## REGISTER",
        "",
        f"Generated by `bench/register/run.py` on {info.date} "
        f"(wall time {info.wall_seconds / 60:.1f} min). See `bench/register/README.md`.",
        "",
        f"- command: `{info.command}`",
        f"- machine: {info.machine.markdown()}",
        f"- SIPp {info.sipp_version}; Kamailio `{info.kamailio_version}`",
        f"- pinning: server on CPU {info.server_cpus} (`taskset -c {info.server_cpus}`), "
        f"SIPp and the harness on CPU {info.side_cpus} (`taskset -c {info.side_cpus}`, "
        "`sched_setaffinity`)",
        f"- load: {transport.get(plan.transport, plan.transport)}, {plan.users} users "
        f"(alice0000…) from a SEQUENTIAL `-inf` CSV, {plan.step_seconds:g} s per step "
        f"(`-r RATE -m RATE*{plan.step_seconds:g}`), rates {', '.join(map(str, plan.rates))}",
        "- one registration = REGISTER → 401 (MD5, qop=auth) → REGISTER with Authorization "
        "→ 200 (two transactions, four messages); Expires 3600; every user registered once "
        "before the steps, so steps refresh existing bindings (new Call-ID, same Contact)",
        f"- a step is clean when SIPp exits 0, no registration fails, retransmissions ≤ "
        f"{plan.criteria.max_retrans_pct:g}% of the requests and the achieved rate ≥ "
        f"{plan.criteria.min_achieved_pct:g}% of the offered one; the run stops at the first "
        "failing step",
        "- server CPU = run time of every thread of the server's process tree over the step "
        "(/proc/PID/task/TID/schedstat, ns), per successful registration; the table also "
        "gives utime+stime from /proc/PID/stat (10 ms ticks, noisier); CPU% is of one core. "
        "Pss = proportional set size "
        "summed over the tree (/proc/PID/smaps_rollup), fair for a multi-process server; "
        "p50/p99 = SIPp response-time bucket (first REGISTER → final 200); other CPU = "
        "machine-wide user+system time (/proc/stat) minus server and SIPp, in % of one core: "
        "the harness and anything else running on the machine (a shared machine makes "
        "figures noisy: compare runs, not single steps)",
        "",
        "### Summary",
        "",
        _summary(results),
        "",
    ]
    if "dialtone" not in results:
        lines += ["dialtone was not measured in this run (`--target both` gives the ratio).", ""]
    for name in ("kamailio", "dialtone"):
        if name in results:
            lines += [_target_section(results[name]), ""]
    return "\n".join(lines)


def write_json(path: Path, info: RegisterRun, results: dict[str, TargetResult]) -> None:
    """Raw per-step results."""
    plan = info.plan
    fields = {
        "users": plan.users,
        "step_seconds": plan.step_seconds,
        "rates": list(plan.rates),
        "transport": plan.transport,
        "criteria": plan.criteria.__dict__,
    }
    write_results(path, info, fields, results)


def write_plot(path: Path, results: dict[str, TargetResult]) -> bool:
    """Offered vs achieved rate per target, if matplotlib is installed; else skip quietly."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, result in results.items():
        steps = sorted(result.steps, key=lambda step: step.rate)
        if steps:
            axis.plot(
                [s.rate for s in steps], [s.achieved_rate for s in steps], marker="o", label=name
            )
    axis.set_xlabel("offered registrations/s")
    axis.set_ylabel("achieved registrations/s")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
