"""Pieces of the call benchmarks' docs/benchmarks.md sections and results JSON.

A benchmark's summary module composes these: the run's context (`RunInfo`),
the per-step table of `bench.common.callstep.StepResult` figures, the
Kamailio/dialtone comparison rows, interval distributions, and the per-target
details, log summary and notes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from bench.common.callstep import StepResult
from bench.common.phases import TargetResult
from bench.common.report import Machine, table

P = TypeVar("P")


@dataclass(frozen=True)
class RunInfo(Generic[P]):
    """Context of one benchmark run."""

    date: str
    command: str
    machine: Machine
    sipp_version: str
    kamailio_version: str
    server_cpus: str | None
    side_cpus: str | None
    plan: P
    wall_seconds: float

    def header(self) -> dict[str, Any]:
        """The run's context as the first keys of results/latest.json."""
        return {
            "date": self.date,
            "command": self.command,
            "machine": self.machine.__dict__,
            "sipp_version": self.sipp_version,
            "kamailio_version": self.kamailio_version,
            "server_cpus": self.server_cpus,
            "side_cpus": self.side_cpus,
        }


class Reportable(Protocol):
    """What a benchmark's per-target result offers for results/latest.json."""

    def as_json(self) -> dict[str, Any]:
        """Plain data."""
        ...


