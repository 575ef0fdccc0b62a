"""How many concurrent calls one core can pace: N sessions playing a tone, 10 s each.

Run: ``.venv/bin/python bench/media_pacing.py [--counts 50,100,200,400] [--seconds 10]
[--loop asyncio|uvloop|both] [--aligned] [--no-pin] [--bridged]``.

For each N, this process opens N :class:`~dialtone.media.local.LocalMediaSession` s on
loopback, paced as in production (by the engine's media clock), and plays a steady
440+480 Hz tone (PCMU) from each to a sink.  The sink is a *separate process*
(on another CPU when there are two, unless ``--no-pin``) reading one UDP socket in a
blocking loop and stamping each packet on arrival; it tells the N streams apart by
SSRC (one socket for the N sinks keeps the sink cheap).  So the CPU figure is the
pacing process alone (``time.process_time`` over the measured window), and the timing
is what a phone would see on the wire.

Reported per N, over ``--seconds`` after a 1 s warm-up:

- CPU % of one core used by the pacing process, and µs of CPU per packet;
- packets/s received (the target is N × 50) and packets lost (sequence gaps);
- inter-packet jitter: |arrival gap − 20 ms| per stream, p50/p99/max over all gaps;
- late/skipped ticks summed over the sessions (a clock behind by ≥ 3 frames skips);
- the sink's CPU, and "other CPU": the machine's busy time (/proc/stat) minus both
  processes, in % of one core.  Jitter is only as good as the machine is quiet: on a
  shared machine compare runs with little other CPU.

Sessions are opened spread evenly over one 20 ms frame (calls arrive at random
moments); ``--aligned`` opens them all at once.  Either way they tick together on the
engine's one 20 ms grid, so every tick is a burst of N packets (sent in the order the
sessions opened, the same each tick: a stream's own spacing stays 20 ms).
N is capped at 1000 and a run at 60 s.

``--bridged`` measures the other state of a call instead: N *pairs* of sessions (2N
sessions), each pair bridged, with no traffic (both far ends silent), comfort silence
off: what the pacing costs while calls are bridged and idle.  Reported: the pacing
process's CPU % of one core and µs of CPU per session per second (nothing is sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from dialtone.media.local import LocalMediaEngine, LocalMediaSession
from dialtone.media.ports import PortPool
from dialtone.media.session import MediaClosed
from dialtone.media.sources import ToneSource

MAX_COUNT = 1000
MAX_SECONDS = 60.0
WARMUP = 1.0
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def process_busy(pid: int) -> float:
    """CPU seconds of one process (utime + stime from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# --- the sink (a child process) -------------------------------------------------------


def sink_main() -> None:
    """Receive RTP on one socket; ``start``/``stop`` on stdin bracket the measurement."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    print(sock.getsockname()[1], flush=True)
    state = {"recording": False, "done": False}
    flags_changed = threading.Event()
    last: dict[int, tuple[int, int]] = {}  # ssrc -> (arrival ns, sequence)
    gaps = array("d")
    counters = {"packets": 0, "lost": 0}

    def control() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "start":
                last.clear()
                del gaps[:]
                counters.update(packets=0, lost=0)
                state["recording"] = True
            elif command == "stop":
                state["recording"] = False
                state["done"] = True
                flags_changed.set()
                return
        state["done"] = True
        flags_changed.set()

    threading.Thread(target=control, daemon=True).start()
    unpack = struct.Struct("!HI").unpack_from  # sequence, then (after ts) SSRC at 8
    while not state["done"]:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        now = time.monotonic_ns()
        if not state["recording"] or len(data) < 12:
            continue
        sequence = unpack(data, 2)[0]
        ssrc = int.from_bytes(data[8:12], "big")
        counters["packets"] += 1
        previous = last.get(ssrc)
        if previous is not None:
            missing = (sequence - previous[1] - 1) & 0xFFFF
            if missing < 1000:
                counters["lost"] += missing
                if not missing:
                    gaps.append(abs((now - previous[0]) / 1e6 - 20.0))
        last[ssrc] = (now, sequence)
    flags_changed.wait(1)
    jitter = sorted(gaps)

    def pct(p: float) -> float:
        return jitter[min(len(jitter) - 1, int(p * len(jitter)))] if jitter else float("nan")

    result = {
        "packets": counters["packets"],
        "lost": counters["lost"],
        "streams": len(last),
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": jitter[-1] if jitter else float("nan"),
    }
    print(json.dumps(result), flush=True)
    sock.close()


class Sink:
    """The sink child process, pinned to ``cpu`` when given."""

    def __init__(self, cpu: int | None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})
        self.port = int(self.proc.stdout.readline())

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        self.command("stop")
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.proc.wait(timeout=10)
        return dict(json.loads(line))


# --- the pacing side -----------------------------------------------------------------


async def run_step(
    count: int, seconds: float, aligned: bool, cpu: int | None, bridged: bool = False
) -> dict[str, Any]:
    """Pace ``count`` tone streams into a fresh sink (or, ``bridged``, hold ``count``
    idle bridged pairs); the figures of one step."""
    sink = Sink(cpu)
    engine = LocalMediaEngine(PortPool(30000, 30000 + 4 * count + 999), comfort_silence=False)
    loop = asyncio.get_running_loop()

    async def tone(session: LocalMediaSession) -> None:
        with suppress(MediaClosed):  # the step ends by closing the engine
            await session.play(ToneSource(off=0))

    try:
        sessions = []
        async with asyncio.TaskGroup() as group:
            start = loop.time()
            for i in range(count):
                if not aligned:  # spread the opens over one frame
                    await asyncio.sleep(max(0.0, start + 0.02 * i / count - loop.time()))
                session = engine.open(task_group=group)
                session.configure("127.0.0.1", sink.port, 0, None)
                sessions.append(session)
                if bridged:
                    other = engine.open(task_group=group)
                    other.configure("127.0.0.1", sink.port, 0, None)
                    sessions.append(other)
                    session.bridge(other)
                else:
                    group.create_task(tone(session))
            await asyncio.sleep(WARMUP)
            late0 = sum(s.stats.late_ticks for s in sessions)
            skipped0 = sum(s.stats.skipped_ticks for s in sessions)
            sink.command("start")
            busy0, sink0 = machine_busy(), process_busy(sink.proc.pid)
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, wall1 = time.process_time(), time.monotonic()
            busy1, sink1 = machine_busy(), process_busy(sink.proc.pid)
            received = sink.result()
            late = sum(s.stats.late_ticks for s in sessions) - late0
            skipped = sum(s.stats.skipped_ticks for s in sessions) - skipped0
            await engine.close()
    finally:
        await engine.close()
        if sink.proc.poll() is None:
            sink.proc.kill()
            sink.proc.wait()
    wall = wall1 - wall0
    packets = received["packets"]
    return {
        "count": count,
        "bridged": bridged,
        "sessions": len(sessions),
        "us_per_session_s": 1e6 * (cpu1 - cpu0) / wall / max(len(sessions), 1),
        "cpu": 100 * (cpu1 - cpu0) / wall,
        "sink_cpu": 100 * (sink1 - sink0) / wall,
        "other_cpu": max(0.0, 100 * ((busy1 - busy0) - (cpu1 - cpu0) - (sink1 - sink0)) / wall),
        "us_per_packet": 1e6 * (cpu1 - cpu0) / max(packets, 1),
        "pps": packets / wall,
        "target": 50 * count,
        "lost": received["lost"],
        "p50": received["p50"],
        "p99": received["p99"],
        "max": received["max"],
        "late": late,
        "skipped": skipped,
    }


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor of ``kind`` (``asyncio`` or ``uvloop``)."""
    if kind == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def markdown(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """The figures as a Markdown section."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    starts = "aligned" if args.aligned else "staggered"
    placement = "both processes placed by the OS" if args.no_pin else "pacer CPU 0, sink CPU 1"
    lines = [
        "## Media pacing" + (" (idle bridged pairs)" if args.bridged else ""),
        "",
        f"Generated by `bench/media_pacing.py` on {when}, {args.seconds:g} s per step, "
        f"{starts} starts.",
        f"Machine: {os.cpu_count()} CPU(s), {platform.machine()}, Python "
        f"{platform.python_version()}; {placement}.",
        "",
    ]
    if args.bridged:
        lines += [
            "| loop | pairs | sessions | CPU % of a core | µs CPU per session per second |",
            "|---|---|---|---|---|",
        ]
        for kind, rows in results.items():
            lines += [
                f"| {kind} | {r['count']} | {r['sessions']} | {r['cpu']:.2f} "
                f"| {r['us_per_session_s']:.2f} |"
                for r in rows
            ]
        return "\n".join(lines) + "\n"
    lines += [
        "| loop | N | CPU % of a core | µs CPU/packet | packets/s (target) | lost"
        " | jitter p50 ms | p99 ms | max ms | late ticks | skipped ticks"
        " | sink CPU % | other CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, rows in results.items():
        for r in rows:
            lines.append(
                f"| {kind} | {r['count']} | {r['cpu']:.1f} | {r['us_per_packet']:.1f} "
                f"| {r['pps']:.0f} ({r['target']}) | {r['lost']} | {r['p50']:.3f} "
                f"| {r['p99']:.3f} | {r['max']:.2f} | {r['late']} | {r['skipped']} "
                f"| {r['sink_cpu']:.0f} | {r['other_cpu']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the steps and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--counts", default="50,100,200,400")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    parser.add_argument("--aligned", action="store_true", help="start all streams at once")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place both processes")
    parser.add_argument(
        "--bridged", action="store_true", help="N idle bridged pairs instead of N tone streams"
    )
    args = parser.parse_args()
    if args.sink:
        sink_main()
        return
    counts = [min(int(c), MAX_COUNT) for c in args.counts.split(",")]
    args.seconds = min(args.seconds, MAX_SECONDS)
    sender_cpu = sink_cpu = None
    pin = not args.no_pin and hasattr(os, "sched_setaffinity")
    if pin and len(os.sched_getaffinity(0)) >= 2:
        sender_cpu, sink_cpu = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, {sender_cpu})
    kinds = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    results: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        for count in counts:
            with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
                row = runner.run(
                    run_step(count, args.seconds, args.aligned, sink_cpu, args.bridged)
                )
            results.setdefault(kind, []).append(row)
            if args.bridged:
                print(
                    f"{kind:8} pairs={count:4}  sessions {row['sessions']}  cpu "
                    f"{row['cpu']:5.2f}%  {row['us_per_session_s']:.2f} µs/session/s  "
                    f"other CPU {row['other_cpu']:.0f}%",
                    flush=True,
                )
                continue
            print(
                f"{kind:8} N={count:4}  cpu {row['cpu']:5.1f}%  {row['pps']:7.0f} pkt/s "
                f"(target {row['target']})  lost {row['lost']}  jitter p50 {row['p50']:.3f} "
                f"p99 {row['p99']:.3f} max {row['max']:.2f} ms  late {row['late']} "
                f"skipped {row['skipped']}  other CPU {row['other_cpu']:.0f}%",
                flush=True,
            )
    print()
    print(markdown(results, args))


if __name__ == "__main__":
    main()
