"""The parts of a benchmark runner (`bench/*/run.py`) that every benchmark repeats.

Options shared by the Kamailio-vs-dialtone benchmarks, the schedule and step
spec they imply, the run's context for the report, and publishing the
report (docs/benchmarks.md section or stdout).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import TypeVar

from bench.common import kamailio, sipp
from bench.common.callstep import Criteria, StepSpec
from bench.common.cli import ROOT, keep_config, parse_rates
from bench.common.dialtone import Account
from bench.common.phases import Schedule
from bench.common.report import machine, replace_section
from bench.common.server import DialtoneOptions
from bench.common.summary import RunInfo

P = TypeVar("P")


def parser(
    description: str,
    *,
    dialtone_cmd: str,
    rates: str | None,
    json: Path | None,
    quiet_wait: float = 30.0,
    side: str = "SIPp and the harness",
    rates_help: str | None = None,
    calls: bool = True,
) -> argparse.ArgumentParser:
    """A parser with the options of every Kamailio-vs-dialtone benchmark.

    Defaults are the benchmark's; `calls` adds the call benchmarks' options
    (the latency step and the settle bound).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--target", choices=("kamailio", "dialtone", "both"), default="both")
    parser.add_argument(
        "--dialtone-cmd",
        default=dialtone_cmd,
        help="command template; {venv} {sip_port} {http_port} {data_dir} are filled in",
    )
    parser.add_argument(
        "--rates",
        type=parse_rates,
        default=None if rates is None else parse_rates(rates),
        help=rates_help or f"offered rate per step (default {rates})",
    )
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--pause-seconds", type=float, default=3.0)
    parser.add_argument("--max-seconds", type=float, default=2700.0, help="whole-run bound")
    parser.add_argument("--server-cpus", default="0", help="taskset list for the server")
    parser.add_argument("--sipp-cpus", default="1", help=f"taskset list for {side}")
    parser.add_argument("--kamailio-children", type=int, default=2)
    parser.add_argument("--max-retrans-pct", type=float, default=1.0)
    parser.add_argument("--min-achieved-pct", type=float, default=95.0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=quiet_wait,
        help="before each step wait up to this many s for other load < 20%% of a core (0 = off)",
    )
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=json)
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--keep-work", action="store_true", help="keep logs and SIPp files")
    if calls:
        _add_call_options(parser)
    return parser


def _add_call_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--latency-seconds", type=float, default=10.0, help="latency step length (0 = skip)"
    )
    parser.add_argument(
        "--latency-rate", type=int, default=None, help="latency step rate (default: half the max)"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=60.0,
        help="after a step wait up to this long for the server's CPU to drop below 5%% "
        "(deferred work counts for the step; still busy = the step fails)",
    )


def targets(args: argparse.Namespace) -> list[str]:
    """The targets to run, Kamailio (the reference) first."""
    return ["kamailio", "dialtone"] if args.target == "both" else [args.target]


def side_cpus(args: argparse.Namespace) -> str | None:
    """Where SIPp, the helpers and the harness run."""
    return str(args.sipp_cpus) if args.sipp_cpus else None


def call_schedule(
    args: argparse.Namespace, call_seconds: float, started: float
) -> tuple[Schedule, StepSpec]:
    """The steps (`Schedule`) and how each runs (`StepSpec`) from the call options."""
    schedule = Schedule(
        rates=args.rates,
        step_seconds=args.step_seconds,
        pause_seconds=args.pause_seconds,
        call_seconds=call_seconds,
        latency_seconds=args.latency_seconds,
        latency_rate=args.latency_rate,
        quiet_wait=args.quiet_wait,
        deadline=started + args.max_seconds,
    )
    spec = StepSpec(
        call_seconds=call_seconds,
        side_cpus=side_cpus(args),
        criteria=Criteria(args.max_retrans_pct, args.min_achieved_pct),
        settle_timeout=args.settle_seconds,
    )
    return schedule, spec


def dialtone_options(args: argparse.Namespace) -> DialtoneOptions:
    """How to start dialtone (fresh account credentials for the run)."""
    return DialtoneOptions(
        command=args.dialtone_cmd,
        account=Account.generate(),
        server_cpus=args.server_cpus or None,
        side_cpus=side_cpus(args),
    )


def keep_kamailio_config(work: Path, target: Path, details: dict[str, str]) -> None:
    """Save the rate steps' proxy config next to the results (ports masked); note it."""
    kept = keep_config(
        work / "kamailio" / "steps" / "kamailio.cfg",
        target,
        [(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>")],
    )
    if kept:
        details["config"] = kept


def run_info(
    module: str, argv: list[str] | None, args: argparse.Namespace, plan: P, started: float
) -> RunInfo[P]:
    """The run's context: date, the command as typed, machine, versions, pinning."""
    cli = argv if argv is not None else sys.argv[1:]
    return RunInfo(
        date=time.strftime("%Y-%m-%d %H:%M %Z"),
        command=shlex.join([".venv/bin/python", "-m", module, *cli]),
        machine=machine(),
        sipp_version=sipp.version(),
        kamailio_version=kamailio.version(),
        server_cpus=args.server_cpus or None,
        side_cpus=side_cpus(args),
        plan=plan,
        wall_seconds=time.monotonic() - started,
    )


def publish(args: argparse.Namespace, name: str, section: str) -> None:
    """Print the section (`--no-doc`) or replace it in `--doc`."""
    if args.no_doc:
        print(section)
    else:
        replace_section(args.doc, name, section)
        print(f"updated the {name} section of {args.doc}")
