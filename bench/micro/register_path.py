"""Micro-benchmark: one authenticated registration through the whole in-process SIP path.

endpoint.receive → SipApplication → Registrar (digest, location) → endpoint.respond →
datagrams_to_send, twice per registration (401 challenge, then 200). No sockets: this is
the CPU floor the UDP benchmark (bench/register) sits on.

    .venv/bin/python -m bench.micro.register_path [--server-only] [--stages] [--profile]
        [--registrations N] [--runs R]

Modes:

* default ("total"): as SIPp would do it, the client side runs in the timed loop —
  building both REGISTERs, parsing the 401, computing the digest.
* ``--server-only``: every client-side byte is built before the clock starts.  The
  second REGISTER needs the nonce of the 401; the server's nonce manager is given a
  fixed secret and counter start, so a twin manager predicts every nonce (the nonce
  depends only on secret, counter, issue time and realm).  After the run each 401 is
  checked to carry the predicted nonce and each answer to be a 200, so the figure is
  exactly the server's work on the same messages as the total mode.
* ``--stages``: server-only, with the hot functions wrapped by a timer that charges
  each its *exclusive* time (callees excluded), so the rows add up to the whole.  The
  wrappers cost ~0.3 µs per call, charged to their caller's row; use the plain
  server-only figure for the total.

``--runs`` repeats on a fresh server and prints best/median/worst (the machine is
shared: the best run is the least disturbed one).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import pstats
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dialtone.registrar.auth import Authenticator, Credentials
from dialtone.registrar.keepalive import KeepAlive
from dialtone.registrar.location import Location
from dialtone.registrar.service import Registrar
from dialtone.sip.digest import (
    build_authorization,
    build_challenge,
    compute_ha1,
    parse_challenges,
)
from dialtone.sip.endpoint import SipEndpoint
from dialtone.sip.events import Peer
from dialtone.sip.message import Response, parse_message
from dialtone.sip.nonce import NonceManager
from dialtone.sipapp import SipApplication

REALM = "127.0.0.1"
STEP = 0.0002  # seconds of the fake clock per registration
SECRET = b"register-path-benchmark-secret!!"


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


def _user(i: int, users: int) -> str:
    return f"u{i % users:04d}"


def build_server(users: int) -> Driver:
    """A fresh registrar with ``users`` Clients (password "pw") and predictable nonces."""
    auth = Authenticator(REALM)
    auth.nonces = NonceManager(SECRET, lifetime=auth.nonces.lifetime, counter_start=0)
    for i in range(users):
        login = _user(i, users)
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
    return driver


def _firsts(n: int, users: int) -> list[tuple[bytes, Peer, int]]:
    # Pre-built first REGISTERs, as SIPp would send them (both modes).
    return [
        (
            register(_user(i, users), 6000 + i % 1000, 1, f"c{i}", None),
            Peer("udp", "127.0.0.1", 6000 + i % 1000),
            i,
        )
        for i in range(n)
    ]


def run_total(n: int, users: int, profiler: cProfile.Profile | None) -> float:
    """The loop of the original benchmark: client work inside the clock."""
    driver = build_server(users)
    firsts = _firsts(n, users)
    gc.collect()
    started = time.process_time()
    if profiler:
        profiler.enable()
    ok = 0
    for data, peer, i in firsts:
        driver.now += STEP
        (challenge_bytes,) = driver.feed(data, peer)
        challenge = parse_message(challenge_bytes)
        assert isinstance(challenge, Response) and challenge.status == 401
        params = parse_challenges(challenge.headers.get("WWW-Authenticate") or "")[0]
        user = _user(i, users)
        value = build_authorization(
            params, "REGISTER", f"sip:{REALM}:5060", user, "pw", cnonce="abc", nc=1
        )
        (answer,) = driver.feed(register(user, peer.port, 2, f"c{i}", value), peer)
        ok += answer.startswith(b"SIP/2.0 200")
    if profiler:
        profiler.disable()
    elapsed = time.process_time() - started
    assert ok == n, f"{ok}/{n} registrations succeeded"
    return elapsed / n


@dataclass
class Prepared:
    firsts: list[tuple[bytes, Peer, int]]
    seconds: list[bytes]
    nonces: list[str]


def prepare(n: int, users: int) -> Prepared:
    """Every client-side message of ``n`` registrations, nonces predicted."""
    firsts = _firsts(n, users)
    twin = NonceManager(SECRET, counter_start=0)
    now = 0.0
    seconds, nonces = [], []
    for _, peer, i in firsts:
        now += STEP  # the same float additions as the timed loop: the same issue times
        nonce = twin.issue(now, realm=REALM)
        params = parse_challenges(build_challenge(REALM, nonce, "MD5"))[0]
        user = _user(i, users)
        value = build_authorization(
            params, "REGISTER", f"sip:{REALM}:5060", user, "pw", cnonce="abc", nc=1
        )
        seconds.append(register(user, peer.port, 2, f"c{i}", value))
        nonces.append(nonce)
    return Prepared(firsts, seconds, nonces)


def run_server_only(
    n: int, users: int, profiler: cProfile.Profile | None, *, stages: Stages | None = None
) -> float:
    """Only the server's work inside the clock; results are checked afterwards."""
    prepared = prepare(n, users)
    driver = build_server(users)
    feed = driver.feed
    challenges: list[bytes] = []
    answers: list[bytes] = []
    keep_challenge, keep_answer = challenges.append, answers.append
    if stages:
        stages.install()
    gc.collect()
    started = time.process_time()
    if profiler:
        profiler.enable()
    for (data, peer, _), second in zip(prepared.firsts, prepared.seconds, strict=True):
        driver.now += STEP
        keep_challenge(feed(data, peer)[0])
        keep_answer(feed(second, peer)[0])
    if profiler:
        profiler.disable()
    elapsed = time.process_time() - started
    if stages:
        stages.uninstall()
    for challenge, nonce in zip(challenges, prepared.nonces, strict=True):
        assert challenge.startswith(b"SIP/2.0 401 ")
        assert f'nonce="{nonce}"'.encode() in challenge, "nonce prediction failed"
    ok = sum(answer.startswith(b"SIP/2.0 200 ") for answer in answers)
    assert ok == n, f"{ok}/{n} registrations succeeded"
    return elapsed / n


