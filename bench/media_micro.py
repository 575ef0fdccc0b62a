"""Micro-benchmark of the media cores: µs per 20 ms frame (160 samples) on this machine.

Run: ``.venv/bin/python bench/media_micro.py [--number N]``.  A call costs one frame per
direction every 20 ms, so the per-frame figures bound how many calls one core can pace:
a played prompt is *pull + encode + RTP build* per frame; a bridged leg is *RTP parse +
(translate) + RTP build*; inbound audio we only listen to for DTMF is *RTP parse*.
The target is hundreds of calls per core with room left for the event loop and the
sockets (a ``sendto`` alone is ~5 µs), so these should stay in the low µs.
"""

from __future__ import annotations

import argparse
import math
import platform
import struct
import time
from collections.abc import Callable

from dialtone.media.codecs import PCMA, PCMU, transcode_table
from dialtone.media.dtmf import DtmfDetector, build_event
from dialtone.media.rtp import RtpReceiver, RtpSender, parse_rtp
from dialtone.media.sources import PcmSource, ToneSource

FRAME = struct.pack("<160h", *(round(8000 * math.sin(n / 3)) for n in range(160)))
PAYLOAD = PCMU.encode(FRAME)


def per_call(fn: Callable[[], object], number: int) -> float:
    """Best of 7 runs of ``number`` calls, in µs per call (the least disturbed run)."""
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / number * 1e6


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=50_000)
    number = parser.parse_args().number
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")

    sender = RtpSender(ssrc=0x1234, sequence=0, timestamp=0)
    wire = sender.packet(PAYLOAD, 0)
    table = transcode_table(PCMU, PCMA)
    assert table is not None
    tone = ToneSource()
    prompt = PcmSource(FRAME * 500, loop=0)
    receiver = RtpReceiver()
    detector = DtmfDetector()
    event = build_event(5, 800)

    def parse_and_build() -> bytes:
        pkt = parse_rtp(wire)
        receiver.receive(pkt)
        return sender.packet(pkt.payload, pkt.payload_type)

    def play_frame() -> bytes:
        frame = tone.next_frame()
        return sender.packet(PCMU.encode(frame), 0)

    def bridge_frame() -> bytes:
        pkt = parse_rtp(wire)
        return sender.packet(pkt.payload.translate(table), 8)

    rows: list[tuple[str, Callable[[], object]]] = [
        ("μ-law encode, 160 samples", lambda: PCMU.encode(FRAME)),
        ("A-law encode, 160 samples", lambda: PCMA.encode(FRAME)),
        ("μ-law decode, 160 bytes", lambda: PCMU.decode(PAYLOAD)),
        ("PCMU → PCMA translate, 160 bytes", lambda: PAYLOAD.translate(table)),
        ("RTP parse", lambda: parse_rtp(wire)),
        ("RTP parse + receiver stats", lambda: receiver.receive(parse_rtp(wire))),
        ("RTP build (RtpSender.packet)", lambda: sender.packet(PAYLOAD, 0)),
        ("RTP parse + build", parse_and_build),
        ("tone frame pull (ringback)", tone.next_frame),
        ("PCM frame pull (looped prompt)", prompt.next_frame),
        ("DTMF detector feed (repeat packet)", lambda: detector.feed(8000, False, event)),
        ("= play: tone pull + encode + build", play_frame),
        ("= bridge: parse + translate + build", bridge_frame),
    ]
    figures = {}
    for name, fn in rows:
        figures[name] = us = per_call(fn, number)
        print(f"{name:<40} {us:6.2f} µs")
    for name in ("= play: tone pull + encode + build", "= bridge: parse + translate + build"):
        # Each call carries 50 frames per second per direction handled this way.
        calls = 1e6 / (figures[name] * 50)
        print(f"{name[2:].split(':')[0]:<8} media cores alone: ~{calls:,.0f} streams per core")


if __name__ == "__main__":
    main()
