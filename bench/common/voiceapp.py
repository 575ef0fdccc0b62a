"""The customer's voice app of the call benchmarks: every request gets the same RCML document.

    python -m bench.common.voiceapp --port 8081 --document '<Response>…</Response>' \
        [--log FILE] [--delay-ms N]

Any method, any path, HTTP/1.1 keep-alive, one thread per connection; standard
library only. Run as its own process (pinned with the SIPp side) so its CPU is
not counted as the server's. Webhook signatures are not checked: the
benchmarks measure dialtone, not the customer's app.

With `--log`, one line per request, `hook FROM CALLSID RECEIVED ANSWERED`
(epoch seconds from `time.time()`, the clock SIPp's `gettimeofday` reads):
RECEIVED when the request line has arrived, ANSWERED when the last byte of the
answer has been written. ANSWERED - RECEIVED is the app's own service time, the
part of a call's answer delay that belongs to the customer, not to dialtone.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO


class Recorder:
    """Writes one line per answered request (thread-safe, line-buffered)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def record(self, form: bytes, received: float, answered: float) -> None:
        """Log the request's `From` and `CallSid` with its two timestamps."""
        fields = urllib.parse.parse_qs(form.decode(errors="replace"))
        caller = (fields.get("From") or ["-"])[0].replace(" ", "_") or "-"
        call_sid = (fields.get("CallSid") or ["-"])[0] or "-"
        line = f"hook {caller} {call_sid} {received:.6f} {answered:.6f}\n"
        with self._lock:
            self._stream.write(line)


def log_offset(log: Path | None) -> int:
    """Where the next line of the app's request log (`--log`) will start."""
    return log.stat().st_size if log is not None and log.exists() else 0


def hook_lines(log: Path | None, offset: int, keep: Path) -> list[str]:
    """The app's `hook` lines written since `offset`, copied to `keep` for a latency step."""
    if log is None or not log.exists():
        return []
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("hook ")]
    keep.write_text("\n".join(lines) + "\n" if lines else "")
    return lines


def handler_for(
    body: bytes, delay_s: float = 0.0, recorder: Recorder | None = None
) -> type[BaseHTTPRequestHandler]:
    """A request handler class that answers `body` to everything, after `delay_s`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body are two writes: with Nagle on, the body waits for the
        # client's delayed ACK of the headers (~40 ms on Linux once the connection is busy),
        # a stall the app's own service time would not show.  Web frameworks set this too.
        disable_nagle_algorithm = True
        received = 0.0

        def parse_request(self) -> bool:
            # Called as soon as the request line has been read: the request's arrival.
            self.received = time.time()
            return super().parse_request()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = self.rfile.read(length) if length else b""
            if self.command == "GET" and "?" in self.path:
                form = self.path.split("?", 1)[1].encode()
            if delay_s > 0:
                time.sleep(delay_s)  # a slow customer app (a thread per connection)
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if recorder is not None:
                recorder.record(form, self.received, time.time())

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would cost more than the answer

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--document", required=True, help="the RCML answered to every request")
    parser.add_argument("--log", default=None, help="append one line per request to this file")
    parser.add_argument("--delay-ms", type=int, default=0, help="answer every request this late")
    args = parser.parse_args(argv)
    body = args.document.encode()
    if not body.startswith(b"<?xml"):
        body = b'<?xml version="1.0" encoding="UTF-8"?>' + body
    log = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115 - lives as long as the server
    recorder = Recorder(log) if log is not None else None
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler_for(body, args.delay_ms / 1000, recorder)
    )
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving {body.decode()} on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        if log is not None:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