# ---------------------------------------------------------------------------- stages

# (module, attribute path, row label).  Module-level functions are wrapped in the module
# that *calls* them (where the name is looked up); methods on their class.  Entries that
# do not exist in this version of the code are skipped, so the list can name both the
# general functions and fast paths added later.
STAGE_TARGETS: list[tuple[str, str, str]] = [
    ("dialtone.sip.endpoint", "SipEndpoint.receive", "endpoint.receive (rest)"),
    ("dialtone.sip.endpoint", "parse_message", "parse_message"),
    ("dialtone.sip.endpoint", "SipEndpoint._on_request", "endpoint._on_request (rest)"),
    ("dialtone.sip.endpoint", "_stamp_via", "endpoint._stamp_via"),
    ("dialtone.sip.endpoint", "server_key", "transaction.server_key"),
    ("dialtone.sip.endpoint", "ServerTransaction.__init__", "ServerTransaction.__init__"),
    ("dialtone.sip.endpoint", "ServerTransaction.feed", "transaction.feed (rest)"),
    ("dialtone.sip.endpoint", "SipEndpoint.next_event", "endpoint.next_event"),
    ("dialtone.sipapp", "SipApplication.handle", "sipapp.handle (rest)"),
    ("dialtone.sipapp", "SipApplication._request", "sipapp._request (rest)"),
    ("dialtone.sip.message", "Request.ruri", "Request.ruri"),
    ("dialtone.sipapp", "_unsupported", "sipapp._unsupported (Require)"),
    ("dialtone.registrar.service", "Registrar.register", "registrar.register (rest)"),
    ("dialtone.sip.message", "Message.to", "Message.to (To parse)"),
    ("dialtone.sip.message", "Message.contacts", "Message.contacts"),
    ("dialtone.sip.message", "Message.expires", "Message.expires"),
    ("dialtone.sip.message", "Message.max_forwards", "Message.max_forwards"),
    ("dialtone.sip.message", "Message.top_via", "Message.top_via"),
    ("dialtone.registrar.service", "Authenticator.check", "auth.check (rest)"),
    ("dialtone.registrar.auth", "parse_digest", "digest.parse_digest"),
    ("dialtone.registrar.auth", "NonceManager.check", "nonce.check"),
    ("dialtone.registrar.auth", "NonceManager.accept_nc", "nonce.accept_nc"),
    ("dialtone.registrar.auth", "verify", "digest.verify"),
    ("dialtone.registrar.auth", "digest_uri_matches", "digest.digest_uri_matches"),
    ("dialtone.registrar.auth", "AuthThrottle.blocked", "throttle.blocked"),
    ("dialtone.registrar.service", "Authenticator.challenges", "auth.challenges (401)"),
    ("dialtone.registrar.service", "Location.update", "location.update"),
    ("dialtone.registrar.service", "Location.bindings", "location.bindings"),
    ("dialtone.registrar.service", "Registrar._ok", "registrar._ok (rest)"),
    ("dialtone.registrar.service", "Registrar._refuse", "registrar._refuse (rest)"),
    ("dialtone.registrar.service", "make_response", "make_response (registrar)"),
    ("dialtone.registrar.service", "_tag", "registrar._tag"),
    ("dialtone.sipapp", "SipApplication._respond", "sipapp._respond (Server header)"),
    ("dialtone.sip.endpoint", "SipEndpoint.respond", "endpoint.respond (rest)"),
    ("dialtone.sip.transaction", "Response.to_bytes", "Response.to_bytes"),
    ("dialtone.sip.endpoint", "SipEndpoint.datagrams_to_send", "endpoint.datagrams_to_send"),
]


