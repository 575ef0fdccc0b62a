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
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common.procs import pin_self
from bench.common.report import machine, replace_section
from bench.dial import dialtone, kamailio
from bench.dial.phases import Plan, TargetResult, run_target
from bench.dial.steps import Criteria
from bench.dial.summary import RunInfo, markdown, section_name, write_json
from bench.dial.targets import TargetOptions
from bench.register import sipp as register_sipp

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "dial" / "results"
DEFAULT_RATES = "10,25,50,100,150,200,300,400,500,600,800,1000,1200,1500,2000"
DEFAULT_FORK_RATES = "5,10,25,50,75,100,150,200,300,400,500"


def _rates(text: str) -> tuple[int, ...]:
    rates = tuple(int(part) for part in text.split(",") if part.strip())
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates must be positive integers, comma-separated")
    return tuple(sorted(rates))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see bench/dial/README.md)."""
    parser = argparse.ArgumentParser(
        description="Dial benchmark (RFC 7502 style) against Kamailio and/or dialtone."
    )
    parser.add_argument("--target", choices=("kamailio", "dialtone", "both"), default="both")
    parser.add_argument(
        "--fork", type=int, default=1, help="branches per call (1 or 2..10; exactly one answers)"
    )
    parser.add_argument(
        "--dialtone-cmd",
        default=dialtone.DEFAULT_CMD,
        help="command template; {venv} {sip_port} {http_port} {data_dir} are filled in",
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=None,
        help=f"calls/s per step (default {DEFAULT_RATES}; with --fork {DEFAULT_FORK_RATES})",
    )
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--hold-ms", type=int, default=1000, help="caller sends BYE after this")
    parser.add_argument(
        "--answer-delay-ms",
        type=int,
        default=None,
        help="the answering callee's 180 → 200 delay (default 0; 20 with --fork)",
    )
    parser.add_argument("--pause-seconds", type=float, default=3.0)
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
    parser.add_argument("--max-seconds", type=float, default=2700.0, help="whole-run bound")
    parser.add_argument("--server-cpus", default="0", help="taskset list for the server")
    parser.add_argument(
        "--sipp-cpus", default="1", help="taskset list for SIPp, the voice app and the harness"
    )
    parser.add_argument("--kamailio-children", type=int, default=2)
    parser.add_argument("--max-retrans-pct", type=float, default=1.0)
    parser.add_argument("--min-achieved-pct", type=float, default=95.0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each step wait up to this many s for other load < 20%% of a core (0 = off)",
    )
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--json", type=Path, default=None, help="default results/latest[-forkN].json"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--keep-work", action="store_true", help="keep logs and SIPp files")
    args = parser.parse_args(argv)
    if not 1 <= args.fork <= 10:
        parser.error("--fork must be 1..10 (DIAL-3: at most 10 nouns)")
    if args.rates is None:
        args.rates = _rates(DEFAULT_RATES if args.fork == 1 else DEFAULT_FORK_RATES)
    if args.answer_delay_ms is None:
        args.answer_delay_ms = 0 if args.fork == 1 else 20
    if args.json is None:
        suffix = "" if args.fork == 1 else f"-fork{args.fork}"
        args.json = RESULTS / f"latest{suffix}.json"
    return args


def _check_tools() -> None:
    missing = [tool for tool in ("sipp", "kamailio", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: apt-get install -y --no-install-recommends "
            "sip-tester kamailio util-linux"
        )


def _keep_kamailio_cfg(work: Path, results_dir: Path, result: TargetResult, fork: int) -> None:
    source = work / "kamailio" / "steps" / "kamailio.cfg"
    if not source.exists():
        return
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", source.read_text())
    results_dir.mkdir(parents=True, exist_ok=True)
    target = results_dir / ("kamailio.cfg" if fork == 1 else f"kamailio-fork{fork}.cfg")
    target.write_text(text)
    try:
        shown = str(target.relative_to(ROOT))
    except ValueError:
        shown = str(target)
    result.details["config"] = shown


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into SystemExit so `finally` blocks stop every child by PID.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when every requested target produced a clean step."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _check_tools()
    started = time.monotonic()
    pin_self(args.sipp_cpus or None)
    names = ["kamailio", "dialtone"] if args.target == "both" else [args.target]
    plan = Plan(
        fork=args.fork,
        rates=args.rates,
        step_seconds=args.step_seconds,
        pause_seconds=args.pause_seconds,
        hold_ms=args.hold_ms,
        answer_delay_ms=args.answer_delay_ms,
        side_cpus=args.sipp_cpus or None,
        criteria=Criteria(args.max_retrans_pct, args.min_achieved_pct),
        latency_seconds=args.latency_seconds,
        latency_rate=args.latency_rate,
        quiet_wait=args.quiet_wait,
        settle_timeout=args.settle_seconds,
        deadline=started + args.max_seconds,
    )
    options = TargetOptions(
        server_cpus=args.server_cpus or None,
        side_cpus=args.sipp_cpus or None,
        kamailio_children=args.kamailio_children,
        dialtone_cmd=args.dialtone_cmd,
        account=dialtone.Account.generate(),
    )
    work = Path(tempfile.mkdtemp(prefix="bench-dial-"))
    print(f"work dir: {work}", flush=True)
    suffix = "" if args.fork == 1 else f"-fork{args.fork}"
    results: dict[str, TargetResult] = {}
    try:
        for name in names:
            keep_log = args.json.parent / f"{name}{suffix}-warnings.log"
            results[name] = run_target(name, plan, options, work, keep_log)
        if "kamailio" in results:
            _keep_kamailio_cfg(work, args.json.parent, results["kamailio"], args.fork)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    cli = argv if argv is not None else sys.argv[1:]
    info = RunInfo(
        date=time.strftime("%Y-%m-%d %H:%M %Z"),
        command=shlex.join([".venv/bin/python", "-m", "bench.dial.run", *cli]),
        machine=machine(),
        sipp_version=register_sipp.version(),
        kamailio_version=kamailio.version(),
        server_cpus=options.server_cpus,
        side_cpus=plan.side_cpus,
        plan=plan,
        wall_seconds=time.monotonic() - started,
    )
    write_json(args.json, info, results)
    print(f"wrote {args.json}")
    section = markdown(info, results)
    if args.no_doc:
        print(section)
    else:
        replace_section(args.doc, section_name(args.fork), section)
        print(f"updated the {section_name(args.fork)} section of {args.doc}")
    return 0 if all(r.error is None and r.max_clean for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
