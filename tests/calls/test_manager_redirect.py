"""API-25 through the CallManager: which call a ``modify`` reaches during a `<Dial>`.

A real :class:`~dialtone.calls.manager.CallManager` on the fakes of ``dialfakes``: an
INVITE to a number whose voice URL dials alice and bob, responses fed as the SIP endpoint
would (``manager.response``), in-dialog requests through ``manager.in_dialog``.  Checked:
the parent's redirect ends the Dial; a ringing branch is refused (21220) and nothing
changes; a bridged branch becomes a call of the manager's own (``children``, counted, found
again by CallSid for Status and Url, its dialog's BYE routed to it, forgotten when it
ends); an ended one is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialtone.calls.control import CallControlError, ModifyRequest
from dialtone.calls.manager import CallManager
from dialtone.calls.routing import NumberRecord
from dialtone.rcml.nodes import Document
from dialtone.registrar.auth import Authenticator
from dialtone.sip.events import Peer, ResponseReceived
from dialtone.sip.message import Request, Response, parse_message
from dialtone.testing.fake_call import rcml
from tests.calls.dialfakes import ACCOUNT, CALLER, DOMAIN, DialTest, FakeMedia, Hold, sdp_answer

ALL = 'statusCallback="/cb" statusCallbackEvent="initiated ringing answered completed"'
CLIENTS = {"alice": ["sip:alice@10.0.0.11:5062"], "bob": ["sip:bob@10.0.0.12:5062"]}
CALLER_PEER = Peer("udp", "10.0.0.9", 5072)
NUMBER = "+15550001111"
ALICE, BOB = 0, 1


class Directory:
    async def number(self, account_sid: str, candidates: list[str]) -> NumberRecord | None:
        return NumberRecord(
            sid="PN" + "1" * 32,
            phone_number=NUMBER,
            voice_url="http://app.test/voice",
            voice_method="POST",
            voice_fallback_url=None,
            voice_fallback_method="POST",
            status_callback=None,
            status_callback_method="POST",
            api_version="2010-04-01",
        )

    async def client(self, account_sid: str, login: str) -> Any:
        return None


class Media:
    def __init__(self, h: DialTest) -> None:
        self.h = h

    def open(self) -> FakeMedia:
        media = self.h._open_media()
        assert isinstance(media, FakeMedia)
        return media


class ManagerTest(DialTest):
    """The CallManager on the DialTest fakes; ``sent`` holds (transaction, request, peer)
    of every request it sent, ``responses`` what it answered the caller."""

    def __init__(self) -> None:
        super().__init__(clients=CLIENTS)
        self.sent: list[tuple[str, Request, Peer]] = []
        self.responses: list[int] = []
        self.cancelled: list[str] = []
        self.services.respond = lambda transaction, response: self.responses.append(response.status)
        self.services.send_request = self._send
        self.services.send_stateless = lambda request, peer: self.sent.append(("-", request, peer))
        self.services.cancel = self.cancelled.append
        self.manager = CallManager(
            self.services,
            auth=Authenticator(DOMAIN),
            directory=Directory(),
            media=Media(self),  # type: ignore[arg-type]
            domain=DOMAIN,
            local_hosts={"10.0.0.1"},
            contact=lambda transport: "sip:dialtone@10.0.0.1:5060",
            dial=self.settings,
        )

    def _send(self, request: Request, peer: Peer) -> str:
        transaction = f"c{len(self.sent)}"
        self.sent.append((transaction, request, peer))
        return transaction

    def methods(self, peer_host: str) -> list[str]:
        return [r.method for _, r, p in self.sent if p.host == peer_host]

    async def call_in(self, rcml: str) -> str:
        self.webhooks.documents["http://app.test/voice"] = rcml
        offer = sdp_answer("10.0.0.9", 41000).decode()
        text = (
            f"INVITE sip:{NUMBER}@10.0.0.1 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 10.0.0.9:5072;branch=z9hG4bKcaller1\r\n"
            f"From: <sip:{CALLER}@10.0.0.9>;tag=c1\r\nTo: <sip:{NUMBER}@10.0.0.1>\r\n"
            "Call-ID: caller-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            "Contact: <sip:caller@10.0.0.9:5072>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(offer)}\r\n\r\n{offer}"
        )
        invite = parse_message(text.encode())
        assert isinstance(invite, Request)
        self.manager.invite(invite, CALLER_PEER, "s-invite")
        await self.settle()
        (sid,) = self.manager.calls
        run = self.manager.calls[sid]._dial.run
        assert run is not None
        self.dial = run
        self.parent_sid = sid
        return sid

    async def feed(self, index: int, status: int) -> Response:
        response = self.response(index, status)
        branch = self.branch(index)
        assert branch.peer is not None
        self.manager.response(ResponseReceived(response, branch.peer, branch.transaction))
        await self.settle()
        return response

    def callee_request(self, index: int, method: str, cseq: int = 1) -> Request:
        """A request of the called party in its dialog (From: its tag, To: ours)."""
        invite = self.invite(index)
        ours = invite.from_.tag
        text = (
            f"{method} sip:dialtone@10.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 10.0.1.{index + 1}:5060;branch=z9hG4bKcallee{cseq}\r\n"
            f"From: <sip:x@10.0.1.{index + 1}>;tag=b{index}\r\n"
            f"To: <sip:{CALLER}@{DOMAIN}>;tag={ours}\r\n"
            f"Call-ID: {invite.call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        message = parse_message(text.encode())
        assert isinstance(message, Request)
        return message

    async def modify(self, sid: str, **change: Any) -> None:
        fields: dict[str, Any] = {
            "account_sid": ACCOUNT,
            "call_sid": sid,
            "status": None,
            "url": None,
            "method": "POST",
            "fallback_url": None,
            "fallback_method": "POST",
            "twiml": None,
        }
        fields.update(change)
        await self.manager.modify(ModifyRequest(**fields))
        await self.settle()

    async def close(self) -> None:
        await self.manager.shutdown(0.5)
        await self.cleanup()


@pytest.fixture
async def h() -> AsyncIterator[ManagerTest]:
    test = ManagerTest()
    yield test
    await test.close()


def two_clients() -> str:
    return (
        '<Response><Dial action="/dial-done">'
        f"<Client {ALL}>alice</Client><Client {ALL}>bob</Client></Dial></Response>"
    )


async def test_modify_reaches_the_parent_a_ringing_branch_and_a_child(h: ManagerTest) -> None:
    h.webhooks.documents["http://app.test/after"] = "<Response><Say>hi</Say><Hangup/></Response>"
    h.webhooks.documents["http://app.test/child"] = (
        "<Response><Redirect>/hold</Redirect></Response>"
    )
    h.webhooks.documents["http://app.test/dial-done"] = Hold()
    parent = await h.call_in(two_clients())
    await h.feed(ALICE, 180)
    await h.feed(BOB, 180)
    # a ringing branch: 21220, nothing changes
    with pytest.raises(CallControlError) as refused:
        await h.modify(h.sid(BOB), url="http://app.test/child")
    assert refused.value.code == 21220 and "not in progress" in refused.value.message
    assert h.methods("10.0.0.12") == ["INVITE"] and h.cancelled == []
    # bob answers and is bridged; then he is redirected: a call of his own
    await h.feed(BOB, 200)
    await h.feed(ALICE, 487)  # alice lost (DIAL-23)
    assert h.manager.count() == 1
    h.webhooks.documents["http://app.test/hold"] = Hold()
    await h.modify(h.sid(BOB), url="http://app.test/child")
    assert set(h.manager.children) == {h.sid(BOB)} and h.manager.count() == 2
    urls = [f.url for f in h.webhooks.fetches]
    assert sorted(urls) == sorted(
        [f"http://app.test/{p}" for p in ("voice", "dial-done", "child", "hold")]
    )
    # the parent's Dial ended (callee gone, DIAL-44) and its action ran with completed
    done = [f for f in h.webhooks.fetches if f.url == "http://app.test/dial-done"]
    assert len(done) == 1 and done[0].params["DialCallStatus"] == "completed"
    assert done[0].params["CallSid"] == parent
    # Status on the child over the API: canceled leaves it, completed hangs up (BYE)
    await h.modify(h.sid(BOB), status="canceled")
    assert h.sid(BOB) in h.manager.children
    await h.modify(h.sid(BOB), status="completed")
    assert h.methods("10.0.0.12")[-1:] == ["BYE"]
    assert h.manager.children == {} and h.manager.count() == 1
    with pytest.raises(CallControlError):  # ended: not in progress
        await h.modify(h.sid(BOB), url="http://app.test/child")
    # the parent is redirected while its action request is pending: dropped, /after runs
    await h.modify(parent, url="http://app.test/after")
    assert h.speech.spoken == ["hi"]
    assert h.manager.count() == 0
    assert [f.params["CallStatus"] for f in h.fired(BOB)][-1] == "completed"


async def test_the_childs_far_end_hangs_up_in_its_dialog(h: ManagerTest) -> None:
    h.webhooks.documents["http://app.test/hold"] = Hold()
    h.webhooks.documents["http://app.test/dial-done"] = Hold()
    await h.call_in(two_clients())
    await h.feed(BOB, 180)
    await h.feed(BOB, 200)
    await h.modify(h.sid(BOB), twiml=_doc("<Response><Redirect>/hold</Redirect></Response>"))
    child = h.manager.children[h.sid(BOB)]
    # a retransmitted 200 (our ACK was lost) is ACKed again, not treated as a stray
    before = [r.method for _, r, p in h.sent if p.host == "10.0.0.12"]
    peer = h.branch(BOB).peer
    assert peer is not None
    h.manager.response(ResponseReceived(h.response(BOB, 200), peer, None))
    after = [r.method for _, r, p in h.sent if p.host == "10.0.0.12"]
    assert after == [*before, "ACK"]
    # his BYE reaches the child: 200, the call ends, its completed fires once
    h.at(20)
    answer = h.manager.in_dialog(h.callee_request(BOB, "BYE", 2), "s-bye")
    assert answer is not None and answer.status == 200
    await h.settle()
    assert child.ended and h.manager.children == {}
    completed = [f for f in h.fired(BOB) if f.last]
    assert len(completed) == 1 and completed[0].params["CallDuration"] == "20"
    assert h.records.rows[h.sid(BOB)]["end_time"] is not None
    assert "BYE" not in [r.method for _, r, p in h.sent if p.host == "10.0.0.12"]


async def test_the_parent_redirected_in_its_dial_cancels_the_branches(h: ManagerTest) -> None:
    h.webhooks.documents["http://app.test/hold"] = Hold()
    parent = await h.call_in(two_clients())
    await h.feed(ALICE, 180)
    await h.feed(BOB, 180)
    await h.modify(
        parent, twiml=_doc("<Response><Say>hi</Say><Redirect>/hold</Redirect></Response>")
    )
    assert sorted(h.cancelled) == sorted(b.transaction for b in h.dial.branches)
    assert h.responses == [180, 180, 200]  # DOC-1, DIAL-30, then the Say answers (DOC-7)
    assert "http://app.test/dial-done" not in [f.url for f in h.webhooks.fetches]
    await h.feed(ALICE, 487)
    await h.feed(BOB, 487)
    assert [f.params["CallStatus"] for f in h.callbacks.fired if f.last] == ["canceled"] * 2
    assert h.manager.count() == 1 and h.manager.children == {}


def _doc(xml: str) -> Document:
    return rcml(xml, "http://app.test/")
