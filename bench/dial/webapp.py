"""The customer's voice app of the Dial benchmark: every request gets one `<Dial>` document.

    python -m bench.dial.webapp --port 8081 --clients load0,load1,...

Any method, any path: `<Response><Dial><Client>load</Client></Dial></Response>`
(one `<Client>` per login given). Standard library only, HTTP/1.1 keep-alive,
one thread per connection; run as its own process (pinned with the SIPp side)
so its CPU is not counted as the server's. Webhook signatures are not
checked: the benchmark measures dialtone, not the customer's app.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


def document(clients: list[str]) -> bytes:
    """The RCML answer: one `<Dial>` ringing every Client at once."""
    nouns = "".join(f"<Client>{escape(login)}</Client>" for login in clients)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Dial>{nouns}</Dial></Response>'.encode()
    )


def handler_for(body: bytes, delay_s: float = 0.0) -> type[BaseHTTPRequestHandler]:
    """A request handler class that answers `body` to everything, after `delay_s`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if delay_s > 0:
                time.sleep(delay_s)  # a slow customer app (a thread per connection)
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would cost more than the answer

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", required=True, help="comma-separated Client logins")
    parser.add_argument("--delay-ms", type=int, default=0, help="answer every request this late")
    args = parser.parse_args(argv)
    clients = [login for login in args.clients.split(",") if login]
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler_for(document(clients), args.delay_ms / 1000)
    )
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving {document(clients).decode()} on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
