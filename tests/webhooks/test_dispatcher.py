"""CB-7, CB-10..CB-13: status-callback lanes.

Ordering, numbering, retries (Ex. C-3), bounds and shutdown run on a fake clock over
``httpx.MockTransport``; independence of lanes from a slow server runs on the real loop
against the recording app on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest

from dialtone.testing.webhook_app import (
    FakeSleeper,
    Route,
    RunningWebhookApp,
    WebhookApp,
    serve_in_thread,
)
from dialtone.webhooks.client import CallbackOutcome, WebhookClient, WebhookError
from dialtone.webhooks.dispatcher import CallbackDispatcher
from dialtone.webhooks.params import CallInfo, status_callback_params

TOKEN = "0123456789abcdef0123456789abcdef"
WHEN = datetime(2025, 11, 4, 10, 0, 4, tzinfo=UTC)
BOB = CallInfo(
    "CAb", "AC1", "+15557654321", "client:bob", "ringing", "outbound-dial", parent_call_sid="CAp"
)
CB = "http://app.test/cb"


class Server:
    """A MockTransport handler: answers each request with the next status (the last
    repeats), or hangs for ``hang`` fake seconds; records (time, form fields)."""

    def __init__(self, sleeper: FakeSleeper, *statuses: int, hang: float = 0.0) -> None:
        self.sleeper = sleeper
        self.statuses = list(statuses) or [200]
        self.hang = hang
        self.seen: list[tuple[float, dict[str, str], bytes]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        self.seen.append((self.sleeper.monotonic(), form, request.content))
        if self.hang:
            await self.sleeper.sleep(self.hang)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status)

    @property
    def numbers(self) -> list[int]:
        return [int(form["SequenceNumber"]) for _, form, _ in self.seen]


class Failures(list[tuple[int, int, int | None]]):
    """The on_failure hook: records (SequenceNumber, code, status)."""

    def __call__(self, error: WebhookError, sequence_number: int) -> None:
        self.append((sequence_number, error.code, error.status))


@pytest.fixture
def sleeper() -> FakeSleeper:
    return FakeSleeper()


@contextlib.asynccontextmanager
async def lanes(
    sleeper: FakeSleeper, server: Server, **kw: int
) -> AsyncIterator[tuple[CallbackDispatcher, Failures]]:
    failures = Failures()
    async with WebhookClient(sleeper=sleeper, transport=httpx.MockTransport(server)) as client:
        dispatcher = CallbackDispatcher(client, on_failure=failures, sleeper=sleeper, **kw)
        try:
            yield dispatcher, failures
        finally:
            await sleeper.run(dispatcher.drain(0))


def fire(dispatcher: CallbackDispatcher, status: str, url: str = CB, call: CallInfo = BOB) -> int:
    params = status_callback_params(call, status=status)
    return dispatcher.fire(call.call_sid, url, "POST", params, auth_token=TOKEN, timestamp=WHEN)


async def test_example_c3_503_then_200(sleeper: FakeSleeper) -> None:
    server = Server(sleeper, 200, 503, 200)
    async with lanes(sleeper, server) as (dispatcher, failures):
        start = sleeper.monotonic()
        assert [fire(dispatcher, s) for s in ("initiated", "ringing", "in-progress")] == [0, 1, 2]
        assert await sleeper.run(dispatcher.drain(60))
    times = [t - start for t, _, _ in server.seen]
    assert server.numbers == [0, 1, 1, 2]
    assert server.seen[1][2] == server.seen[2][2]  # identical bodies: same number and Timestamp
    assert times == [0, 0, 1, 1]  # 2 is sent only once the retry of 1 got its 200
    assert failures == []


async def test_example_c3_three_503s_record_15003_once(sleeper: FakeSleeper) -> None:
    server = Server(sleeper, 200, 503, 503, 503, 200)
    async with lanes(sleeper, server) as (dispatcher, failures):
        start = sleeper.monotonic()
        for status in ("initiated", "ringing", "in-progress"):
            fire(dispatcher, status)
        assert await sleeper.run(dispatcher.drain(60))
    assert server.numbers == [0, 1, 1, 1, 2]
    assert [t - start for t, _, _ in server.seen] == [0, 0, 1, 3, 3]
    assert failures == [(1, 11200, 503)]


async def test_cb7_numbers_without_gaps_across_failures(sleeper: FakeSleeper) -> None:
    server = Server(sleeper, 404)  # 4xx: not retried, every callback fails
    async with lanes(sleeper, server) as (dispatcher, failures):
        numbers = [fire(dispatcher, "ringing") for _ in range(4)]
        numbers.append(fire(dispatcher, "completed", url=CB + "#rc=0"))  # same lane (CB-10)
        assert fire(dispatcher, "ringing", url="http://app.test/other") == 0
        assert await sleeper.run(dispatcher.drain(60))
    assert numbers == [0, 1, 2, 3, 4]
    assert sorted(n for n, _, _ in failures) == [0, 0, 1, 2, 3, 4]


async def test_cb7_lanes_are_per_call_and_url(sleeper: FakeSleeper) -> None:
    alice = CallInfo("CAa", "AC1", "+1555", "client:alice", "ringing", "outbound-dial")
    async with lanes(sleeper, Server(sleeper)) as (dispatcher, _):
        assert fire(dispatcher, "initiated") == 0
        assert fire(dispatcher, "initiated", call=alice) == 0
        assert fire(dispatcher, "ringing") == 1
        assert dispatcher.lane_count() == 2
        assert await sleeper.run(dispatcher.drain(60))
        assert dispatcher.lane_count() == 0  # drained lanes vanish
        assert fire(dispatcher, "in-progress") == 2  # the numbering goes on


async def test_cb7_sequence_and_timestamp_set_at_fire_time(sleeper: FakeSleeper) -> None:
    server = Server(sleeper)
    async with lanes(sleeper, server) as (dispatcher, _):
        params = [("SequenceNumber", "99"), ("Timestamp", "x"), ("CallSid", "CAb")]
        dispatcher.fire("CAb", CB, "post", params, auth_token=TOKEN, timestamp=WHEN)
        await sleeper.advance(100)  # sent later; the Timestamp is still the event's
        assert await sleeper.run(dispatcher.drain(60))
    ((_, form, body),) = server.seen
    assert form == {
        "CallSid": "CAb",
        "SequenceNumber": "0",
        "Timestamp": "Tue, 04 Nov 2025 10:00:04 +0000",
    }
    assert body.startswith(b"CallSid=CAb&SequenceNumber=0&Timestamp=")


async def test_last_forgets_the_lane_counter(sleeper: FakeSleeper) -> None:
    async with lanes(sleeper, Server(sleeper)) as (dispatcher, _):
        params = status_callback_params(BOB, status="completed")
        assert (
            dispatcher.fire("CAb", CB, "POST", params, auth_token=TOKEN, timestamp=WHEN, last=True)
            == 0
        )
        assert dispatcher.fire("CAb", CB, "POST", params, auth_token=TOKEN, timestamp=WHEN) == 0


async def test_cb11_fire_sends_nothing_before_returning(sleeper: FakeSleeper) -> None:
    server = Server(sleeper, hang=10)
    async with lanes(sleeper, server) as (dispatcher, _):
        fire(dispatcher, "initiated")
        fire(dispatcher, "ringing")
        assert server.seen == [] and dispatcher.pending_count() == 2
        await sleeper.settle()
        assert server.numbers == [0]  # one at a time: 1 waits behind 0 (CB-10)
        await sleeper.advance(9.5)
        assert server.numbers == [0]
        await sleeper.advance(0.5)
        assert server.numbers == [0, 1]
        assert await sleeper.run(dispatcher.drain(60))


async def test_cb10_slow_lane_does_not_hold_others(sleeper: FakeSleeper) -> None:
    server = Server(sleeper)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            await sleeper.sleep(10)
        return await server(request)

    failures = Failures()
    async with WebhookClient(sleeper=sleeper, transport=httpx.MockTransport(handler)) as client:
        dispatcher = CallbackDispatcher(client, on_failure=failures, sleeper=sleeper)
        start = sleeper.monotonic()
        fire(dispatcher, "initiated", url="http://app.test/slow")
        fire(dispatcher, "initiated", url="http://app.test/fast")
        fire(dispatcher, "ringing", url="http://app.test/fast")
        await sleeper.settle()
        assert [n for _, n in sorted((t, f["SequenceNumber"]) for t, f, _ in server.seen)] == [
            "0",
            "1",
        ]
        assert all(t == start for t, _, _ in server.seen)  # the fast lane is done at once
        assert dispatcher.lane_count() == 1
        assert await sleeper.run(dispatcher.drain(60))
    assert len(server.seen) == 3 and failures == []


async def test_cb13_drain_cuts_off_after_grace_and_reports(sleeper: FakeSleeper) -> None:
    server = Server(sleeper, hang=1000)
    async with lanes(sleeper, server) as (dispatcher, failures):
        start = sleeper.monotonic()
        fire(dispatcher, "ringing")
        fire(dispatcher, "completed")
        assert not await sleeper.run(dispatcher.drain(10))
        assert sleeper.monotonic() - start == 10
        assert dispatcher.lane_count() == 0 and dispatcher.pending_count() == 0
    assert [(n, code) for n, code, _ in failures] == [(0, 15003), (1, 15003)]


async def test_drain_waits_for_callbacks_fired_while_draining(sleeper: FakeSleeper) -> None:
    server = Server(sleeper, hang=2)
    async with lanes(sleeper, server) as (dispatcher, failures):
        fire(dispatcher, "ringing")
        drain = asyncio.ensure_future(dispatcher.drain(10))
        await sleeper.advance(1)
        fire(dispatcher, "completed", url="http://app.test/other")
        assert await sleeper.run(drain)
    assert len(server.seen) == 2 and failures == []


async def test_bounded_lane_drops_the_oldest_waiting(sleeper: FakeSleeper) -> None:
    server = Server(sleeper, hang=5)
    async with lanes(sleeper, server, max_queued=2) as (dispatcher, failures):
        numbers = [fire(dispatcher, "ringing")]
        await sleeper.settle()  # 0 is in flight; 1..4 wait behind it
        numbers += [fire(dispatcher, "ringing") for _ in range(4)]
        assert numbers == [0, 1, 2, 3, 4]
        assert [(n, code) for n, code, _ in failures] == [(1, 15003), (2, 15003)]
        assert await sleeper.run(dispatcher.drain(60))
    assert server.numbers == [0, 3, 4]  # still in order; 1 and 2 used their numbers


async def test_a_failing_sender_or_hook_does_not_stop_the_lane(sleeper: FakeSleeper) -> None:
    calls: list[int] = []

    class Flaky:
        async def post_callback(
            self, url: str, method: str, params: object, *, auth_token: str
        ) -> CallbackOutcome:
            calls.append(len(calls))
            if len(calls) == 1:
                raise RuntimeError("bug")
            error = WebhookError(11200, "HTTP status 500", url, method, [], 500)
            return CallbackOutcome(False, 500, 1, error)

    def hook(error: WebhookError, number: int) -> None:
        raise RuntimeError("hook bug")

    dispatcher = CallbackDispatcher(Flaky(), on_failure=hook, sleeper=sleeper)
    fire(dispatcher, "ringing")
    fire(dispatcher, "completed")
    assert await sleeper.run(dispatcher.drain(60))
    assert calls == [0, 1]


# --- on the real loop, against the recording app -------------------------------------------


@pytest.fixture(scope="module")
def running() -> Iterator[RunningWebhookApp]:
    with serve_in_thread(WebhookApp(auth_token=TOKEN)) as running:
        yield running


@pytest.fixture
def app(running: RunningWebhookApp) -> WebhookApp:
    running.app.reset()
    return running.app


async def test_real_slow_server_never_delays_fire_or_other_lanes(
    running: RunningWebhookApp, app: WebhookApp
) -> None:
    app.route("/slow", Route(200, delay=0.5))
    app.route("/fast", Route(200))
    async with WebhookClient() as client:
        dispatcher = CallbackDispatcher(client)
        start = time.monotonic()
        fire(dispatcher, "initiated", url=running.url("/slow"))
        fire(dispatcher, "ringing", url=running.url("/slow"))
        for status in ("initiated", "ringing", "in-progress"):
            fire(dispatcher, status, url=running.url("/fast"))
        assert time.monotonic() - start < 0.05  # fire never waits for the network
        fast = await app.wait_for(3, path="/fast", within=5)
        assert await dispatcher.drain(5)
    slow = app.requests_to("/slow")
    assert [r.params["SequenceNumber"] for r in slow] == ["0", "1"]
    assert [r.params["SequenceNumber"] for r in fast] == ["0", "1", "2"]
    first_answer = slow[0].responded
    assert first_answer is not None
    # the whole fast lane went through while the slow lane waited on its first answer
    assert all(r.responded is not None and r.responded < first_answer for r in fast)
    assert slow[1].arrived >= first_answer - 0.01  # and the slow lane kept its order
    assert all(r.signature_valid for r in app.requests)


async def test_real_lane_order_and_parallel_lanes(
    running: RunningWebhookApp, app: WebhookApp
) -> None:
    for leg in "abc":
        app.route(f"/{leg}", Route(200, delay=0.1))
    async with WebhookClient() as client:
        dispatcher = CallbackDispatcher(client)
        for leg in "abc":
            for status in ("initiated", "ringing", "in-progress", "completed"):
                fire(dispatcher, status, url=running.url(f"/{leg}"))
        start = time.monotonic()
        assert dispatcher.lane_count() == 3
        assert await dispatcher.drain(5)
        took = time.monotonic() - start
    assert took < 0.8  # 3 lanes x 4 callbacks x 0.1 s would be 1.2 s in series
    for leg in "abc":
        seen = app.requests_to(f"/{leg}")
        assert [r.params["SequenceNumber"] for r in seen] == ["0", "1", "2", "3"]
        for earlier, later in itertools.pairwise(seen):
            assert earlier.responded is not None and later.arrived >= earlier.responded - 0.01
    firsts = [app.requests_to(f"/{leg}")[0].arrived for leg in "abc"]
    assert max(firsts) - min(firsts) < 0.15


async def test_a_callback_waits_for_its_call_row(sleeper: FakeSleeper) -> None:
    """An app acting on ``initiated`` (POST /Calls/{Sid}) must find the call: the request
    goes out only once the row it names is written (``ready``)."""
    server = Server(sleeper)
    written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    async with lanes(sleeper, server) as (dispatcher, _):
        params = status_callback_params(BOB, status="initiated")
        dispatcher.fire(
            BOB.call_sid, CB, "POST", params, auth_token=TOKEN, timestamp=WHEN, ready=written
        )
        fire(dispatcher, "ringing")  # the same lane: behind it, in order
        for _ in range(5):
            await asyncio.sleep(0)
        assert server.seen == [] and dispatcher.pending_count() == 2
        written.set_result(True)
        assert await sleeper.run(dispatcher.drain(60))
    assert server.numbers == [0, 1]
