"""Harnesses for API-25 scenarios: a whole inbound call whose RCML dials, and children.

:class:`CallTest` extends :class:`~tests.calls.dialfakes.DialTest`: instead of a
``FakeParent`` the Dial runs on a real :class:`~dialtone.calls.inbound.InboundCall`
(interpreter, ``<Dial>`` verb, action request, redirects), on the same fakes.  What the
call sends its caller is recorded in :attr:`CallTest.caller` (``"180"``, ``"180+sdp"``,
``"200"``, ``"487"``..., ``"BYE"``); every RCML request in ``webhooks.fetches``.  The Dial
the call runs is ``h.dial`` as in DialTest (the last one started), its task ``h.task``.

:meth:`DialTest`-level children: :meth:`CallTest.leave` (also usable with a plain
``DialTest`` through :func:`leave`) takes an answered branch out of its Dial as the call
manager does (:func:`dialtone.calls.child.leave_dial`) and runs the document on it.

Nothing sleeps: time moves with ``h.at``/``h.run_until``; tasks step with ``h.settle``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dialtone.calls.child import ChildCall, leave_dial
from dialtone.calls.dial import DialParent, DialRun
from dialtone.calls.inbound import InboundCall
from dialtone.calls.manager import redirect_document
from dialtone.calls.routing import Route
from dialtone.rcml.context import DialResult
from dialtone.rcml.nodes import Dial, Document
from dialtone.sip.dialog_uas import UasDialog
from dialtone.sip.events import Peer
from dialtone.sip.message import Request, Response, parse_message
from dialtone.testing.fake_call import rcml
from tests.calls.dialfakes import ACCOUNT, CALLER, PARENT, PUBLIC_URL, DialTest, Hold

__all__ = ["NUMBER", "CallTest", "document", "leave"]

NUMBER = "+15550001111"
CALLER_PEER = Peer("udp", "10.0.0.9", 5072)
ANSWER_SDP = b"v=0\r\no=dialtone 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\n"


def document(xml: str) -> Document:
    """Inline RCML as ``Twiml`` gives it (base: the public URL)."""
    return rcml(xml, PUBLIC_URL + "/")


async def leave(
    h: DialTest, index: int, xml_or_url: str, *, method: str = "POST", settle: bool = True
) -> ChildCall:
    """API-25 on branch ``index``: it leaves the Dial and runs ``xml_or_url`` (Twiml, or a
    URL fetched with ``method``); raises what ``leave_dial`` raises."""
    if xml_or_url.startswith("<"):
        new = document(xml_or_url)
    else:
        new = redirect_document(xml_or_url, method, PUBLIC_URL)
    child = leave_dial(
        h.dial, h.branch(index), signalling=h.sip, dialer=None, on_end=h.children_ended.append
    )
    h.children.append(child)
    h.child_tasks.append(asyncio.get_running_loop().create_task(child.run(new)))
    if settle:
        await h.settle()
    return child


class _TrackedDial(DialRun):
    """A DialRun that tells its harness which task runs it."""

    harness: CallTest

    async def run(self) -> DialResult:
        task = asyncio.current_task()
        assert task is not None
        self.harness.task = task
        return await super().run()


class CallTest(DialTest):
    """An InboundCall on the DialTest fakes (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.caller: list[str] = []
        self.services.respond = self._respond
        self.services.send_request = self._send_request
        self.dials: list[DialRun] = []
        self.call: InboundCall
        self.call_task: asyncio.Task[None]

    def _respond(self, transaction: str, response: Response) -> None:
        assert transaction == "s-invite", transaction
        mark = str(response.status)
        if response.status < 200 and response.body:
            mark += "+sdp"
        self.caller.append(mark)

    def _send_request(self, request: Request, peer: Peer) -> str:
        assert peer == CALLER_PEER, peer
        self.caller.append(request.method)
        return f"c{len(self.caller)}"

    def _dialer(self, call: DialParent, node: Dial) -> DialRun:
        run = _TrackedDial(call, node, self.services, self.sip, self.settings, self._open_media)
        run.harness = self
        self.dial = run
        self.callbacks.dial = run
        self.dials.append(run)
        return run

    async def start_call(self, voice: str, **documents: str | Hold | None) -> InboundCall:
        """The caller's INVITE reached ``NUMBER`` (VoiceUrl ``/voice`` answers ``voice``);
        ``documents`` maps paths (``dial_done``: ``/dial-done``) to what they answer."""
        self.webhooks.documents[PUBLIC_URL + "/voice"] = voice
        for name, answer in documents.items():
            self.webhooks.documents[PUBLIC_URL + "/" + name.replace("_", "-")] = answer
        invite = _invite()
        route = Route(
            kind="number",
            from_=CALLER,
            to=NUMBER,
            api_version="2010-04-01",
            voice_url=PUBLIC_URL + "/voice",
        )
        self.records.create(
            PARENT,
            account_sid=ACCOUNT,
            direction="inbound",
            from_=CALLER,
            to=NUMBER,
            status="ringing",
        )
        self.call = InboundCall(
            self.services,
            call_sid=PARENT,
            invite=invite,
            transaction="s-invite",
            peer=CALLER_PEER,
            dialog=UasDialog.from_invite(invite, "dt1", "sip:dialtone@10.0.0.1:5060"),
            media=self.parent_media,
            answer_sdp=ANSWER_SDP,
            route=route,
            dialer=self._dialer,
        )
        self.call_task = asyncio.get_running_loop().create_task(self.call.run())
        await self.settle()
        return self.call

    async def redirect(self, xml_or_url: str, *, method: str = "POST", settle: bool = True) -> None:
        """API-25 on the caller's call: Twiml (starts with ``<``) or a URL with ``method``."""
        if xml_or_url.startswith("<"):
            new = document(xml_or_url)
        else:
            new = redirect_document(xml_or_url, method, PUBLIC_URL)
        self.call.redirect(new)
        if settle:
            await self.settle()

    def fetched(self) -> list[tuple[str, str]]:
        """Every RCML request so far: (path, method)."""
        return [(f.url.removeprefix(PUBLIC_URL), f.method) for f in self.webhooks.fetches]

    def fetch_params(self, path: str) -> dict[str, str]:
        (found,) = [f for f in self.webhooks.fetches if f.url == PUBLIC_URL + path]
        return found.params

    async def call_ended(self) -> None:
        """The caller's call is over (its task ended, every Dial it left drained)."""
        await self.settle()
        assert self.call_task.done(), "the call is still running"
        self.call_task.result()

    async def cleanup(self) -> None:
        await super().cleanup()
        task = getattr(self, "call_task", None)
        if task is not None and not task.done():
            self.call.shutdown()
            await self.settle()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def check_call(self, status: str) -> None:
        """The caller's Call row: finished once with ``status``; its media closed."""
        row = self.records.rows[PARENT]
        assert row["status"] == status, row
        assert self.records.ops(PARENT).count("finish") == 1
        assert self.parent_media.closed


def _invite() -> Request:
    text = (
        f"INVITE sip:{NUMBER}@10.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5072;branch=z9hG4bKcaller1\r\n"
        f"From: <sip:{CALLER}@10.0.0.9>;tag=c1\r\nTo: <sip:{NUMBER}@10.0.0.1>\r\n"
        "Call-ID: caller-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        "Contact: <sip:caller@10.0.0.9:5072>\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message
