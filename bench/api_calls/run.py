"""Outbound-call benchmark (RFC 7502 style): `POST /Calls` to a registered SIPp device.

    .venv/bin/python -m bench.api_calls.run            # writes its docs/benchmarks.md section
    .venv/bin/python -m bench.api_calls.run --no-doc   # prints the section instead

Starts dialtone (pinned), creates the Client `bench`, registers one device for it (a SIPp
UAS that answers and hangs up after --hold-ms), then steps the offered call rate up, stops
at the first failing step and reports the last clean one with the p99 response time of
`POST /Calls` and the server's CPU. See bench/api_calls/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from bench.api_calls.steps import Criteria, StepResult, Target, run_step
from bench.api_calls.summary import RunInfo, best, markdown, write_json
from bench.common import dialtone, sipp
from bench.common.cli import ROOT, exit_on_sigterm, parse_rates
from bench.common.ports import free_port
from bench.common.procs import ManagedProcess, pin_self
from bench.common.report import machine
from bench.common.runner import publish

DEFAULT_RATES = "10,25,50,75,100,125,150,200,250,300,400,500"
DEFAULT_CMD = dialtone.DEFAULT_CMD + " --log-format json"
TWIML = '<Response><Pause length="30"/></Response>'
LOGIN, PASSWORD = "bench", "bench-secret"
BUSY_PCT = 20.0  # other load (% of one core) above which a failing step is re-run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see bench/api_calls/README.md)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialtone-cmd", default=DEFAULT_CMD)
    parser.add_argument("--rates", type=parse_rates, default=parse_rates(DEFAULT_RATES))
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--hold-ms", type=int, default=1000, help="callee hangs up after this")
    parser.add_argument("--in-flight", type=int, default=64, help="max concurrent requests")
    parser.add_argument("--warmup-calls", type=int, default=20)
    parser.add_argument("--pause-seconds", type=float, default=2.0)
    parser.add_argument("--server-cpus", default="0", help="taskset list for the server")
    parser.add_argument("--harness-cpus", default="1", help="CPUs for SIPp and the harness")
    parser.add_argument("--min-achieved-pct", type=float, default=95.0)
    parser.add_argument("--max-retrans-pct", type=float, default=1.0)
    parser.add_argument("--retry-busy", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="whole-run bound")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "api_calls" / "results" / "latest.json"
    )
    parser.add_argument("--no-doc", action="store_true", help="print the section instead")
    parser.add_argument("--keep-work", action="store_true", help="keep logs and SIPp files")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _describe(step: StepResult) -> str:
    verdict = "clean" if step.passed else "FAIL: " + "; ".join(step.reasons)
    return (
        f"{step.label}: {step.created}/{step.calls} created at {step.achieved_rate:.0f}/s, "
        f"p99 {step.p99_ms:.0f} ms, server CPU {step.server_cpu_pct:.0f}%, "
        f"other {step.other_cpu_pct:.0f}% -> {verdict}"
    )


def _provision(cfg: dialtone.DialtoneConfig, device_port: int) -> None:
    api = f"http://127.0.0.1:{cfg.http_port}/2010-04-01/Accounts/{cfg.account.sid}"
    with httpx.Client(auth=(cfg.account.sid, cfg.account.token), timeout=10) as client:
        response = client.post(f"{api}/Clients.json", data={"Login": LOGIN, "Password": PASSWORD})
        if response.status_code != 201:
            raise RuntimeError(f"POST Clients.json -> {response.status_code}: {response.text}")
    dialtone.register(cfg.sip_port, LOGIN, PASSWORD, device_port)


def run_steps(
    args: argparse.Namespace, work: Path, started: float
) -> tuple[list[StepResult], list[str]]:
    """Start the server, provision the device, run warm-up and rate steps."""
    steps: list[StepResult] = []
    notes: list[str] = []
    cfg = dialtone.DialtoneConfig(
        command=args.dialtone_cmd,
        work_dir=work / "dialtone",
        sip_port=free_port(),
        http_port=free_port(udp=False),
        account=dialtone.Account.generate(),
    )
    (work / "dialtone").mkdir(parents=True, exist_ok=True)
    server: ManagedProcess = dialtone.start(cfg, args.server_cpus or None, work)
    try:
        device_port = free_port(tcp=False)
        _provision(cfg, device_port)
        target = Target(
            http_port=cfg.http_port,
            server_pid=server.pid,
            account=cfg.account,
            login=LOGIN,
            device_port=device_port,
            media_port=free_port(tcp=False, exclude={device_port}),
            twiml=TWIML,
        )
        criteria = Criteria(args.min_achieved_pct, args.max_retrans_pct)
        common = {
            "hold_ms": args.hold_ms,
            "in_flight": args.in_flight,
            "out_dir": work / "sipp",
            "sipp_cpus": args.harness_cpus or None,
            "criteria": criteria,
        }
        if args.warmup_calls > 0:
            warm_rate = min(10, args.warmup_calls)
            warm = run_step(
                target,
                rate=warm_rate,
                seconds=args.warmup_calls / warm_rate,
                label="warmup",
                **common,
            )
            steps.append(warm)
            _log(_describe(warm))
            if not warm.passed:
                notes.append("the warm-up failed: no rate steps were run")
                return steps, notes
        for rate in args.rates:
            if time.monotonic() - started > args.max_seconds:
                notes.append(f"--max-seconds reached before the {rate}/s step")
                break
            time.sleep(args.pause_seconds)
            tries = 0
            while True:
                # A fresh REGISTER puts the registrar's keep-alive OPTIONS (REG-6, 60 s
                # after the binding was last heard from) off past this step.
                dialtone.register(cfg.sip_port, LOGIN, PASSWORD, device_port)
                step = run_step(
                    target, rate=rate, seconds=args.step_seconds, label=f"r{rate}-{tries}", **common
                )
                steps.append(step)
                _log(_describe(step))
                if step.passed or tries >= args.retry_busy or step.other_cpu_pct < BUSY_PCT:
                    break
                tries += 1
                notes.append(
                    f"the {rate}/s step failed while other processes used "
                    f"{step.other_cpu_pct:.0f}% of a core; it was run again"
                )
                time.sleep(args.pause_seconds)
            if not step.passed:
                break
        if server.alive() is False:
            notes.append(f"dialtone exited during the run:\n{server.stderr_tail()}")
    finally:
        server.stop()
    return steps, notes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when at least one rate step was clean."""
    args = parse_args(argv)
    exit_on_sigterm()
    if shutil.which("sipp") is None:
        sys.exit("missing sipp: apt-get install -y --no-install-recommends sip-tester util-linux")
    started = time.monotonic()
    pin_self(args.harness_cpus or None)
    work = Path(tempfile.mkdtemp(prefix="bench-api-calls-"))
    _log(f"work dir: {work}")
    try:
        steps, notes = run_steps(args, work, started)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    cli = argv if argv is not None else sys.argv[1:]
    info = RunInfo(
        date=time.strftime("%Y-%m-%d %H:%M %Z"),
        command=shlex.join([".venv/bin/python", "-m", "bench.api_calls.run", *cli]),
        machine=machine(),
        sipp_version=sipp.version(),
        dialtone_cmd=args.dialtone_cmd,
        server_cpus=args.server_cpus or None,
        harness_cpus=args.harness_cpus or None,
        step_seconds=args.step_seconds,
        hold_ms=args.hold_ms,
        in_flight=args.in_flight,
        rates=args.rates,
        twiml=TWIML,
        wall_seconds=time.monotonic() - started,
    )
    write_json(args.json, info, steps, notes)
    _log(f"wrote {args.json}")
    publish(args, "api_calls", markdown(info, steps, notes))
    return 0 if best(steps) is not None else 1


if __name__ == "__main__":
    sys.exit(main())
