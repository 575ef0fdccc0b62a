"""Micro-benchmark: one authenticated registration through the whole in-process SIP path.

endpoint.receive → SipApplication → Registrar (digest, location) → endpoint.respond →
datagrams_to_send, twice per registration (401 challenge, then 200). No sockets: this is
the CPU floor the UDP benchmark (bench/register) sits on.

    .venv/bin/python -m bench.micro.register_path [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import secrets
import time

from dialtone.registrar.auth import Authenticator, Credentials
from dialtone.registrar.keepalive import KeepAlive
from dialtone.registrar.location import Location
from dialtone.registrar.service import Registrar
from dialtone.sip.digest import build_authorization, compute_ha1, parse_challenges
from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.events import Peer
from dialtone.sip.message import Response, parse_message
from dialtone.sipapp import SipApplication

REALM = "127.0.0.1"


class Driver:
    """The driver's pump without sockets."""

    def __init__(self, endpoint: SipEndpoint, app: SipApplication) -> None:
        self.endpoint = endpoint
        self.app = app
        self.now = 0.0
        self.via_host_port = ("127.0.0.1", 5060)

    def respond(self, transaction: str, response: Response) -> None:
        self.endpoint.respond(transaction, response, self.now)

    def send_request(self, request, peer):  # type: ignore[no-untyped-def]
        return self.endpoint.send_request(request, peer, self.now)

    def new_branch(self) -> str:
        return self.endpoint.new_branch()

    def feed(self, data: bytes, peer: Peer) -> list[bytes]:
        self.endpoint.receive(data, peer, self.now)
        while (event := self.endpoint.next_event()) is not None:
            self.app.handle(event)
        return [o.data for o in self.endpoint.datagrams_to_send(self.now)]


def register(user: str, port: int, cseq: int, call_id: str, auth: str | None) -> bytes:
    lines = [
        f"REGISTER sip:{REALM}:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{REALM}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@{REALM}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@127.0.0.1:{port};transport=UDP>",
        "Expires: 3600",
        "User-Agent: bench",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--registrations", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    auth = Authenticator(REALM)
    for i in range(args.users):
        login = f"u{i:04d}"
        auth.put(
            Credentials(
                f"CL{i}",
                "AC",
                login,
                compute_ha1(login, REALM, "pw", "MD5"),
                compute_ha1(login, REALM, "pw", "SHA-256"),
                REALM,
            )
        )
    location = Location()
    registrar = Registrar(domain=REALM, local_hosts={REALM}, auth=auth, location=location)
    endpoint = SipEndpoint(local_host="127.0.0.1", local_port=5060)
    app = SipApplication(
        registrar=registrar,
        keepalive=KeepAlive(location),
        domain=REALM,
        mono=lambda: driver.now,
        wall=lambda: 1e9 + driver.now,
    )
    driver = Driver(endpoint, app)
    app.attach(driver)  # type: ignore[arg-type]
    # Pre-build the first REGISTERs (as SIPp would send them); the second needs the nonce.
    firsts = [
        (register(f"u{i % args.users:04d}", 6000 + i % 1000, 1, f"c{i}", None), i)
        for i in range(args.registrations)
    ]
    profiler = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    ok = 0
    for data, i in firsts:
        driver.now += 0.0002
        peer = Peer("udp", "127.0.0.1", 6000 + i % 1000)
        (challenge_bytes,) = driver.feed(data, peer)
        challenge = parse_message(challenge_bytes)
        assert isinstance(challenge, Response) and challenge.status == 401
        params = parse_challenges(challenge.headers.get("WWW-Authenticate") or "")[0]
        user = f"u{i % args.users:04d}"
        value = build_authorization(
            params, "REGISTER", f"sip:{REALM}:5060", user, "pw", cnonce="abc", nc=1
        )
        (answer,) = driver.feed(register(user, peer.port, 2, f"c{i}", value), peer)
        ok += answer.startswith(b"SIP/2.0 200")
    if profiler:
        profiler.disable()
    elapsed = time.process_time() - started
    per_registration = elapsed / args.registrations * 1e6
    print(f"{ok}/{args.registrations} registrations, {per_registration:.0f} µs CPU each")
    print("(includes the client side: building both REGISTERs, parsing the 401, digest)")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
