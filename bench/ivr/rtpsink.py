"""The caller's ear in the IVR benchmark: count the RTP streams and packets that arrive.

    python -m bench.ivr.rtpsink --port 40000 --out sink.json [--max-seconds 600]

The SIPp caller's SDP offer points every call's media at this port (SIPp
cannot tell whether RTP arrived). A stream is one (source address, source
port, SSRC): dialtone sends each call's audio from its own RTP port with its
own SSRC. A packet is speech when its payload is not one byte repeated (G.711
silence is: dialtone sends encoded silence when nothing plays, before and
after the prompt). On SIGTERM the sink writes, as JSON, every stream it saw
(source port, SSRC, packets, first and last arrival as epoch seconds, largest
gap between two packets, speech packets, the first speech packet's arrival)
and the datagrams the kernel dropped at its socket (/proc/net/udp), then
exits; it also stops by itself after `--max-seconds`. Standard library only,
one socket, one loop.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import sys
import time
from pathlib import Path

_RCVBUF = 4 * 1024 * 1024  # = net.core.rmem_max here, like SIPp's -buff_size
_RTP_HEADER = 12


def kernel_drops(port: int) -> int | None:
    """Datagrams dropped at the UDP socket bound to 127.0.0.1:`port` (last /proc/net/udp column)."""
    wanted = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 12 and fields[1] == wanted:
            return int(fields[-1])
    return None


class Streams:
    """Per stream (host, port, ssrc): [packets, first, last, max gap, speech, first speech]."""

    def __init__(self) -> None:
        self.table: dict[tuple[str, int, int], list[float]] = {}
        self.datagrams = 0
        self.not_rtp = 0

    def add(self, data: bytearray, size: int, source: tuple[str, int], now: float) -> None:
        """Count one datagram."""
        self.datagrams += 1
        if size < _RTP_HEADER or data[0] >> 6 != 2:
            self.not_rtp += 1
            return
        (ssrc,) = struct.unpack_from("!I", data, 8)
        start = _RTP_HEADER + 4 * (data[0] & 0x0F)  # after the CSRC list
        payload = data[start:size]
        speech = 1.0 if payload and payload.count(payload[:1]) != len(payload) else 0.0
        key = (source[0], source[1], ssrc)
        entry = self.table.get(key)
        if entry is None:
            self.table[key] = [1.0, now, now, 0.0, speech, now if speech else 0.0]
            return
        entry[0] += 1
        if speech and not entry[4]:
            entry[5] = now
        entry[4] += speech
        gap = now - entry[2]
        if gap > entry[3]:
            entry[3] = gap
        entry[2] = now

    def as_json(self) -> list[list[float | None]]:
        """[[port, ssrc, packets, first, last, max gap, speech, first speech or None], ...]."""
        ordered = sorted(self.table.items(), key=lambda item: item[1][1])
        return [
            [port, ssrc, int(entry[0]), *entry[1:4], int(entry[4]), entry[5] or None]
            for (_, port, ssrc), entry in ordered
        ]


def main(argv: list[str] | None = None) -> int:
    """Receive until SIGTERM, then write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    stop = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGUSR1, request_stop)
    streams = Streams()
    buffer = bytearray(2048)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.bind(("127.0.0.1", args.port))
        sock.settimeout(0.2)
        drops_before = kernel_drops(args.port)
        print(f"RTP sink on 127.0.0.1:{args.port}", flush=True)
        while not stop and time.monotonic() < deadline:
            try:
                size, source = sock.recvfrom_into(buffer)
            except TimeoutError:
                continue
            streams.add(buffer, size, source, time.time())
        drops_after = kernel_drops(args.port)
    dropped = None if drops_before is None or drops_after is None else drops_after - drops_before
    summary = {
        "port": args.port,
        "datagrams": streams.datagrams,
        "not_rtp": streams.not_rtp,
        "kernel_drops": dropped,
        "streams": streams.as_json(),
    }
    args.out.write_text(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
