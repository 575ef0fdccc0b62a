"""Micro-benchmark of the sans-IO SIP path: µs per REGISTER transaction, end to end.

Run: ``.venv/bin/python bench/endpoint_micro.py [--number N]``.  One transaction is
``receive`` (parse, RFC 3581 Via stamp, matching, NIST) → ``next_event``
(``RequestReceived``) → ``make_response`` + ``respond`` (serialise, Timer J) →
``datagrams_to_send``; the REGISTERs differ in branch and Call-ID, as on the wire, and
time advances 1/3000 s per REGISTER.  The registrar's budget: 3000 REGISTER/s with two
transactions each (401 then 200) on one core shared with other work, so the whole SIP
path should stay under ~100 µs per transaction.

Also printed: a retransmission answered from the transaction, and the memory a
completed NIST costs while it waits out Timer J (32 s on UDP: ~100 000 of them at
3000 REGISTER/s).
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
import tracemalloc
from collections.abc import Callable

from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.events import Peer, RequestReceived
from dialtone.sip.message import Request, Response, make_response, parse_message

PEER = Peer("udp", "192.0.2.10", 5072)


def register(i: int) -> bytes:
    """A REGISTER as a phone sends it (baresip-like headers), unique per ``i``."""
    return (
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5072;branch=z9hG4bK{i:016x};rport\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:alice@127.0.0.1>\r\n"
        f"From: <sip:alice@127.0.0.1>;tag={i:08x}\r\n"
        f"Call-ID: {i:024x}@192.0.2.10\r\n"
        "CSeq: 2 REGISTER\r\n"
        "Contact: <sip:alice@192.0.2.10:5072;transport=udp>;expires=3600\r\n"
        "User-Agent: baresip v1.0.0 (x86_64/Linux)\r\n"
        "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE\r\n"
        "Supported: replaces,norefersub,100rel\r\n"
        "Expires: 3600\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def run_once(endpoint: SipEndpoint, datagrams: list[bytes], start: float) -> float:
    """Handle every datagram end to end; return the CPU seconds it took."""
    now = start
    step = 1 / 3000
    receive, next_event = endpoint.receive, endpoint.next_event
    respond, drain = endpoint.respond, endpoint.datagrams_to_send
    t0 = time.process_time()
    for data in datagrams:
        receive(data, PEER, now)
        event = next_event()
        assert isinstance(event, RequestReceived) and event.transaction is not None
        respond(event.transaction, _answer(event.request))
        drain(now)
        now += step
    return time.process_time() - t0


def _answer(request: Request) -> Response:
    """What the registrar's answer costs the SIP layer: build it (it serialises later)."""
    response = make_response(request, 200, to_tag="a1b2c3d4")
    response.headers.add("Contact", "<sip:alice@192.0.2.10:5072>;expires=3600")
    return response


def _parse_and_answer(datagrams: list[bytes]) -> float:
    """The message layer's share: parse, read To, build and serialise the response."""
    t0 = time.process_time()
    for data in datagrams:
        request = parse_message(data)
        assert isinstance(request, Request)
        request.to  # noqa: B018  # the endpoint checks it, the registrar reads it
        response = _answer(request)
        response.headers.add("Server", "dialtone")
        response.to_bytes()
    return time.process_time() - t0


def _best(func: Callable[[], float], rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        best = min(best, func())
    return best


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20_000)
    number = parser.parse_args().number
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    print(f"best of 7 rounds of {number} REGISTERs, CPU time per transaction")
    rounds = iter(range(10**6))

    def one_round() -> float:
        base = next(rounds) * number
        endpoint = SipEndpoint(local_host="127.0.0.1", local_port=5060)
        return run_once(endpoint, [register(base + i) for i in range(number)], 1000.0)

    total = _best(one_round) / number * 1e6
    datagrams = [register(i) for i in range(number)]
    message = _best(lambda: _parse_and_answer(datagrams)) / number * 1e6
    print(f"{'REGISTER transaction, receive → respond → send':<50} {total:7.1f} µs")
    print(f"{'  message layer alone (parse, To, build, bytes)':<50} {message:7.1f} µs")
    print(f"{'  the rest: endpoint, transactions, Via stamp, GC':<50} {total - message:7.1f} µs")

    # A retransmission: matched to the completed NIST, answered with the kept bytes.
    endpoint = SipEndpoint(local_host="127.0.0.1", local_port=5060)
    data = register(0)
    run_once(endpoint, [data], 1000.0)

    def retransmissions() -> float:
        t0 = time.process_time()
        for _ in range(number):
            endpoint.receive(data, PEER, 1001.0)
            endpoint.datagrams_to_send(1001.0)
        return time.process_time() - t0

    per = _best(retransmissions) / number * 1e6
    print(f"{'retransmitted REGISTER answered from the NIST':<50} {per:7.1f} µs")

    # Memory of the NISTs waiting on Timer J (everything the endpoint still holds).
    endpoint = SipEndpoint(local_host="127.0.0.1", local_port=5060)
    datagrams = [register(10**9 + i) for i in range(number)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run_once(endpoint, datagrams, 1000.0)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(
        f"{'memory per completed NIST (Timer J pending)':<50} {held / number:7.0f} B"
        f"  ({endpoint.transaction_count()} transactions, {endpoint.timer_count()} timers)"
    )
    endpoint.handle_timer(1000.0 + 64)
    assert endpoint.transaction_count() == 0 and endpoint.timer_count() == 0


if __name__ == "__main__":
    main()
