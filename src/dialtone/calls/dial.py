"""The b2bua of one `<Dial>`: carries out the :class:`~dialtone.calls.fork.Fork`'s commands.

:class:`DialRun` creates the branches (DIAL-10, DIAL-13), sends every INVITE at once
(DIAL-11), plays ringback to the caller (DIAL-30, DIAL-32), feeds every response, timer,
whisper result and hang-up to the Fork, and does what it answers: CANCEL, BYE, ACK + BYE,
whispers, the bridge (DIAL-33), the branches' Call rows, Notifications and call-progress
callbacks (CB-3..CB-8).  It returns the Dial's outcome once every branch has ended
(DIAL-41); the verb makes the action request.

Early media (DIAL-31): a Dial of exactly one branch, a ``<Number>`` or ``<Sip>`` without
``url``, relays that branch's early media to the caller instead of the local ringback as
soon as it sends 180 or 183 with SDP: the branch's session is pointed at that SDP as
``recvonly`` (dialtone sends the called party nothing before its answer: DIAL-33) and
bridged with the caller's, so its audio and events reach the caller and none of the
caller's reach it.  The 2xx re-points the session at the answer (both ways) and the
bridge of DIAL-33 is the one already in place.  The relay ends when the branch ends (the
Dial then ends too: DIAL-26, DIAL-40), when the caller leaves, or, with the ringback back
on, when the branch's INVITE is cancelled (DIAL-23, DIAL-35) or challenged and sent again
(LEG-5: its early dialog is over).

API-25 (new RCML over the REST API): :meth:`DialRun.parent_left` ends the Dial at once
for a parent that runs other RCML (as if the caller had hung up, but the caller stays and
the outcome goes to nobody); :meth:`DialRun.detach` lets an answered branch leave the Dial
as a call of its own (:mod:`dialtone.calls.child`): for the Dial it is the callee hanging
up, or a whisper's decline, and nothing more of it is the Dial's.

SIP goes through :class:`~dialtone.calls.dial_seams.Signalling` (the call manager; the
protocols are in :mod:`dialtone.calls.dial_seams`), which also routes the responses
and in-dialog requests of each branch back here (:meth:`DialRun.on_response`,
:meth:`DialRun.on_failure`, :meth:`DialRun.callee_bye`).  Every input is handled
synchronously, so a decision and its SIP messages leave in the same loop step; only
webhooks (whispers, callbacks) are awaited, in their own tasks (CB-11, WSP-11).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

import structlog

from dialtone import ids
from dialtone.calls.branch import BranchLeg, build_invite
from dialtone.calls.dial_seams import DialParent, DialSettings, Signalling
from dialtone.calls.fork import (
    LIVE,
    AckAndBye,
    BranchEnded,
    BranchEvent,
    BranchState,
    Bridge,
    BridgeEnd,
    Bye,
    Cancel,
    Command,
    DialEnded,
    Fork,
    StartWhisper,
    StopWhisper,
    Warn,
)
from dialtone.calls.records import Receipt
from dialtone.calls.services import CallServices
from dialtone.calls.targets import Target, branch_targets, resolve_host
from dialtone.media.ports import NoMediaPorts
from dialtone.media.session import Direction, MediaError, MediaSession, configure_from
from dialtone.media.sources import ToneSource
from dialtone.rcml.context import CallGone, DialResult
from dialtone.rcml.interpreter import run_call
from dialtone.rcml.nodes import Dial, NumberNoun, SipNoun
from dialtone.rcml.outcome import EndingKind
from dialtone.sip.message import Response
from dialtone.sip.sdp import SdpError, accept_answer, build_offer, parse_sdp
from dialtone.webhooks.params import CallInfo, status_callback_params

__all__ = ["DialParent", "DialRun", "DialSettings", "Signalling"]

log = structlog.get_logger("dialtone.dial")

_TRANSPORT_ERROR = 503  # DIAL-25: a transport error counts as a 503
_TIMER_B = 408  # DIAL-25: no final response by Timer B
_EARLY_MEDIA = frozenset({180, 183})  # DIAL-31: the provisionals whose SDP is relayed
NO_ADDRESS = 82004
"""dialtone: the branch's host name did not resolve (the branch fails as a transport error)."""
NO_PORT = 82005
"""dialtone: no RTP port was free for the branch (SIP-13: the branch fails)."""
BAD_ANSWER = 82006
"""dialtone: the branch's 2xx carried no usable SDP answer (BYE; the branch fails, 488)."""


