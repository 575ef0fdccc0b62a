"""A Dial branch that left its Dial by API-25: a call of its own, running new RCML.

``POST /Calls/{CallSid}`` with ``Url``/``Twiml`` on an answered branch (the winner, or a
branch still in its whisper) takes it out of the Dial (:meth:`DialRun.detach
<dialtone.calls.dial.DialRun.detach>`) and hands it to a :class:`ChildCall`, as Twilio does
with a redirected child call.  The call keeps what it was: its CallSid, Direction
``outbound-dial``, ParentCallSid, From and To (REQ-1), its INVITE dialog and its media, and
its status ``in-progress``.  Its status callbacks stay on the noun's lane: the ``completed``
event, with the next SequenceNumber (CB-7), comes when this call ends, with CallDuration
counted from its answer (CB-6) and SipResponseCode 200.

The RCML runs as on any answered call, not as a whisper: ``<Dial>`` is allowed (the call is
then the parent of that Dial), the end of the document or ``<Hangup>``/``<Reject>`` or an
RCML error send BYE.  The far end's BYE ends it; the REST API can end it (``completed``) or
redirect it again.  The Dial it left goes on without it (DIAL-44 or WSP-6).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal, Protocol

import structlog

from dialtone.calls.branch import BranchLeg
from dialtone.calls.control import CallControlError
from dialtone.calls.dial import DialRun
from dialtone.calls.fork_table import seconds
from dialtone.calls.services import CallServices
from dialtone.calls.steering import SteeredLeg
from dialtone.rcml.context import CallGone, DialResult
from dialtone.rcml.nodes import Dial, Document
from dialtone.sip.dialog_uac import UacInvite
from dialtone.sip.events import Peer
from dialtone.sip.message import Request, Response
from dialtone.webhooks.params import status_callback_params

__all__ = ["ChildCall", "ChildSignalling", "leave_dial"]

log = structlog.get_logger("dialtone.calls")


class ChildSignalling(Protocol):
    """The SIP a child call sends on its dialog (the call manager's)."""

    def send_ack(self, ack: Request, peer: Peer) -> None:
        """The ACK of a retransmitted 2xx."""
        ...

    def send_bye(self, bye: Request, peer: Peer) -> None:
        """A BYE to the called party."""
        ...


ChildDialer = Callable[["ChildCall", Dial], DialRun]
"""Builds the b2bua of a ``<Dial>`` the child's RCML runs (the call manager's)."""


def leave_dial(
    dial: DialRun,
    branch: BranchLeg,
    *,
    signalling: ChildSignalling,
    dialer: ChildDialer | None,
    on_end: Callable[[ChildCall], None],
) -> ChildCall:
    """API-25 on a branch: take it out of ``dial`` as a :class:`ChildCall` (not started).

    Raises ``CallControlError(400, 21220)`` and changes nothing when the branch has not
    answered (it is ringing, or being cancelled) or is already ending.
    """
    answered_at = dial.detach(branch)
    if answered_at is None:
        if branch.detached:
            why = "it has left its Dial already"
        elif branch.ended:
            why = "it has ended"
        elif branch.answered:
            why = "it is being hung up"
        else:
            why = "it is a Dial branch that has not answered"
        raise CallControlError(400, 21220, f"Call {branch.sid} is not in progress: {why}")
    return ChildCall(
        dial.services,
        branch,
        answered_at=answered_at,
        signalling=signalling,
        dialer=dialer,
        on_end=on_end,
    )


class ChildCall(SteeredLeg):
    """A branch that left its Dial (module docstring); start it with :meth:`run`."""

    def __init__(
        self,
        services: CallServices,
        branch: BranchLeg,
        *,
        answered_at: float,
        signalling: ChildSignalling,
        dialer: ChildDialer | None,
        on_end: Callable[[ChildCall], None],
    ) -> None:
        uac, peer, media = branch.uac, branch.peer, branch.media
        assert uac is not None and peer is not None and media is not None, "not answered"
        super().__init__(
            services,
            call_sid=branch.sid,
            media=media,
            info=branch.info,
            status="in-progress",
        )
        self._answered = True
        self.uac: UacInvite = uac
        self.peer = peer
        self.call_id = uac.invite.call_id
        self.noun = branch.target.noun
        self._signalling = signalling
        self._dialer = dialer
        self._on_end = on_end
        self._answered_at = answered_at

    # -- DialParent (a Dial of the child's RCML) ------------------------------------------

    @property
    def display_name(self) -> str | None:
        """A branch has no caller display name of its own."""
        return None

    def early_media(self) -> None:
        """Answered already: the ringback plays on the call (DIAL-32)."""

    def answer_now(self) -> None:
        """Answered already."""

    # -- running ------------------------------------------------------------------------

    async def run(self, document: Document) -> None:
        """Run ``document`` (and what replaces it) until the call ends; always cleans up."""
        try:
            await self._interpret(document)
        except CallGone:
            pass
        except asyncio.CancelledError:
            if not self._gone.is_set():
                raise
        except Exception:  # DOC-13: log with the CallSid, end this call cleanly
            log.exception("call.failed", call_sid=self.sid)
            self.error(12400, "internal failure while running the call")
            self._hang_up()
        finally:
            await self._cleanup()

    # -- events: the far end, the REST API, the server ----------------------------------

    def callee_bye(self) -> None:
        """The called party hung up (its BYE was answered 200 by the dialog layer)."""
        if not self._ended:
            self._end()

    def on_response(self, response: Response) -> None:
        """A response on the INVITE's dialog: a retransmitted 2xx is ACKed again."""
        result = self.uac.on_response(response)
        if result.ack is not None:
            self._signalling.send_ack(result.ack, self.peer)
        if result.bye is not None:
            self._signalling.send_bye(result.bye, self.peer)

    def end_by_api(self, status: str) -> None:
        """API-24: ``completed`` hangs up; ``canceled`` leaves an answered call alone."""
        if status == "completed":
            self._hang_up()

    def shutdown(self) -> None:
        """Server shutdown (CB-13): BYE."""
        self._hang_up()

    def _hang_up(self) -> None:
        if self._ended:
            return
        for bye in self.uac.end():
            with contextlib.suppress(Exception):
                self._signalling.send_bye(bye, self.peer)
        self._end()

    def _end(self) -> None:
        self._ended = True
        self._status = "completed"
        self._gone.set()
        self.media.stop_playback()
        if self._dial.caller_gone():
            return  # DIAL-44/DIAL-43: the Dial ends, then its action request
        task = self._interpreter
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _cleanup(self) -> None:
        self._hang_up()  # the document ran out of verbs: BYE (DOC-11)
        self._on_end(self)
        with contextlib.suppress(Exception):
            await self.media.close()
        duration = seconds(self.services.loop_time() - self._answered_at)
        end = self.services.utcnow()
        self.services.records.finish(self.sid, "completed", end, 200)
        noun = self.noun
        if noun.status_callback is not None and "completed" in noun.status_callback_events:
            params = status_callback_params(
                self.info, call_duration=duration, sip_response_code=200
            )
            self.services.callbacks.fire(
                self.sid,
                noun.status_callback,
                noun.status_callback_method,
                params,
                auth_token=self.services.auth_token,
                timestamp=end,
                last=True,
            )
        await self._dial.drain()

    # -- CallContext: answering, dialling and ending ---------------------------------------

    async def answer(self) -> None:
        """The call is answered already."""

    async def dial(self, node: Dial) -> DialResult:
        """A Dial of the child's RCML: this call is its (answered) parent."""
        self._check()
        if self._dialer is None:
            raise RuntimeError("this call cannot dial")
        return await self._dial.dial(self._dialer(self, node))

    async def hangup(self) -> None:
        """BYE (DOC-11)."""
        self._hang_up()

    async def reject(self, reason: Literal["rejected", "busy"]) -> None:
        """An answered call cannot be rejected: BYE (VRB-7)."""
        self._hang_up()

    async def fail(self, code: int | None = None, message: str | None = None) -> None:
        """An RCML error on an answered call: BYE (HOOK-9)."""
        self._hang_up()
