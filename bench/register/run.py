"""REGISTER benchmark (RFC 7502 style) against Kamailio and/or dialtone.

    .venv/bin/python -m bench.register.run --target both

Steps the offered registration rate up, stops at the first failing step and
reports the last clean one; then measures memory with N bindings. Writes the
`## REGISTER` section of docs/benchmarks.md and bench/register/results/latest.json.
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
from bench.register import dialtone, kamailio, sipp
from bench.register.phases import Plan, TargetResult, run_target
from bench.register.steps import Criteria
from bench.register.summary import RunInfo, markdown, write_json, write_plot
from bench.register.targets import TargetOptions

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RATES = "500,1000,1500,2000,3000,4000,5000,6000,8000,10000,12000,14000,16000"


def _rates(text: str) -> tuple[int, ...]:
    rates = tuple(int(part) for part in text.split(",") if part.strip())
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates must be positive integers, comma-separated")
    return tuple(sorted(rates))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see bench/register/README.md)."""
    parser = argparse.ArgumentParser(
        description="REGISTER benchmark (RFC 7502 style) against Kamailio and/or dialtone."
    )
    parser.add_argument("--target", choices=("kamailio", "dialtone", "both"), default="both")
    parser.add_argument(
        "--dialtone-cmd",
        default=dialtone.DEFAULT_CMD,
        help="command template; {venv} {sip_port} {http_port} {data_dir} are filled in",
    )
    parser.add_argument("--users", type=int, default=1000, help="users for the rate steps")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--rates", type=_rates, default=_rates(DEFAULT_RATES))
    parser.add_argument("--max-seconds", type=float, default=2700.0, help="whole-run bound")
    parser.add_argument(
        "--bindings-rss", type=int, default=10000, help="bindings for the RSS phase (0 = skip)"
    )
    parser.add_argument("--bindings-rate", type=int, default=250)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--server-cpus", default="0", help="taskset list for the server")
    parser.add_argument("--sipp-cpus", default="1", help="taskset list for SIPp (and the harness)")
    parser.add_argument("--kamailio-children", type=int, default=2)
    parser.add_argument("--max-retrans-pct", type=float, default=1.0)
    parser.add_argument("--min-achieved-pct", type=float, default=95.0)
    parser.add_argument("--refine", type=int, default=0, help="extra bisection steps")
    parser.add_argument(
        "--retry-busy",
        type=int,
        default=1,
        help="re-run a failing step this often if other processes used > 20%% of a core",
    )
    parser.add_argument("--pause-seconds", type=float, default=3.0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each step wait up to this many s for other load < 20%% of a core (0 = off)",
    )
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "register" / "results" / "latest.json"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--keep-work", action="store_true", help="keep logs and SIPp files")
    return parser.parse_args(argv)


def _check_tools() -> None:
    missing = [tool for tool in ("sipp", "kamailio", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: apt-get install -y --no-install-recommends "
            "sip-tester kamailio util-linux"
        )


def _keep_kamailio_cfg(work: Path, results_dir: Path, result: TargetResult) -> None:
    """Save the generated kamailio.cfg next to the results (auth secret masked)."""
    source = work / "kamailio" / "steps" / "kamailio.cfg"
    if not source.exists():
        return
    text = re.sub(r'("auth", "secret", ")[0-9a-f]+"', r'\1<random per run>"', source.read_text())
    text = re.sub(r"text://\S+?/db", "text://<work dir>/db", text)
    results_dir.mkdir(parents=True, exist_ok=True)
    target = results_dir / "kamailio.cfg"
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
    """Run the benchmark; exit 0 when every requested target produced figures."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _check_tools()
    started = time.monotonic()
    pin_self(args.sipp_cpus or None)
    names = ["kamailio", "dialtone"] if args.target == "both" else [args.target]
    plan = Plan(
        users=args.users,
        rates=args.rates,
        step_seconds=args.step_seconds,
        pause_seconds=args.pause_seconds,
        transport={"udp": "u1", "tcp": "t1"}[args.transport],
        sipp_cpus=args.sipp_cpus or None,
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
        account=dialtone.Account.generate(),
    )
    work = Path(tempfile.mkdtemp(prefix="bench-register-"))
    print(f"work dir: {work}", flush=True)
    results: dict[str, TargetResult] = {}
    try:
        for name in names:
            results[name] = run_target(name, plan, options, work)
        if "kamailio" in results:
            _keep_kamailio_cfg(work, args.json.parent, results["kamailio"])
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    cli = argv if argv is not None else sys.argv[1:]
    info = RunInfo(
        date=time.strftime("%Y-%m-%d %H:%M %Z"),
        command=shlex.join([".venv/bin/python", "-m", "bench.register.run", *cli]),
        machine=machine(),
        sipp_version=sipp.version(),
        kamailio_version=kamailio.version(),
        server_cpus=options.server_cpus,
        sipp_cpus=plan.sipp_cpus,
        plan=plan,
        wall_seconds=time.monotonic() - started,
    )
    write_json(args.json, info, results)
    print(f"wrote {args.json}")
    if write_plot(args.json.with_suffix(".png"), results):
        print(f"wrote {args.json.with_suffix('.png')}")
    section = markdown(info, results)
    if args.no_doc:
        print(section)
    else:
        replace_section(args.doc, "register", section)
        print(f"updated the REGISTER section of {args.doc}")
    return 0 if all(r.error is None and r.max_clean for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