class DialRun:
    """One `<Dial>` on one parent (module docstring)."""

    def __init__(
        self,
        parent: DialParent,
        node: Dial,
        services: CallServices,
        signalling: Signalling,
        settings: DialSettings,
        media: Callable[[], MediaSession],
    ) -> None:
        self.parent = parent
        self.node = node
        self.services = services
        self.sip = signalling
        self.settings = settings
        self._open_media = media
        self.branches: list[BranchLeg] = []
        self.fork: Fork | None = None
        self._done: asyncio.Future[DialResult] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._ringback: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._winner: BranchLeg | None = None
        self._early: BranchLeg | None = None  # DIAL-31: whose early media the caller hears
        self._caller_gone = False
        self._left = False  # API-25 on the parent: nobody waits for the outcome
        self._tasks: set[asyncio.Task[None]] = set()
        self._rows: dict[str, Receipt] = {}  # each branch's Call row being written

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> DialResult:
        """Dial, and return the outcome once every branch has ended (DIAL-41)."""
        try:
            targets = await self._targets()
            if self._caller_gone or self._left:  # gone while host names resolved: none sent
                return DialResult("canceled", ids.new_sid(ids.CALL), 0, 0, False, True)
            self._create(targets)
            self._start()
            return await asyncio.shield(self._done)
        finally:
            await self._close()

    async def _targets(self) -> list[tuple[Target, str | None]]:
        settings = self.settings
        targets = branch_targets(
            self.node.nouns,
            domain=settings.domain,
            client_sid=settings.client_sid,
            bindings=settings.bindings,
            proxy=settings.proxy,
        )
        out: list[tuple[Target, str | None]] = []
        for target in targets:
            address = await resolve_host(target.host) if target.needs_resolving else None
            out.append((target, address))
        return out

    def _create(self, targets: list[tuple[Target, str | None]]) -> None:
        """DIAL-10: one branch per target, in document order, then the Fork."""
        for index, (target, _) in enumerate(targets):
            self.branches.append(self._new_branch(index, target))
        self.fork = Fork(
            [t.noun.url is not None for t, _ in targets],
            timeout=float(self.node.timeout),
            time_limit=self._time_limit(),
            whisper_timeout=self.settings.whisper_timeout,
            parent_answered=self.parent.answered,
        )
        self._addresses = [address for _, address in targets]

    def _time_limit(self) -> float | None:
        return float(self.node.time_limit)

    def _caller_id(self) -> str:
        """DIAL-1: ``callerId``, else the caller's From."""
        return self.node.caller_id or self.parent.info.from_

    def _new_branch(self, index: int, target: Target) -> BranchLeg:
        """A branch and its Call row (DIAL-10: Direction ``outbound-dial``)."""
        parent = self.parent.info
        caller_id = self._caller_id()
        sid = ids.new_sid(ids.CALL)
        info = CallInfo(
            call_sid=sid,
            account_sid=parent.account_sid,
            from_=caller_id,
            to=target.to,
            status="ringing",
            direction="outbound-dial",
            api_version=parent.api_version,
            parent_call_sid=parent.call_sid,
        )
        self._rows[sid] = self.services.records.create(
            sid,
            account_sid=parent.account_sid,
            direction="outbound-dial",
            from_=caller_id,
            to=target.to,
            status="ringing",
            api_version=parent.api_version,
            start_time=self.services.utcnow(),
            parent_call_sid=parent.call_sid,
        )
        return BranchLeg(
            self.services,
            index=index,
            target=target,
            call_sid=sid,
            info=info,
            media=None,
            base_url=target.noun.url,
        )

    def _start(self) -> None:
        """DIAL-13 failures, then every INVITE at once (DIAL-11), then ringback (DIAL-30)."""
        fork = self._fork
        unsendable: list[int] = []
        for branch in self.branches:
            if branch.target.failure is not None:
                self._apply(fork.failed_at_start(branch.index, branch.target.failure))
        sent = 0
        for branch in self.branches:
            if branch.target.failure is not None:
                continue
            if not self._send_invite(branch):
                unsendable.append(branch.index)
            else:
                sent += 1
        now = self.services.loop_time()
        self._apply(fork.start(now))  # every branch failed at start: DialEnded comes here
        for index in unsendable:  # no port, no address: a transport error (DIAL-25)
            self._apply(fork.final_failure(index, _TRANSPORT_ERROR, now))
        if sent and not fork.ended:
            self._ring_caller()
        if self.node.hangup_on_star:
            self._unsubscribe = self.parent.media.on_digit(self._caller_digit)

    def _send_invite(self, branch: BranchLeg) -> bool:
        target = branch.target
        address = self._addresses[branch.index]
        if target.needs_resolving and address is None:
            self._warn(branch, NO_ADDRESS, f"cannot resolve {target.host!r}")
            return False
        try:
            media = self._open_media()
        except NoMediaPorts:
            self._warn(branch, NO_PORT, "no RTP port is free for this branch")
            return False
        branch.media = media
        host, port = media.local_address
        offer = build_offer(host, port, session_id=secrets.randbelow(2**31), version=1)
        user = self._caller_id().removeprefix("client:")
        extra = self._identity(branch)
        peer = target.peer(address)
        invite = build_invite(
            target,
            from_uri=f"sip:{user}@{self.settings.domain}",
            display_name=self.parent.display_name,
            contact=self.sip.contact(peer.transport),
            sdp=offer.to_bytes(),
            extra=extra,
        )
        branch.start(invite, peer, self.sip.dialogs)
        branch.transaction = self.sip.send_invite(branch, invite, self)
        return True

    def _identity(self, branch: BranchLeg) -> list[tuple[str, str]]:
        """LEG-2: the X-Dialtone headers of a branch INVITE."""
        parent = self.parent.info
        return [
            ("X-Dialtone-CallSid", branch.sid),
            ("X-Dialtone-AccountSid", parent.account_sid),
            ("X-Dialtone-ParentCallSid", parent.call_sid),
        ]

    # -- inputs from SIP ---------------------------------------------------------------------

    def on_response(self, branch: BranchLeg, response: Response) -> None:
        """A response to the branch's INVITE (any transaction of it)."""
        uac = branch.uac
        fork = self.fork
        if uac is None or fork is None or branch.peer is None:
            return
        result = uac.on_response(response)
        if result.ack is not None:
            self.sip.send_ack(result.ack, branch.peer)
        if result.bye is not None:
            self.sip.send_bye(result.bye, branch.peer)
        if result.retransmission:
            return
        status = response.status
        now = self.services.loop_time()
        if status == 100:
            self._apply(fork.trying(branch.index, now))
        elif status < 200:
            self._apply(fork.provisional(branch.index, now))
            if status in _EARLY_MEDIA and response.body:
                self._early_media(branch, response)
        elif status < 300:
            if branch.reported_2xx:
                return  # a second fork's 2xx: ACK + BYE above (DIAL-24)
            branch.reported_2xx = True
            branch.refused = result.bye is not None
            kept = fork.branches[branch.index].state in LIVE  # else AckAndBye (DIAL-24)
            if kept and result.answered and not self._configure(branch, response):
                for bye in uac.end():  # an answer we cannot use: end it, the branch failed
                    self.sip.send_bye(bye, branch.peer)
                branch.refused = True
                self._apply(fork.final_failure(branch.index, 488, now))
                return
            self._apply(fork.answered(branch.index, now))
        else:
            retry = branch.authenticated_invite(response)
            if retry is not None and fork.branches[branch.index].state in LIVE:
                self._end_early_media(ring=True)  # that INVITE's early dialog is over
                branch.restart(retry)
                branch.transaction = self.sip.send_invite(branch, retry, self)
                return
            self._apply(fork.final_failure(branch.index, status, now))

    def on_failure(self, branch: BranchLeg, timeout: bool) -> None:
        """The INVITE transaction timed out (Timer B) or its transport failed."""
        if self.fork is not None and branch.uac is not None and branch.uac.final_status is None:
            code = _TIMER_B if timeout else _TRANSPORT_ERROR
            self._apply(self.fork.final_failure(branch.index, code, self.services.loop_time()))

    def callee_bye(self, branch: BranchLeg) -> None:
        """The called party sent BYE (already answered 200)."""
        if self.fork is not None:
            self._apply(self.fork.branch_gone(branch.index, self.services.loop_time()))

    def caller_gone(self) -> None:
        """The caller hung up, or the server is shutting down (DIAL-34, DIAL-44, CB-13)."""
        self._caller_gone = True
        self._end_early_media(ring=False)
        if self.fork is not None and self.fork.started_at is not None:
            self._apply(self.fork.caller_gone(self.services.loop_time()))

    def cancel_branch(self, branch: BranchLeg) -> None:
        """API-24 on one branch (:meth:`Fork.cancel_branch`)."""
        if self.fork is not None and self.fork.started_at is not None:
            self._apply(self.fork.cancel_branch(branch.index, self.services.loop_time()))

    @property
    def left(self) -> bool:
        """Whether the parent left this Dial (:meth:`parent_left`)."""
        return self._left

    def parent_left(self) -> None:
        """API-25 on the parent: it runs other RCML from now on.  The Dial ends at once, as
        when the caller hangs up (DIAL-23, DIAL-34: ringing branches are cancelled, a
        whispering one or the winner gets BYE), but the parent stays: its ringback and
        bridge stop now and nothing of this Dial touches its media again.  The outcome is
        still computed once every branch has ended, for nobody (no action request)."""
        if self._left:
            return
        self._left = True
        self._end_early_media(ring=False)
        self._stop_ringback()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._winner is not None:
            with contextlib.suppress(Exception):
                self.parent.media.unbridge()
        if self.fork is not None and self.fork.started_at is not None:
            self._apply(self.fork.caller_gone(self.services.loop_time()))

    def detach(self, branch: BranchLeg) -> float | None:
        """API-25 on a branch: an answered one (whispering, or the winner) leaves the Dial
        to run other RCML as a call of its own; returns when it answered (loop time), or
        None when it cannot leave (not answered, or already ending): nothing changes.

        For the Dial it counts as the callee hanging up (DIAL-44: the caller goes on) or,
        during its whisper, as a decline (WSP-6: the other branches ring on).  Its dialog,
        media and ``completed`` event are the new call's from now on: the Dial sends it no
        BYE, writes no end to its row and closes nothing of it.
        """
        fork = self.fork
        if fork is None or branch.ended or branch.detached:
            return None
        state = fork.branches[branch.index]
        if state.state not in (BranchState.WHISPERING, BranchState.ACCEPTED):
            return None
        answered_at = state.answered_at
        assert answered_at is not None
        branch.detached = True
        if branch is self._winner:
            with contextlib.suppress(Exception):
                self.parent.media.unbridge()
        if branch.whisper_task is not None and not branch.whisper_task.done():
            branch.whisper_task.cancel()  # WSP: the whisper's verbs stop now (API-25)
            if branch.media is not None:
                branch.media.stop_playback()
        self._apply(fork.branch_gone(branch.index, self.services.loop_time()))
        return answered_at

    def _caller_digit(self, digit: str) -> None:
        """DIAL-37: the caller's ``*`` during the bridge ends it."""
        if digit == "*" and self._winner is not None and self.fork is not None:
            now = self.services.loop_time()
            self._apply(self.fork.bridge_ended(BridgeEnd.HANGUP_ON_STAR, now))

    def _configure(self, branch: BranchLeg, response: Response) -> bool:
        """Point the branch's media at the answer's SDP (LEG-3)."""
        if branch.media is None:
            return False
        try:
            configure_from(branch.media, accept_answer(parse_sdp(response.body)))
        except SdpError as exc:
            self._warn(branch, BAD_ANSWER, f"the answer's SDP is unusable: {exc}")
            return False
        branch.answered_now()
        return True

    def _early_media(self, branch: BranchLeg, response: Response) -> None:
        """DIAL-31: relay the branch's early media to the caller (module docstring)."""
        noun = branch.target.noun
        media = branch.media
        if (
            len(self.branches) != 1
            or not isinstance(noun, NumberNoun | SipNoun)
            or noun.url is not None
            or media is None
            or media.closed
            or self._winner is not None
            or self._caller_gone
            or self._left
            or self._fork.ended
            or self._fork.branches[branch.index].state not in LIVE
        ):
            return
        try:
            choice = accept_answer(parse_sdp(response.body))
            if not choice.direction.receives:  # the called party sends nothing (yet)
                self._end_early_media(ring=True)
                return
            media.configure(
                choice.remote_address,
                choice.remote_port,
                choice.payload_type,
                choice.telephone_event_pt,
                Direction.RECVONLY,  # nothing reaches the called party before its answer
                codec=choice.codec.encoding,
            )
        except (SdpError, ValueError, MediaError):  # unusable: the ringback goes on
            return
        if self._early is branch:
            return  # relayed already; now from where the newest SDP says
        self._stop_ringback()
        self.parent.media.bridge(media)
        self._early = branch

    def _end_early_media(self, *, ring: bool) -> None:
        """Stop relaying a branch's early media; with ``ring`` the ringback comes back if
        the Dial still waits for an answer."""
        branch, self._early = self._early, None
        if branch is None:
            return
        with contextlib.suppress(Exception):
            self.parent.media.unbridge()
        fork = self.fork
        if ring and not (self._caller_gone or self._left) and fork is not None and not fork.ended:
            self._play_ringback()

    # -- the Fork's commands -----------------------------------------------------------------

    @property
    def _fork(self) -> Fork:
        assert self.fork is not None
        return self.fork

    def _apply(self, commands: list[Command]) -> None:
        for command in commands:
            try:
                self._do(command)
            except Exception:  # one command's bug must not strand the others
                log.exception("dial.command_failed", command=repr(command))
        self._arm()

    def _do(self, command: Command) -> None:
        index = getattr(command, "branch", None)
        if index is not None and self.branches[index].detached:
            return  # a branch that left the Dial is a call of its own (detach)
        if isinstance(command, BranchEvent):
            self._event(command)
        elif isinstance(command, BranchEnded):
            self._ended(command)
        elif isinstance(command, Cancel):
            branch = self.branches[command.branch]
            if branch is self._early:
                self._end_early_media(ring=True)  # until the Dial ends (DIAL-23)
            if branch.transaction is not None:
                self.sip.cancel_invite(branch.transaction)
            if branch.uac is not None:
                branch.uac.end()
        elif isinstance(command, Bye | AckAndBye):
            branch = self.branches[command.branch]
            if isinstance(command, AckAndBye) and branch.refused:
                return  # the UacInvite already sent ACK + BYE for it
            if branch.uac is not None and branch.peer is not None:
                for bye in branch.uac.end():
                    self.sip.send_bye(bye, branch.peer)
        elif isinstance(command, StartWhisper):
            branch = self.branches[command.branch]
            task = asyncio.get_running_loop().create_task(self._whisper(branch))
            branch.whisper_task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(command, StopWhisper):
            self.branches[command.branch].stop_whisper()
        elif isinstance(command, Bridge):
            self._bridge(command)
        elif isinstance(command, Warn):
            branch = self.branches[command.branch]
            self._warn(branch, command.code, branch.target.message or "branch ended")
        elif isinstance(command, DialEnded):
            self._finish(command)

    def _event(self, command: BranchEvent) -> None:
        """CB-3: the Call row follows the branch; the subscribed callback fires."""
        branch = self.branches[command.branch]
        now = self.services.utcnow()
        if command.event == "ringing":
            self.services.records.update(branch.sid, status="ringing")
        elif command.event == "answered":
            self.services.records.update(branch.sid, status="in-progress", answer_time=now)
        noun = branch.target.noun
        if noun.status_callback is None or command.event not in noun.status_callback_events:
            return
        completed = command.event == "completed"
        params = status_callback_params(
            branch.info.with_status(command.status),
            call_duration=branch.duration if completed else None,
            sip_response_code=command.sip_code if completed else None,
        )
        self.services.callbacks.fire(
            branch.sid,
            noun.status_callback,
            noun.status_callback_method,
            params,
            auth_token=self.services.auth_token,
            timestamp=now,
            last=completed,
            ready=self._rows.get(branch.sid),
        )

    def _ended(self, command: BranchEnded) -> None:
        branch = self.branches[command.branch]
        branch.duration = command.duration_s
        if branch is self._early:
            self._end_early_media(ring=False)
        elif branch is self._winner:
            with contextlib.suppress(Exception):
                self.parent.media.unbridge()
        branch.end(command.status)
        now = self.services.utcnow()
        self.services.records.finish(branch.sid, command.status, now, command.sip_code)
        self._close_media(branch)

    def _bridge(self, command: Bridge) -> None:
        """DIAL-33: ringback stops, the parent is answered, media flows both ways."""
        branch = self.branches[command.branch]
        self._stop_ringback()
        if command.answer_parent:
            self.parent.answer_now()
        self._winner = branch
        if self._early is branch:
            self._early = None  # its early-media bridge is the bridge now (DIAL-31)
        if branch.media is not None and self.parent.media.peer is not branch.media:
            self.parent.media.bridge(branch.media)

    def _finish(self, command: DialEnded) -> None:
        outcome = command.outcome
        self._stop_ringback()
        sid = self.branches[outcome.dial_call_sid_branch].sid
        result = DialResult(
            outcome.dial_call_status,
            sid,
            outcome.dial_call_duration,
            outcome.dial_ring_duration,
            outcome.bridged,
            outcome.caller_gone or self._caller_gone,
        )
        if not self._done.done():
            self._done.set_result(result)

    def _warn(self, branch: BranchLeg, code: int, message: str) -> None:
        noun = branch.target.noun
        self.services.records.notify(
            self.services.account_sid,
            branch.sid,
            log=1,
            error_code=code,
            message_text=f"{noun.element}: {message}",
        )

    # -- whispers, ringback, timers ------------------------------------------------------

    async def _whisper(self, branch: BranchLeg) -> None:
        """WSP-2: sendDigits, then the whisper RCML; its ending goes to the Fork."""
        noun = branch.target.noun
        assert noun.url is not None
        try:
            if isinstance(noun, NumberNoun) and noun.send_digits:
                await branch.send_digits(noun.send_digits)
            document = await branch.fetch(noun.url, noun.method)
            if document is None:
                accepted, failed = False, True
            else:
                ending = await run_call(branch, document, whisper=True)
                if ending.kind is EndingKind.GONE:
                    return  # the callee hung up: callee_bye() told the Fork
                accepted = ending.kind is EndingKind.ACCEPTED
                failed = ending.kind is EndingKind.FAILED
        except (CallGone, asyncio.CancelledError):
            return  # stopped by the Dial (StopWhisper)
        if not branch.ended and self.fork is not None:
            now = self.services.loop_time()
            self._apply(self.fork.whisper_done(branch.index, accepted, failed, now))

    def _ring_caller(self) -> None:
        """DIAL-30/DIAL-32: 180 with SDP to an unanswered caller, ringback either way."""
        if not self.parent.answered:
            self.parent.early_media()
        self._play_ringback()

    def _play_ringback(self) -> None:
        """The local ringback on the caller's media (DIAL-30, DIAL-32), until stopped."""
        self._stop_ringback()
        media = self.parent.media

        async def ring() -> None:
            with contextlib.suppress(Exception):
                await media.play(ToneSource())

        self._ringback = asyncio.get_running_loop().create_task(ring())

    def _stop_ringback(self) -> None:
        task, self._ringback = self._ringback, None
        if task is not None and not task.done():
            self.parent.media.stop_playback()
            task.cancel()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.fork.next_deadline() if self.fork is not None else None
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.fork is not None:
            self._apply(self.fork.timer(self.services.loop_time()))

    def _close_media(self, branch: BranchLeg) -> None:
        media = branch.media
        if media is None or media.closed:
            return
        task = asyncio.get_running_loop().create_task(media.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self) -> None:
        """Whatever way the Dial ends: timers, observers, ringback, routing, media."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._end_early_media(ring=False)
        self._stop_ringback()
        for branch in self.branches:
            if branch.detached:
                continue  # its dialog and media are the new call's
            branch.stop_whisper()
            self.sip.release(branch)
            if branch.media is not None and not branch.media.closed:
                with contextlib.suppress(Exception):
                    await branch.media.close()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