def write_results(
    path: Path, info: RunInfo[Any], fields: dict[str, Any], results: Mapping[str, Reportable]
) -> None:
    """results/latest.json: the run's context, the benchmark's `fields`, every target's figures."""
    data: dict[str, Any] = {
        **info.header(),
        **fields,
        "wall_seconds": info.wall_seconds,
        "targets": {name: result.as_json() for name, result in results.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def mib(kib: int | None) -> str:
    """KiB as MiB with one decimal."""
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def show(value: float | None, digits: int) -> str:
    """A figure with `digits` decimals, or n/a."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def ratio(dialtone: float | None, kamailio: float | None) -> str:
    """dialtone / Kamailio with two decimals, or n/a."""
    if dialtone is None or kamailio is None or kamailio == 0:
        return "n/a"
    return f"{dialtone / kamailio:.2f}"


STEP_HEADERS = [
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
]


def step_cells(step: StepResult) -> list[object]:
    """The `STEP_HEADERS` columns of one step."""
    left = ", ".join(f"{k} {v}" for k, v in step.leftovers.items()) or "—"
    return [
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
        f"{mib(step.peak_rss_kib)} / {mib(step.peak_pss_kib)}",
        left,
    ]


def verdict(step: StepResult) -> str:
    """The verdict column."""
    return "clean" if step.passed else "**fail**: " + "; ".join(step.reasons)


def figure(result: TargetResult[Any, Any] | None, metric: str) -> float | None:
    """One summary figure of a target (at its max clean step), or None."""
    if result is None:
        return None
    best = result.max_clean
    if metric == "idle":
        return result.idle_memory.pss_sum_kib / 1024 if result.idle_memory else None
    if best is None:
        return None
    values: dict[str, Callable[[StepResult], float]] = {
        "rate": lambda s: float(s.rate),
        "cpu": lambda s: s.cpu_ms_per_call,
        "cpu_pct": lambda s: s.server_cpu_pct,
        "rss": lambda s: s.peak_rss_kib / 1024,
        "pss": lambda s: s.peak_pss_kib / 1024,
    }
    return values[metric](best) if metric in values else None


def comparison_rows(results: Mapping[str, TargetResult[Any, Any]]) -> list[list[object]]:
    """The max-rate, CPU and memory rows of the Kamailio/dialtone summary table."""
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
        k, d = figure(kam, key), figure(dial, key)
        rows.append([label, show(k, digits), show(d, digits), ratio(d, k)])
    return rows


SUMMARY_HEADERS = ["metric", "Kamailio", "dialtone", "ratio dialtone/Kamailio"]


def _latency(result: TargetResult[Any, Any] | None, attr: str, key: str) -> float | None:
    if result is None or result.latency is None:
        return None
    values: dict[str, float] | None = getattr(result.latency, attr)
    return None if values is None else values.get(key)


def summary_table(
    results: Mapping[str, TargetResult[Any, Any]], latencies: Sequence[tuple[str, str]]
) -> str:
    """Kamailio vs dialtone: max rate, CPU and memory, then p50/p99 of each latency.

    `latencies`: (label, attribute of the benchmark's latency dataclass holding
    a `bench.common.stats.percentiles` dict).
    """
    kam, dial = results.get("kamailio"), results.get("dialtone")
    rows = comparison_rows(results)
    for label, attr in latencies:
        for key in ("p50", "p99"):
            k, d = _latency(kam, attr, key), _latency(dial, attr, key)
            rows.append([f"{label}, {key} ms", show(k, 2), show(d, 2), ratio(d, k)])
    return table(SUMMARY_HEADERS, rows)


def distribution_table(entries: Sequence[tuple[str, dict[str, float] | None]]) -> str:
    """A table of interval distributions (ms): samples, p50, p90, p99, max."""
    rows: list[list[object]] = []
    for label, values in entries:
        if values is None:
            rows.append([label, 0, "n/a", "n/a", "n/a", "n/a"])
        else:
            rows.append(
                [label, int(values["count"])]
                + [f"{values[k]:.2f}" for k in ("p50", "p90", "p99", "max")]
            )
    return table(["interval (ms)", "samples", "p50", "p90", "p99", "max"], rows)


def target_head(result: TargetResult[Any, Any], title: str, unit: str = "calls/s") -> list[str]:
    """Title, error, details, idle memory and the max clean rate of one target."""
    parts = [f"### {title}", ""]
    if result.error:
        parts += [f"Not measured: {result.error}", ""]
    parts += [f"- {key}: `{value}`" for key, value in result.details.items()]
    if result.idle_memory:
        mem = result.idle_memory
        parts.append(
            f"- idle: {mem.processes} process(es), VmRSS sum {mib(mem.rss_sum_kib)} MiB, "
            f"Pss sum {mib(mem.pss_sum_kib)} MiB"
        )
    best = result.max_clean
    parts.append(
        f"- **max clean rate: {best.rate} {unit}**, {best.cpu_ms_per_call:.2f} ms server CPU "
        f"per call, peak RSS {mib(best.peak_rss_kib)} MiB (Pss {mib(best.peak_pss_kib)} MiB)"
        if best
        else "- **no clean step**"
    )
    return parts


def target_tail(result: TargetResult[Any, Any]) -> list[str]:
    """The server log summary and the notes of one target."""
    parts: list[str] = []
    summary = result.log_summary
    if summary.get("lines_by_level"):
        levels = ", ".join(f"{k} {v}" for k, v in sorted(summary["lines_by_level"].items()))
        parts.append(f"- server log lines (rate steps): {levels}")
        for event, count in summary.get("warning_and_error_events", {}).items():
            parts.append(f"  - `{event}` × {count}")
    parts += [f"- note: {note}" for note in result.notes]
    return parts


def target_section(
    result: TargetResult[Any, Any],
    title: str,
    middle: Sequence[str] = (),
    extra_headers: Sequence[str] = (),
    extra_cells: Callable[[Any], list[object]] = lambda _: [],
) -> str:
    """One target's subsection: head, step table (with the benchmark's extra columns),
    `middle` (the latency step), log summary and notes."""
    parts = target_head(result, title)
    if result.steps:
        rows = [[*step_cells(s), *extra_cells(s), verdict(s)] for s in result.steps]
        parts += ["", table([*STEP_HEADERS, *extra_headers, "verdict"], rows), ""]
    parts += middle
    parts += target_tail(result)
    return "\n".join(parts)


def latency_heading(rate: int, step: StepResult, detail: str) -> str:
    """The line above a latency table: rate, calls, verdict, the benchmark's `detail`."""
    verdict_text = "clean" if step.passed else "not clean: " + "; ".join(step.reasons)
    return (
        f"Latency step (fresh server, {rate} calls/s for {step.calls} calls, {verdict_text}; "
        f"{detail}):"
    )


def closing(
    summary_table: str,
    results: Mapping[str, Any],
    section: Callable[[str], str],
    verdict_lines: Sequence[str] = (),
) -> list[str]:
    """The summary table, `verdict_lines` (when dialtone ran), then each target's subsection."""
    lines = ["### Summary", "", summary_table, ""]
    if "dialtone" in results:
        lines += verdict_lines
    else:
        lines += ["dialtone was not measured in this run (`--target both` gives the ratio).", ""]
    for name in ("kamailio", "dialtone"):
        if name in results:
            lines += [section(name), ""]
    return lines
