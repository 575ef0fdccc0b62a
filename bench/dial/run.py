"""Dial benchmark (RFC 7502 style): calls/s through dialtone's `<Dial>` b2bua and through Kamailio.

    .venv/bin/python -m bench.dial.run --target both            # one branch per call
    .venv/bin/python -m bench.dial.run --target both --fork 10  # ten branches, one answers

Steps the offered call rate up, stops at the first failing step and reports
the last clean one, then measures post-dial and CANCEL latency in a separate
step at half that rate. Writes the `## Dial` section of docs/benchmarks.md
(`dial`, or `dial-fork` with --fork > 1) and bench/dial/results/latest*.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import runner
from bench.common.cli import ROOT, check_tools, exit_on_sigterm, parse_rates
from bench.common.dialtone import CALLS_CMD
from bench.common.procs import pin_self
from bench.dial.phases import DialResult, Plan, run_dial_target
from bench.dial.summary import markdown, section_name, write_json
from bench.dial.targets import TargetOptions

RESULTS = ROOT / "bench" / "dial" / "results"
DEFAULT_RATES = "10,25,50,100,150,200,300,400,500,600,800,1000,1200,1500,2000"
DEFAULT_FORK_RATES = "5,10,25,50,75,100,150,200,300,400,500"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see bench/dial/README.md)."""
    parser = runner.parser(
        "Dial benchmark (RFC 7502 style) against Kamailio and/or dialtone.",
        dialtone_cmd=CALLS_CMD,
        rates=None,
        json=None,
        side="SIPp, the voice app and the harness",
        rates_help=f"calls/s per step (default {DEFAULT_RATES}; with --fork {DEFAULT_FORK_RATES})",
    )
    parser.add_argument(
        "--fork", type=int, default=1, help="branches per call (1 or 2..10; exactly one answers)"
    )
    parser.add_argument("--hold-ms", type=int, default=1000, help="caller sends BYE after this")
    parser.add_argument(
        "--answer-delay-ms",
        type=int,
        default=None,
        help="the answering callee's 180 → 200 delay (default 0; 20 with --fork)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.fork <= 10:
        parser.error("--fork must be 1..10 (DIAL-3: at most 10 nouns)")
    if args.rates is None:
        args.rates = parse_rates(DEFAULT_RATES if args.fork == 1 else DEFAULT_FORK_RATES)
    if args.answer_delay_ms is None:
        args.answer_delay_ms = 0 if args.fork == 1 else 20
    if args.json is None:
        suffix = "" if args.fork == 1 else f"-fork{args.fork}"
        args.json = RESULTS / f"latest{suffix}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when every requested target produced a clean step."""
    args = parse_args(argv)
    exit_on_sigterm()
    check_tools(("sipp", "kamailio", "taskset"))
    started = time.monotonic()
    pin_self(runner.side_cpus(args))
    schedule, step = runner.call_schedule(args, args.hold_ms / 1000, started)
    plan = Plan(schedule, step, args.fork, args.hold_ms, args.answer_delay_ms)
    options = TargetOptions(runner.dialtone_options(args), args.kamailio_children)
    work = Path(tempfile.mkdtemp(prefix="bench-dial-"))
    print(f"work dir: {work}", flush=True)
    suffix = "" if args.fork == 1 else f"-fork{args.fork}"
    results: dict[str, DialResult] = {}
    try:
        for name in runner.targets(args):
            keep_log = args.json.parent / f"{name}{suffix}-warnings.log"
            results[name] = run_dial_target(name, plan, options, work, keep_log)
        if "kamailio" in results:
            cfg = args.json.parent / f"kamailio{suffix}.cfg"
            runner.keep_kamailio_config(work, cfg, results["kamailio"].details)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    info = runner.run_info("bench.dial.run", argv, args, plan, started)
    write_json(args.json, info, results)
    print(f"wrote {args.json}")
    runner.publish(args, section_name(args.fork), markdown(info, results))
    return 0 if all(r.error is None and r.max_clean for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
