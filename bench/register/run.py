"""REGISTER benchmark (RFC 7502 style) against Kamailio and/or dialtone.

    .venv/bin/python -m bench.register.run --target both

Steps the offered registration rate up, stops at the first failing step and
reports the last clean one; then measures memory with N bindings. Writes the
`## REGISTER` section of docs/benchmarks.md and bench/register/results/latest.json.
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
from bench.common.cli import ROOT, check_tools, exit_on_sigterm, keep_config
from bench.common.dialtone import DEFAULT_CMD, Account
from bench.common.procs import pin_self
from bench.register.phases import Plan, TargetResult, run_target
from bench.register.steps import Criteria
from bench.register.summary import markdown, write_json, write_plot
from bench.register.targets import TargetOptions

DEFAULT_RATES = "500,1000,1500,2000,3000,4000,5000,6000,8000,10000,12000,14000,16000"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see bench/register/README.md)."""
    parser = runner.parser(
        "REGISTER benchmark (RFC 7502 style) against Kamailio and/or dialtone.",
        dialtone_cmd=DEFAULT_CMD,
        rates=DEFAULT_RATES,
        json=ROOT / "bench" / "register" / "results" / "latest.json",
        quiet_wait=60.0,
        calls=False,
    )
    parser.add_argument("--users", type=int, default=1000, help="users for the rate steps")
    parser.add_argument(
        "--bindings-rss", type=int, default=10000, help="bindings for the RSS phase (0 = skip)"
    )
    parser.add_argument("--bindings-rate", type=int, default=250)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--refine", type=int, default=0, help="extra bisection steps")
    parser.add_argument(
        "--retry-busy",
        type=int,
        default=1,
        help="re-run a failing step this often if other processes used > 20%% of a core",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when every requested target produced figures."""
    args = parse_args(argv)
    exit_on_sigterm()
    check_tools(("sipp", "kamailio", "taskset"))
    started = time.monotonic()
    pin_self(runner.side_cpus(args))
    plan = Plan(
        users=args.users,
        rates=args.rates,
        step_seconds=args.step_seconds,
        pause_seconds=args.pause_seconds,
        transport={"udp": "u1", "tcp": "t1"}[args.transport],
        sipp_cpus=runner.side_cpus(args),
        criteria=Criteria(args.max_retrans_pct, args.min_achieved_pct),
        bindings=args.bindings_rss,
        bindings_rate=args.bindings_rate,
        refine=args.refine,
        retry_busy=args.retry_busy,
        quiet_wait=args.quiet_wait,
        deadline=started + args.max_seconds,
    )
    options = TargetOptions(
        server_cpus=args.server_cpus or None,
        kamailio_children=args.kamailio_children,
        dialtone_cmd=args.dialtone_cmd,
        account=Account.generate(),
    )
    work = Path(tempfile.mkdtemp(prefix="bench-register-"))
    print(f"work dir: {work}", flush=True)
    results: dict[str, TargetResult] = {}
    try:
        for name in runner.targets(args):
            results[name] = run_target(name, plan, options, work)
        if "kamailio" in results:
            kept = keep_config(
                work / "kamailio" / "steps" / "kamailio.cfg",
                args.json.parent / "kamailio.cfg",
                [
                    (r'("auth", "secret", ")[0-9a-f]+"', r'\1<random per run>"'),
                    (r"text://\S+?/db", "text://<work dir>/db"),
                ],
            )
            if kept:
                results["kamailio"].details["config"] = kept
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    info = runner.run_info("bench.register.run", argv, args, plan, started)
    write_json(args.json, info, results)
    print(f"wrote {args.json}")
    if write_plot(args.json.with_suffix(".png"), results):
        print(f"wrote {args.json.with_suffix('.png')}")
    runner.publish(args, "register", markdown(info, results))
    return 0 if all(r.error is None and r.max_clean for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