class Stages:
    """Exclusive-time accounting of the functions in :data:`STAGE_TARGETS`."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[int] = [0]  # time spent in callees of each open frame
        self._undo: list[Callable[[], None]] = []

    def _wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        clock, stack, totals, calls = time.perf_counter_ns, self._stack, self.totals, self.calls
        totals.setdefault(label, 0)
        calls.setdefault(label, 0)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack.append(0)
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = clock() - start
                inner = stack.pop()
                totals[label] += spent - inner
                calls[label] += 1
                stack[-1] += spent

        return wrapper

    def install(self) -> None:
        for module_name, path, label in STAGE_TARGETS:
            module = importlib.import_module(module_name)
            owner_name, _, attr = path.rpartition(".")
            owner: Any = getattr(module, owner_name, None) if owner_name else module
            if owner is None:
                continue
            # Look the attribute up on the class itself (a property stays a property).
            raw = owner.__dict__.get(attr) if isinstance(owner, type) else None
            if isinstance(owner, type):
                holder = next((k for k in owner.__mro__ if attr in k.__dict__), None)
                if holder is None:
                    continue
                raw = holder.__dict__[attr]
            elif not hasattr(owner, attr):
                continue
            else:
                raw = getattr(owner, attr)
            if isinstance(raw, property):
                assert raw.fget is not None
                new: Any = property(self._wrap(raw.fget, label), raw.fset, raw.fdel)
            else:
                new = self._wrap(raw, label)
            self._patch(owner, attr, new)

    def _patch(self, owner: Any, attr: str, new: Any) -> None:
        if isinstance(owner, type) and attr not in owner.__dict__:
            setattr(owner, attr, new)
            self._undo.append(lambda: delattr(owner, attr))
        else:
            old = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
            setattr(owner, attr, new)
            self._undo.append(lambda: setattr(owner, attr, old))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()


def report_stages(runs: list[Stages], n: int) -> None:
    """Each stage's best (lowest) exclusive time over the runs, largest first."""
    labels = {label for stages in runs for label, calls in stages.calls.items() if calls}
    best = {label: min(stages.totals.get(label, 0) for stages in runs) for label in labels}
    calls = {label: runs[0].calls.get(label, 0) for label in labels}
    title = f"stage (exclusive, best of {len(runs)} runs)"
    print(f"{title:44} {'µs/reg':>8} {'calls/reg':>9}")
    for label, ns in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"{label:44} {ns / n / 1000:8.1f} {calls[label] / n:9.2f}")
    total = sum(best.values())
    print(f"{'sum (includes ~0.3 µs wrapper per call)':44} {total / n / 1000:8.1f}")


# ---------------------------------------------------------------------------- main


def _runs_summary(values: list[float]) -> str:
    us = sorted(v * 1e6 for v in values)
    if len(us) == 1:
        return f"{us[0]:.0f} µs"
    return f"best {us[0]:.0f} µs, median {statistics.median(us):.0f}, worst {us[-1]:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--registrations", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--server-only", action="store_true")
    parser.add_argument("--stages", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n, users = args.registrations, args.users
    profiler = cProfile.Profile() if args.profile else None
    if args.stages:
        runs = []
        for _ in range(args.runs):
            stages = Stages()
            run_server_only(n, users, None, stages=stages)
            runs.append(stages)
        report_stages(runs, n)
        return
    results = []
    for _ in range(args.runs):
        if args.server_only:
            results.append(run_server_only(n, users, profiler))
        else:
            results.append(run_total(n, users, profiler))
    what = "server only" if args.server_only else "total, with the client side"
    print(f"{n} registrations x {args.runs} run(s), CPU per registration ({what}):")
    print(f"  {_runs_summary(results)}")
    if not args.server_only:
        print("  (includes the client side: building both REGISTERs, parsing the 401, digest)")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
