"""IVR benchmark (RFC 7502 style): calls/s answered by `<Say>one</Say><Hangup/>`, and by Kamailio.

    .venv/bin/python -m bench.ivr.run --target both

Steps the offered call rate up, stops at the first failing step and reports
the last clean one with its CPU per call, then measures INVITE → 200 with and
without the app's own service time in a separate step at half that rate.
Writes the `## IVR` section of docs/benchmarks.md (`ivr`) and
bench/ivr/results/latest.json. See bench/ivr/README.md.
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
from bench.common.cli import ROOT, check_tools, exit_on_sigterm
from bench.common.dialtone import CALLS_CMD
from bench.common.ports import free_ports
from bench.common.procs import pin_self
from bench.ivr.phases import IvrResult, Plan, run_ivr_target
from bench.ivr.summary import SECTION, markdown, write_json
from bench.ivr.targets import TargetOptions

RESULTS = ROOT / "bench" / "ivr" / "results"
DEFAULT_RATES = "10,25,50,75,100,150,200,300,400,500,600,800,1000,1200,1500,2000"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see bench/ivr/README.md)."""
    parser = runner.parser(
        "IVR benchmark (RFC 7502 style) against Kamailio and/or dialtone.",
        dialtone_cmd=CALLS_CMD,
        rates=DEFAULT_RATES,
        json=RESULTS / "latest.json",
        side="SIPp, the voice app, the RTP sink and the harness",
    )
    parser.add_argument(
        "--say-ms",
        type=int,
        default=720,
        help="how long Kamailio's UAS holds a call before its BYE (dialtone's \"one\": 36 "
        "frames of 20 ms); also the call length for the caller's open-call cap",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when every requested target produced a clean step."""
    args = parse_args(argv)
    exit_on_sigterm()
    check_tools(("sipp", "kamailio", "taskset", "espeak-ng"))
    started = time.monotonic()
    pin_self(runner.side_cpus(args))
    schedule, step = runner.call_schedule(args, args.say_ms / 1000, started)
    plan = Plan(schedule, step, args.say_ms)
    uas_sip, uas_media, uas_control = free_ports(3)
    options = TargetOptions(
        runner.dialtone_options(args), args.kamailio_children, (uas_sip, uas_media, uas_control)
    )
    work = Path(tempfile.mkdtemp(prefix="bench-ivr-"))
    print(f"work dir: {work}", flush=True)
    results: dict[str, IvrResult] = {}
    try:
        for name in runner.targets(args):
            keep_log = args.json.parent / f"{name}-warnings.log"
            results[name] = run_ivr_target(name, plan, options, work, keep_log)
        if "kamailio" in results:
            cfg = args.json.parent / "kamailio.cfg"
            runner.keep_kamailio_config(work, cfg, results["kamailio"].details)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    info = runner.run_info("bench.ivr.run", argv, args, plan, started)
    write_json(args.json, info, results)
    print(f"wrote {args.json}")
    runner.publish(args, SECTION, markdown(info, results))
    return 0 if all(r.error is None and r.max_clean for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
