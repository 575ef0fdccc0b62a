"""RFC 4475 invalid messages reach the endpoint: each is answered with its status or dropped.

The parser-level table lives in ``test_torture.py``; here the same fixtures go through
``SipEndpoint.receive`` (what a datagram from the network meets) and the test checks what
goes back on the wire, and that the next valid request is still served.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.events import Peer, RequestReceived
from dialtone.sip.message import Response, make_response, parse_message
from tests.sip.test_torture import INVALID

FIXTURES = Path(__file__).parent / "torture" / "invalid"
PEER = Peer("udp", "127.0.0.1", 5072)
NO_USABLE_VIA = {"badinv01.sip"}  # Via ";;,;,,": nowhere to send an answer (SIP-2: drop)
PASSED_UP = {"baddate.sip", "escruri.sip", "regbadct.sip"}
OPTIONS = (
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKok1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ok1\r\n"
    b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_message_is_answered_or_dropped_and_the_next_is_served(name: str) -> None:
    endpoint = SipEndpoint(local_host="127.0.0.1", local_port=5060)
    endpoint.receive((FIXTURES / name).read_bytes(), PEER, now=1.0)
    # The answer copies the request's (possibly broken) headers: read its status line only.
    statuses = [int(out.data.split(b" ", 2)[1]) for out in endpoint.datagrams_to_send(1.0)]
    finals = [s for s in statuses if s >= 200]
    expected = INVALID[name]
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    if expected is None or name in NO_USABLE_VIA:
        assert finals == [] and not events, (name, statuses)
    elif finals:
        assert finals == [expected], (name, statuses)
    else:
        # Found only by an accessor the endpoint does not read (Request-URI headers, Date):
        # the request goes up to the application, which answers it (see test_sipapp).
        assert name in PASSED_UP and events, f"{name}: neither answered nor passed up"
    endpoint.receive(OPTIONS, PEER, now=2.0)
    event = endpoint.next_event()
    while event is not None and not isinstance(event, RequestReceived):
        event = endpoint.next_event()
    assert isinstance(event, RequestReceived) and event.transaction is not None
    endpoint.respond(event.transaction, make_response(event.request, 200, to_tag="t"), 2.0)
    answers = [parse_message(out.data) for out in endpoint.datagrams_to_send(2.0)]
    assert [a.status for a in answers if isinstance(a, Response)] == [200]
