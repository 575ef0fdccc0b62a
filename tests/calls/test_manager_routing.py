"""CallManager while an INVITE is still being routed (its storage lookups are pending).

The caller may CANCEL, the server may begin to shut down, or storage may fail before the
route is known: each gets exactly one final response and leaves no call, dialog or task.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dialtone.calls.manager import OVERLOAD_BACKLOG, CallManager
from dialtone.calls.routing import NumberRecord
from dialtone.calls.services import CallServices
from dialtone.registrar.auth import Authenticator
from dialtone.sip.events import CancelReceived, Peer
from dialtone.sip.message import Request, Response, parse_message

PEER = Peer("udp", "127.0.0.1", 5072)
INVITE_TX = "s-invite"


class GatedDirectory:
    """Lookups wait for ``gate``; ``failure`` makes them raise."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.failure: Exception | None = None
        self.lookups = 0

    async def number(self, account_sid: str, candidates: list[str]) -> NumberRecord | None:
        self.lookups += 1
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return None

    async def client(self, account_sid: str, login: str) -> Any:
        self.lookups += 1
        await self.gate.wait()
        return None


class NoMedia:
    """The media engine: routing in these tests never gets as far as opening a port."""

    def __init__(self) -> None:
        self.opened = 0

    def open(self) -> Any:
        self.opened += 1
        raise AssertionError("no media port should be opened")


class Recorder:
    def __init__(self) -> None:
        self.responses: list[tuple[str, Response]] = []
        self.notifications: list[dict[str, Any]] = []
        self.pending = 0

    def backlog(self) -> int:
        return self.pending

    def respond(self, transaction: str, response: Response) -> None:
        self.responses.append((transaction, response))

    def notify(self, *args: Any, **kwargs: Any) -> str:
        self.notifications.append(kwargs)
        return "NO" + "0" * 32


def make_manager() -> tuple[CallManager, GatedDirectory, Recorder, NoMedia]:
    recorder, directory, media = Recorder(), GatedDirectory(), NoMedia()
    loop = asyncio.get_running_loop()
    services = CallServices(
        account_sid="AC" + "a" * 32,
        auth_token="0" * 32,
        public_url="http://127.0.0.1:8080",
        records=recorder,  # type: ignore[arg-type]
        webhooks=None,  # type: ignore[arg-type]
        callbacks=None,  # type: ignore[arg-type]
        speech=None,  # type: ignore[arg-type]
        audio=None,  # type: ignore[arg-type]
        respond=recorder.respond,
        send_request=lambda request, peer: "c1",
        loop_time=loop.time,
        utcnow=lambda: None,  # type: ignore[arg-type,return-value]
        dialog_changed=lambda: None,
        forget=lambda call: None,
    )
    manager = CallManager(
        services,
        auth=Authenticator("127.0.0.1"),
        directory=directory,
        media=media,  # type: ignore[arg-type]
        domain="127.0.0.1",
        local_hosts={"127.0.0.1"},
        contact=lambda transport: "sip:dialtone@127.0.0.1:5060",
    )
    return manager, directory, recorder, media


def invite() -> Request:
    text = (
        "INVITE sip:+15550001111@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKroute1\r\n"
        "From: <sip:caller@10.0.0.9>;tag=f1\r\nTo: <sip:+15550001111@127.0.0.1>\r\n"
        "Call-ID: routing-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        "Contact: <sip:caller@127.0.0.1:5072>\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def cancel_of(request: Request) -> CancelReceived:
    text = (
        "CANCEL sip:+15550001111@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKroute1\r\n"
        "From: <sip:caller@10.0.0.9>;tag=f1\r\nTo: <sip:+15550001111@127.0.0.1>\r\n"
        "Call-ID: routing-1\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return CancelReceived(message, PEER, INVITE_TX)


async def settle(manager: CallManager) -> None:
    """Let the routing task run to its end."""
    for _ in range(20):
        await asyncio.sleep(0)
    assert not manager._tasks, "the routing task is still running"


def statuses(recorder: Recorder) -> list[int]:
    return [response.status for _, response in recorder.responses]


def assert_nothing_left(manager: CallManager, media: NoMedia) -> None:
    assert manager.count() == 0 and manager.dialogs.count() == 0
    assert not manager._routing and media.opened == 0


async def test_cancel_while_routing_is_answered_487_once_and_leaves_no_call() -> None:
    manager, directory, recorder, media = make_manager()
    request = invite()
    manager.invite(request, PEER, INVITE_TX)
    await asyncio.sleep(0)
    assert directory.lookups == 1 and statuses(recorder) == []
    manager.cancel(cancel_of(request))
    assert statuses(recorder) == [487]
    manager.cancel(cancel_of(request))  # a retransmitted CANCEL: still one 487
    directory.gate.set()
    await settle(manager)
    assert statuses(recorder) == [487]  # no 180, no 404 after the 487
    assert recorder.responses[0][1].headers.get("CSeq") == "1 INVITE"
    assert_nothing_left(manager, media)


async def test_without_cancel_the_route_is_decided_negative_control() -> None:
    manager, directory, recorder, media = make_manager()
    manager.invite(invite(), PEER, INVITE_TX)
    directory.gate.set()
    await settle(manager)
    assert statuses(recorder) == [404]  # no number, no Client: RTE-2's last step
    assert_nothing_left(manager, media)


async def test_cancel_after_the_final_response_changes_nothing() -> None:
    manager, directory, recorder, media = make_manager()
    request = invite()
    manager.invite(request, PEER, INVITE_TX)
    directory.gate.set()
    await settle(manager)
    manager.cancel(cancel_of(request))
    assert statuses(recorder) == [404]
    assert_nothing_left(manager, media)


async def test_shutdown_while_routing_answers_503_and_starts_no_call() -> None:
    manager, directory, recorder, media = make_manager()
    manager.invite(invite(), PEER, INVITE_TX)
    await asyncio.sleep(0)
    shutdown = asyncio.create_task(manager.shutdown(grace=5.0))
    await asyncio.sleep(0)
    directory.gate.set()
    await shutdown
    assert [(r.status, r.reason) for _, r in recorder.responses] == [(503, "Shutting Down")]
    assert_nothing_left(manager, media)


@pytest.mark.parametrize("cancelled", [False, True])
async def test_storage_failure_while_routing_answers_500_once(cancelled: bool) -> None:
    manager, directory, recorder, media = make_manager()
    directory.failure = RuntimeError("database is gone")
    request = invite()
    manager.invite(request, PEER, INVITE_TX)
    await asyncio.sleep(0)
    if cancelled:
        manager.cancel(cancel_of(request))
    directory.gate.set()
    await settle(manager)
    assert statuses(recorder) == ([487] if cancelled else [500])
    assert_nothing_left(manager, media)


async def test_an_overloaded_records_writer_turns_new_calls_away_with_503() -> None:
    manager, directory, recorder, media = make_manager()
    recorder.pending = OVERLOAD_BACKLOG
    manager.invite(invite(), PEER, INVITE_TX)
    refused = recorder.responses[0][1]
    assert (refused.status, refused.reason) == (503, "Overloaded")
    assert refused.headers.get("Retry-After") == "5"
    assert directory.lookups == 0 and manager.overload_refusals == 1
    recorder.pending = OVERLOAD_BACKLOG - 1  # negative control: just below, it routes
    manager.invite(invite(), PEER, "s-second")
    await asyncio.sleep(0)
    assert directory.lookups == 1
    directory.gate.set()
    await settle(manager)
    assert_nothing_left(manager, media)
