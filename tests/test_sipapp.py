"""The SIP transaction user's own answers (SIP-2, SIP-3) with a recording endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialtone.registrar.auth import Authenticator
from dialtone.registrar.keepalive import KeepAlive
from dialtone.registrar.location import Location
from dialtone.registrar.service import Registrar
from dialtone.sip.events import Peer, RequestReceived
from dialtone.sip.message import Request, Response, parse_message
from dialtone.sipapp import SipApplication

PEER = Peer("udp", "127.0.0.1", 5072)
TORTURE = Path(__file__).parent / "sip" / "torture"


class RecordingEndpoint:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.requests: list[tuple[Request, Peer]] = []
        self.via_host_port = ("127.0.0.1", 5060)

    def respond(self, transaction: str, response: Response) -> None:
        self.responses.append(response)

    def send_request(self, request: Request, peer: Peer) -> str:
        self.requests.append((request, peer))
        return f"c{len(self.requests)}"

    def new_branch(self) -> str:
        return "z9hG4bKtest"


def make_app(wall: list[float] | None = None) -> tuple[SipApplication, RecordingEndpoint]:
    clock = wall if wall is not None else [1e9]
    location = Location()
    registrar = Registrar(
        domain="127.0.0.1",
        local_hosts={"127.0.0.1"},
        auth=Authenticator("127.0.0.1"),
        location=location,
    )
    app = SipApplication(
        registrar=registrar,
        keepalive=KeepAlive(location),
        domain="127.0.0.1",
        mono=lambda: 100.0,
        wall=lambda: clock[0],
    )
    endpoint = RecordingEndpoint()
    app.attach(endpoint)
    return app, endpoint


def request(method: str, extra: str = "", ruri: str = "sip:127.0.0.1") -> Request:
    text = (
        f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK1\r\n"
        f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: c1\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def answer(app: SipApplication, endpoint: RecordingEndpoint, req: Request) -> Response:
    app.handle(RequestReceived(req, PEER, "s1"))
    (response,) = endpoint.responses[-1:]
    return response


@pytest.mark.parametrize(
    ("method", "extra", "ruri", "status", "header"),
    [
        (
            "OPTIONS",
            "",
            "sip:127.0.0.1",
            200,
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO"),
        ),
        ("FOOBAR", "", "sip:127.0.0.1", 501, ("Allow", None)),
        ("SUBSCRIBE", "", "sip:127.0.0.1", 405, ("Allow", None)),
        ("MESSAGE", "", "sip:127.0.0.1", 405, ("Allow", None)),
        ("BYE", "", "sip:127.0.0.1", 481, None),
        ("INFO", "", "sip:127.0.0.1", 481, None),
        ("OPTIONS", "Require: timer\r\n", "sip:127.0.0.1", 420, ("Unsupported", "timer")),
        ("OPTIONS", "", "tel:+15551234", 416, None),
    ],
)
def test_own_answers(
    method: str, extra: str, ruri: str, status: int, header: tuple[str, str | None] | None
) -> None:
    app, endpoint = make_app()
    response = answer(app, endpoint, request(method, extra, ruri))
    assert response.status == status
    assert response.to.tag, "a final response to a request without To tag gets one"
    assert response.headers.get("Server", "").startswith("dialtone/")
    if header is not None:
        name, value = header
        assert response.headers.get(name) is not None
        if value is not None:
            assert response.headers.get(name) == value
    if method == "OPTIONS" and status == 200:
        assert response.headers.get("Accept") == "application/sdp"


@pytest.mark.parametrize(("name", "status"), [("escruri.sip", 400), ("regbadct.sip", 400)])
def test_torture_messages_passed_up_are_answered(name: str, status: int) -> None:
    app, endpoint = make_app()
    message = parse_message((TORTURE / "invalid" / name).read_bytes())
    assert isinstance(message, Request)
    assert answer(app, endpoint, message).status == status


def test_keepalive_pings_go_to_the_binding_address() -> None:
    from dialtone.registrar.location import ContactUpdate, Source

    wall = [1e9]
    app, endpoint = make_app(wall)
    app.registrar.location.update(
        "CLa",
        [ContactUpdate("sip:a@10.9.9.9:5999", 3600)],
        "c",
        1,
        Source("udp", "127.0.0.1", 40000),
        now=1e9,
    )
    assert app.ping_due_bindings() == 0  # registered just now
    wall[0] += 60
    assert app.ping_due_bindings() == 1
    ((ping, peer),) = endpoint.requests
    assert ping.method == "OPTIONS" and ping.uri == "sip:a@10.9.9.9:5999"
    assert (peer.host, peer.port) == ("127.0.0.1", 40000)  # where it registered from (REG-4)
