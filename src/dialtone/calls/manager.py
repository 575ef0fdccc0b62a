"""The call manager: inbound INVITEs in, live calls out (RTE-1..RTE-4, SIP-10, SIP-11).

It owns the dialog set and the live-call registry, authenticates calling Clients (407),
routes the INVITE, opens media, answers the SDP offer and starts one task per call. In-
dialog requests, ACKs and CANCELs reach their call through it; dialog timers (2xx
retransmission, ACK timeout) are armed on the event loop here.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Protocol

import structlog

from dialtone import ids
from dialtone.calls.branch import BranchLeg
from dialtone.calls.child import ChildCall, leave_dial
from dialtone.calls.control import CallControlError, ModifyRequest, OriginateRequest
from dialtone.calls.dial import DialParent, DialRun, DialSettings
from dialtone.calls.inbound import InboundCall
from dialtone.calls.outbound import OutboundCall
from dialtone.calls.routing import ClientRecord, NumberRecord, Refusal, decide, number_candidates
from dialtone.calls.services import CallServices
from dialtone.media.local import LocalMediaEngine
from dialtone.media.ports import NoMediaPorts
from dialtone.media.session import configure_from
from dialtone.rcml.errors import RcmlError
from dialtone.rcml.nodes import Dial, Document
from dialtone.rcml.parser import parse_document
from dialtone.registrar.auth import Authenticator, Verdict
from dialtone.sip.dialog import AckTimeout, Resend
from dialtone.sip.dialog_set import DialogSet
from dialtone.sip.dialog_uas import UasDialog, reject_invite
from dialtone.sip.errors import SipParseError
from dialtone.sip.events import CancelReceived, Peer, ResponseReceived
from dialtone.sip.message import Request, Response, make_response
from dialtone.sip.sdp import SdpError, negotiate_answer, parse_sdp

log = structlog.get_logger("dialtone.calls")

OVERLOAD_BACKLOG = 5_000
"""Call-record writes waiting (half the records queue): above it new INVITEs get 503 with
Retry-After, so an overloaded server sheds calls instead of dropping their records."""


class Directory(Protocol):
    """Storage lookups routing needs."""

    async def number(self, account_sid: str, candidates: list[str]) -> NumberRecord | None:
        """The IncomingPhoneNumber matching one of ``candidates``."""
        ...

    async def client(self, account_sid: str, login: str) -> ClientRecord | None:
        """The Client with this Login."""
        ...


class CallManager:
    """Every live call of the process."""

    def __init__(
        self,
        services: CallServices,
        *,
        auth: Authenticator,
        directory: Directory,
        media: LocalMediaEngine,
        domain: str,
        local_hosts: set[str],
        contact: Callable[[str], str],
        dial: DialSettings | None = None,
    ) -> None:
        self.services = services
        self.auth = auth
        self.directory = directory
        self.media = media
        self.domain = domain.lower()
        self.local_hosts = {h.lower() for h in local_hosts} | {self.domain}
        self._contact = contact
        self.dial_settings = dial or DialSettings(domain=self.domain, proxy=None)
        self.dialogs = DialogSet()
        self._branches: dict[str, tuple[BranchLeg, DialRun]] = {}  # by INVITE transaction
        self._branch_calls: dict[str, tuple[BranchLeg, DialRun]] = {}  # by Call-ID
        self.outbound: dict[str, OutboundCall] = {}
        self.children: dict[str, ChildCall] = {}  # branches that left their Dial (API-25)
        self._child_calls: dict[str, ChildCall] = {}  # the same, by Call-ID
        self.calls: dict[str, InboundCall] = {}
        self._by_invite: dict[str, InboundCall] = {}
        self._by_dialog: dict[object, InboundCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # INVITEs still being routed (storage lookups pending) -> whether the caller CANCELled.
        self._routing: dict[str, bool] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.accepting = True
        self.overload_refusals = 0  # INVITEs refused because records fell behind
        services.forget = self._forget
        services.dialog_changed = self.arm_timer

    # -- requests -----------------------------------------------------------------------

    def invite(self, request: Request, peer: Peer, transaction: str) -> None:
        """A new INVITE (no To tag): authenticate a calling Client, then route it (async)."""
        if not self.accepting:
            self._refuse(request, transaction, 503, "Shutting Down")
            return
        if self.services.records.backlog() >= OVERLOAD_BACKLOG:
            self.overload_refusals += 1
            self._refuse(request, transaction, 503, "Overloaded", [("Retry-After", "5")])
            return
        try:
            from_uri = request.from_.uri
        except SipParseError as exc:
            self._refuse(request, transaction, 400, exc.reason)
            return
        ours = (from_uri.host or "").lower() in self.local_hosts
        caller_login: str | None = None
        if ours and from_uri.user and self.auth.lookup(from_uri.user) is not None:
            if not self._authenticated(request, peer, transaction, from_uri.user):
                return
            caller_login = from_uri.user
        self._routing[transaction] = False
        task = asyncio.get_running_loop().create_task(
            self._start(request, peer, transaction, caller_login, from_uri.user or "")
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _authenticated(self, request: Request, peer: Peer, transaction: str, user: str) -> bool:
        """RTE-1: a Client of ours calls: 407 challenge, then verify; False when refused."""
        now = self.services.loop_time()
        result = self.auth.check(request, "Proxy-Authorization", user, peer.host, now)
        if result.verdict in (Verdict.CHALLENGE, Verdict.STALE):
            stale = result.verdict is Verdict.STALE
            challenges = self.auth.challenges(now, stale=stale)
            headers = [("Proxy-Authenticate", c) for c in challenges]
            self._refuse(request, transaction, 407, None, headers)
            return False
        if result.verdict is not Verdict.OK:
            self._refuse(request, transaction, 403, None)
            return False
        return True

    async def _start(
        self,
        request: Request,
        peer: Peer,
        transaction: str,
        caller_login: str | None,
        from_user: str,
    ) -> None:
        account = self.services.account_sid
        user = _ruri_user(request)
        try:
            caller = await self.directory.client(account, caller_login) if caller_login else None
            number = await self.directory.number(account, number_candidates(user)) if user else None
            callee = await self.directory.client(account, user) if user and number is None else None
        except Exception:  # storage broke: the caller gets a final answer, the server goes on
            log.exception("call.routing_failed", call_id=request.call_id, to=user)
            if not self._routing.pop(transaction, False):
                self._refuse(request, transaction, 500, "Routing Failed")
            return
        if self._routing.pop(transaction, False):  # CANCELled meanwhile: 487 already sent
            return
        if not self.accepting:  # shutdown began while we looked up
            self._refuse(request, transaction, 503, "Shutting Down")
            return
        decision = decide(user, from_user, caller, number, callee)
        if isinstance(decision, Refusal):
            if decision.warning_code:
                self.services.records.notify(
                    account,
                    None,
                    log=1,
                    error_code=decision.warning_code,
                    message_text=f"{user}: no voice URL is configured",
                )
            self._refuse(request, transaction, decision.status, decision.reason)
            return
        first: Document | None = None
        if decision.kind == "client-direct":  # RTE-2 step 3
            first = self._direct_dial(decision.to.removeprefix("client:"))
        try:
            dialog = UasDialog.from_invite(
                request, secrets.token_hex(6), self.contact(peer.transport)
            )
        except SipParseError as exc:
            self._refuse(request, transaction, 400, exc.reason)
            return
        try:
            media = self.media.open()
        except NoMediaPorts:
            self.services.respond(transaction, dialog.reject(503, "No Media Ports"))
            return
        try:
            offer = parse_sdp(request.body)
            host, port = media.local_address
            answer = negotiate_answer(
                offer, host, port, session_id=secrets.randbelow(2**31), version=1
            )
        except SdpError as exc:
            await media.close()
            status = 488 if exc.no_common_codec or not request.body else 400
            self.services.respond(transaction, dialog.reject(status))
            return
        configure_from(media, answer)
        call_sid = ids.new_sid(ids.CALL)
        call = InboundCall(
            self.services,
            call_sid=call_sid,
            invite=request,
            transaction=transaction,
            peer=peer,
            dialog=dialog,
            media=media,
            answer_sdp=answer.sdp.to_bytes(),
            route=decision,
            dialer=self._dialer,
        )
        self.dialogs.add(dialog)
        self.calls[call_sid] = call
        self._by_invite[transaction] = call
        self._by_dialog[dialog.id] = call
        self.services.records.create(
            call_sid,
            account_sid=account,
            direction="inbound",
            from_=decision.from_,
            to=decision.to,
            status="ringing",
            api_version=decision.api_version,
            start_time=self.services.utcnow(),
            phone_number_sid=decision.phone_number_sid,
            caller_name=call._info.caller_name,
            forwarded_from=call._info.forwarded_from,
            sip_call_id=request.call_id,
        )
        self.services.respond(transaction, dialog.provisional(180))  # DOC-1
        log.info("call.started", call_sid=call_sid, to=decision.to, from_=decision.from_)
        await call.run(first)

    def _direct_dial(self, login: str) -> Document:
        """RTE-2 step 3: the document ``<Dial><Client>login</Client></Dial>``."""
        body = f"<Response><Dial><Client>{login}</Client></Dial></Response>".encode()
        try:
            return parse_document(body, self.services.public_url + "/", content_type="text/xml")
        except RcmlError:  # a login the Client API accepted always parses; defensive
            body = b"<Response><Hangup/></Response>"
            return parse_document(body, self.services.public_url + "/", content_type="text/xml")

    def _dialer(self, call: DialParent, node: Dial) -> DialRun:
        return DialRun(call, node, self.services, self, self.dial_settings, self.media.open)

    # -- CallControl (the REST API: API-20..API-25) -----------------------------------------

    async def originate(self, request: OriginateRequest) -> str:
        """API-21: create the outbound-api call (row ``queued``) and dial it in its task."""
        if not self.accepting:
            raise CallControlError(503, 20503, "the server is shutting down")
        try:
            media = self.media.open()
        except NoMediaPorts:
            raise CallControlError(503, 20503, "no RTP port is free for a new call") from None
        sid = ids.new_sid(ids.CALL)
        records = self.services.records
        receipt = records.create(
            sid,
            account_sid=request.account_sid,
            direction="outbound-api",
            from_=request.from_,
            to=request.to,
            status="queued",
            api_version=request.api_version,
            start_time=self.services.utcnow(),
        )
        for notice in request.notices:
            records.notify(
                request.account_sid,
                sid,
                log=1,
                error_code=notice.code,
                message_text=notice.message_text,
            )
        await receipt
        call = OutboundCall(
            self.services,
            request,
            call_sid=sid,
            media=media,
            signalling=self,
            settings=self.dial_settings,
            dial=self._dialer,
            on_end=self._outbound_ended,
        )
        self.outbound[sid] = call
        task = asyncio.get_running_loop().create_task(call.run(), name=f"call {sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("call.originated", call_sid=sid, to=request.to)
        return sid

    def _outbound_ended(self, call: OutboundCall) -> None:
        self.outbound.pop(call.sid, None)

    async def modify(self, request: ModifyRequest) -> None:
        """API-24 (Status) and API-25 (new RCML) on a live call of this process.

        New RCML on a parent inside a Dial ends the Dial at once without its action request
        (:meth:`SteeredLeg.redirect <dialtone.calls.steering.SteeredLeg.redirect>`); on an
        answered branch it takes the branch out of its Dial as a call of its own
        (:mod:`dialtone.calls.child`); a branch not answered yet is refused (21220).
        """
        sid = request.call_sid
        document = request.twiml
        if document is None and request.url is not None:
            document = redirect_document(request.url, request.method, self.services.public_url)
        outbound = self.outbound.get(sid)
        inbound = self.calls.get(sid)
        child = self.children.get(sid)
        if outbound is not None:
            if request.status == "canceled":
                outbound.cancel()
            elif request.status == "completed":
                outbound.end()
            elif document is not None:
                outbound.redirect(document)
            return
        if inbound is not None or child is not None:
            call = inbound or child
            assert call is not None
            if request.status is not None:
                call.end_by_api(request.status)
            elif document is not None:
                call.redirect(document)
            return
        for branch, dial in list(self._branches.values()):
            if branch.sid == sid and not branch.ended and not branch.detached:
                if request.status is not None:
                    if request.status == "completed" or not branch.answered:
                        dial.cancel_branch(branch)
                    return
                assert document is not None
                self._leave_dial(branch, dial, document)
                return
        raise CallControlError(400, 21220, f"Call {sid} is not in progress")

    def _leave_dial(self, branch: BranchLeg, dial: DialRun, document: Document) -> None:
        """API-25 on an answered branch: it becomes a call of its own, found by its CallSid
        and its Call-ID from now on (responses and in-dialog requests go to it)."""
        child = leave_dial(
            dial, branch, signalling=self, dialer=self._dialer, on_end=self._child_ended
        )
        if branch.transaction is not None:
            self._branches.pop(branch.transaction, None)
        self._branch_calls.pop(child.call_id, None)
        self._child_calls[child.call_id] = child
        self.children[child.sid] = child
        task = asyncio.get_running_loop().create_task(child.run(document), name=f"call {child.sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("call.left_dial", call_sid=child.sid, parent_call_sid=dial.parent.call_sid)

    def _child_ended(self, child: ChildCall) -> None:
        self.children.pop(child.sid, None)
        self._child_calls.pop(child.call_id, None)
        self.arm_timer()

    # -- Signalling (the Dial's SIP) -------------------------------------------------------

    def contact(self, transport: str) -> str:
        """dialtone's Contact URI for ``transport``."""
        return self._contact(transport)

    def send_invite(self, branch: BranchLeg, invite: Request, dial: DialRun) -> str:
        """Send a branch INVITE; its responses and in-dialog requests come back to ``dial``."""
        assert branch.peer is not None
        transaction = self.services.send_request(invite, branch.peer)
        self._branches[transaction] = (branch, dial)
        self._branch_calls[invite.call_id] = (branch, dial)
        return transaction

    def cancel_invite(self, transaction: str) -> None:
        """CANCEL a branch INVITE (held by the endpoint until a provisional, §9.1)."""
        self.services.cancel(transaction)

    def send_ack(self, ack: Request, peer: Peer) -> None:
        """The ACK of a 2xx."""
        self.services.send_stateless(ack, peer)

    def send_bye(self, bye: Request, peer: Peer) -> None:
        """A BYE to a branch."""
        self.services.send_request(bye, peer)

    def release(self, branch: BranchLeg) -> None:
        """The Dial is over: a late 2xx of the branch is ACKed and BYEd as a stray, and an
        INVITE still unanswered is CANCELled once a provisional arrives (DIAL-23, §9.1)."""
        if branch.transaction is not None:
            self._branches.pop(branch.transaction, None)
            uac = branch.uac
            if uac is not None and uac.final_status is None and uac.kept is None:
                self.services.cancel(branch.transaction)
        if branch.uac is not None:
            self._branch_calls.pop(branch.uac.invite.call_id, None)
        for dialog in list(branch.uac.dialogs.values()) if branch.uac else ():
            dialog.terminate()

    def response(self, event: ResponseReceived) -> None:
        """A response to a request of ours: a branch INVITE's, or a stray 2xx."""
        response = event.response
        found = self._branches.get(event.transaction) if event.transaction else None
        if found is None and event.transaction is None:
            found = self._branch_calls.get(response.call_id)
        child = self._child_calls.get(response.call_id) if found is None else None
        if found is not None:
            branch, dial = found
            dial.on_response(branch, response)
        elif child is not None:
            child.on_response(response)
        elif 200 <= response.status < 300 and _is_invite(response):
            result = self.dialogs.on_stray_2xx(response)  # nobody wants it: ACK + BYE
            peer = event.peer
            if result.ack is not None:
                self.services.send_stateless(result.ack, peer)
            if result.bye is not None:
                self.services.send_request(result.bye, peer)

    def transaction_failed(self, transaction: str, *, timeout: bool) -> None:
        """Timer B or a transport error on a branch INVITE (DIAL-25)."""
        found = self._branches.get(transaction)
        if found is not None:
            branch, dial = found
            dial.on_failure(branch, timeout)

    def _refuse(
        self,
        request: Request,
        transaction: str,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        response = reject_invite(
            request, status, reason, to_tag=secrets.token_hex(5), headers=headers or ()
        )
        self.services.respond(transaction, response)

    def cancel(self, event: CancelReceived) -> None:
        """The caller's CANCEL (already answered 200 by the endpoint)."""
        call = self._by_invite.get(event.invite_transaction)
        if call is not None:
            call.caller_cancelled()
        elif self._routing.get(event.invite_transaction) is False:
            # Still routing: answer the INVITE now; the start task sees the mark and stops.
            self._routing[event.invite_transaction] = True
            response = make_response(event.request, 487, to_tag=secrets.token_hex(5))
            response.headers.set("CSeq", f"{event.request.cseq.seq} INVITE")
            self.services.respond(event.invite_transaction, response)

    def ack(self, request: Request) -> None:
        """An ACK for a 2xx (no transaction); it may carry the answer to our offer."""
        dialog = self.dialogs.ack_received(request)
        choice = dialog.answer_in_ack(request) if dialog is not None else None
        if choice is not None:  # an offerless re-INVITE: the session moves now
            leg = self._branch_calls.get(request.call_id)
            call = self._by_dialog.get(dialog.id) if dialog is not None else None
            media = leg[0].media if leg is not None else call.media if call else None
            if media is not None:
                configure_from(media, choice)
        self.arm_timer()

    def in_dialog(self, request: Request, transaction: str) -> Response | None:
        """A request inside a dialog (BYE, re-INVITE, INFO, OPTIONS); None → 481."""
        now = self.services.loop_time()
        handled = self.dialogs.handle_request(request, now, transaction=transaction)
        if handled is None:
            return None
        leg = self._branch_calls.get(request.call_id)
        if leg is not None:  # the called party of a Dial branch
            branch, dial = leg
            if handled.dtmf is not None and branch.media is not None:
                branch.media.receive_digit(handled.dtmf.digit)
            if handled.media is not None and branch.media is not None:
                configure_from(branch.media, handled.media)
            if handled.ended:
                dial.callee_bye(branch)
            self.arm_timer()  # a 2xx to its re-INVITE is retransmitted until the ACK
            return handled.response
        child = self._child_calls.get(request.call_id)
        if child is not None:  # a branch that left its Dial (API-25)
            if handled.dtmf is not None:
                child.media.receive_digit(handled.dtmf.digit)
            if handled.media is not None:
                configure_from(child.media, handled.media)
            if handled.ended:
                child.callee_bye()
            self.arm_timer()
            return handled.response
        dialog = self.dialogs.find(request)
        call = self._by_dialog.get(dialog.id) if dialog is not None else None
        if call is None:
            call = next((c for c in self.calls.values() if c.dialog.match(request)), None)
        if call is not None:
            if handled.dtmf is not None:
                call.media.receive_digit(handled.dtmf.digit)
            if handled.media is not None:
                configure_from(call.media, handled.media)
            if handled.ended:
                call.caller_hung_up()
        self.arm_timer()
        return handled.response

    # -- timers ---------------------------------------------------------------------------------

    def arm_timer(self) -> None:
        """Arm the loop for the dialogs' next deadline (2xx retransmission, ACK timeout)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.dialogs.next_deadline()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for event in self.dialogs.on_timer(self.services.loop_time()):
            if isinstance(event, Resend) and event.transaction is not None:
                self.services.respond(event.transaction, event.response)
            elif isinstance(event, AckTimeout):  # §13.3.1.4: no ACK for our 2xx: BYE
                call = self._by_dialog.get(event.dialog.id)
                branch = self._branch_calls.get(event.dialog.call_id)
                child = self._child_calls.get(event.dialog.call_id)
                if call is not None:
                    call.ack_timeout()
                elif branch is not None:
                    branch[1].cancel_branch(branch[0])
                elif child is not None:
                    child.end_by_api("completed")
        self.arm_timer()

    # -- bookkeeping ------------------------------------------------------------------------------

    def _forget(self, call: InboundCall) -> None:
        self.calls.pop(call.sid, None)
        self._by_invite.pop(call.transaction, None)
        self._by_dialog.pop(call.dialog.id, None)
        call.dialog.terminate()
        self.arm_timer()

    def count(self) -> int:
        """Live calls (inbound, outbound-api, branches that left their Dial; the other
        branches are part of their Dial)."""
        return len(self.calls) + len(self.outbound) + len(self.children)

    async def shutdown(self, grace: float) -> None:
        """Refuse new calls, end live ones (CB-13), wait for their tasks."""
        self.accepting = False
        for call in list(self.calls.values()):
            call.shutdown()
        for outbound in list(self.outbound.values()):
            outbound.end()
        for child in list(self.children.values()):
            child.shutdown()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        if self._timer is not None:
            self._timer.cancel()


def redirect_document(url: str, method: str, base: str) -> Document:
    """API-25 with ``Url``: a document whose ``<Redirect>`` fetches it with the call's
    parameters (the fetch, its errors and their Notifications are the call's own)."""
    escaped = url.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    body = f'<Response><Redirect method="{method}">{escaped}</Redirect></Response>'
    return parse_document(body.encode(), base + "/", content_type="text/xml")


def _is_invite(response: Response) -> bool:
    try:
        return response.cseq.method == "INVITE"
    except SipParseError:
        return False


def _ruri_user(request: Request) -> str:
    try:
        return request.ruri.user or ""
    except SipParseError:
        return ""
