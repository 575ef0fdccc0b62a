"""What lets the REST API replace a leg's RCML (API-25), also in the middle of a `<Dial>`.

:class:`DialSlot` runs a leg's Dial in a task of its own, so a redirect can take the leg
out of it without waiting: :meth:`DialSlot.leave` ends the Dial at once (every branch as
DIAL-23 says: CANCEL for the ringing ones, BYE for a whispering one or the winner) and the
leg's interpreter is cancelled; the Dial's task lives on only to see its branches end (a
CANCEL waits for its 487, CB-8: one ``completed`` each) and its outcome goes to nobody: the
Dial's action URL is not requested and no verb after it runs.  The leg drains those tasks
before it is gone (:meth:`DialSlot.drain`).

:class:`SteeredLeg` is a leg that runs documents one after another and restarts its
interpreter on a redirect: an inbound call, or a branch that left its Dial
(:class:`~dialtone.calls.child.ChildCall`).  A second redirect before the first took effect
replaces it (the last one wins) without cancelling the interpreter twice.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from dialtone.calls.leg import Leg
from dialtone.calls.services import CallServices
from dialtone.media.session import MediaSession
from dialtone.rcml.context import CallState, DialResult
from dialtone.rcml.interpreter import run_call
from dialtone.rcml.nodes import Dial, Document
from dialtone.webhooks.params import CallInfo

if TYPE_CHECKING:
    from dialtone.calls.dial import DialRun

__all__ = ["DialSlot", "SteeredLeg"]


class DialSlot:
    """The Dial running on one leg, if any, and the Dials a redirect left (module docstring)."""

    def __init__(self) -> None:
        self.run: DialRun | None = None
        self._left: set[asyncio.Task[DialResult]] = set()

    @property
    def active(self) -> bool:
        """Whether a Dial is running on the leg (and has not been left)."""
        return self.run is not None and not self.run.left

    async def dial(self, run: DialRun) -> DialResult:
        """Run ``run`` to its outcome.  Cancelled after :meth:`leave`, the Dial's task goes
        on by itself; cancelled otherwise (the leg's task is torn down), it is cancelled too.
        """
        task = asyncio.get_running_loop().create_task(run.run(), name="dial")
        self.run = run
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if run.left and not task.done():
                self._left.add(task)
                task.add_done_callback(self._left.discard)
            else:
                task.cancel()
            raise
        finally:
            if self.run is run:
                self.run = None

    def leave(self) -> None:
        """API-25: the leg leaves its Dial, which ends at once (no action request)."""
        if self.run is not None:
            self.run.parent_left()

    def caller_gone(self) -> bool:
        """The leg hung up (DIAL-34, DIAL-44): its Dial ends, then makes its action request
        (DIAL-43).  False when no Dial is running."""
        if not self.active:
            return False
        assert self.run is not None
        self.run.caller_gone()
        return True

    async def drain(self) -> None:
        """Wait for the Dials this leg left to see their branches end."""
        if self._left:
            await asyncio.gather(*list(self._left), return_exceptions=True)


class SteeredLeg(Leg):
    """A leg whose documents a redirect replaces (module docstring)."""

    def __init__(
        self,
        services: CallServices,
        *,
        call_sid: str,
        media: MediaSession,
        info: CallInfo,
        status: CallState,
    ) -> None:
        super().__init__(services, call_sid=call_sid, media=media, info=info, status=status)
        self._dial = DialSlot()
        self._redirect: Document | None = None
        self._interpreter: asyncio.Task[object] | None = None
        self._ended = False

    @property
    def dialing(self) -> bool:
        """Whether a Dial is running on this call."""
        return self._dial.active

    @property
    def ended(self) -> bool:
        """Whether the call has ended."""
        return self._ended

    def redirect(self, document: Document) -> None:
        """API-25: stop the current verb (or leave the Dial) and run ``document`` instead."""
        if self._ended:
            return
        pending = self._redirect is not None  # the interpreter has not restarted yet
        self._redirect = document
        self._dial.leave()
        self.media.stop_playback()
        task = self._interpreter
        if not pending and task is not None and task is not asyncio.current_task():
            task.cancel()

    # -- CallContext: what the subclass does (SIP) ----------------------------------------

    async def answer(self) -> None:
        """Answer the call (DOC-7)."""
        raise NotImplementedError

    async def dial(self, node: Dial) -> DialResult:
        """Run the Dial on this call, in :attr:`_dial` (so a redirect can leave it)."""
        raise NotImplementedError

    async def hangup(self) -> None:
        """End the call (DOC-11)."""
        raise NotImplementedError

    async def reject(self, reason: Literal["rejected", "busy"]) -> None:
        """``<Reject>`` (VRB-7)."""
        raise NotImplementedError

    async def fail(self, code: int | None = None, message: str | None = None) -> None:
        """End the call after an RCML error (HOOK-9)."""
        raise NotImplementedError

    # -- running documents -------------------------------------------------------------------

    async def _first_document(self) -> Document | None:
        """The document to run when none was given (an inbound call's voice URL)."""
        return None

    async def _interpret(self, document: Document | None) -> bool:
        """Run ``document`` (None: :meth:`_first_document`) and whatever replaces it.

        Returns False when there was no first document to run (the call must fail);
        CallGone and a cancellation not caused by a redirect propagate.
        """
        self._interpreter = task = asyncio.current_task()
        assert task is not None
        while True:
            try:
                if document is None and self._redirect is None:
                    document = await self._first_document()
                    if document is None:
                        return False
                if self._redirect is not None:
                    document, self._redirect = self._redirect, None
                assert document is not None
                await run_call(self, document)
                return True
            except asyncio.CancelledError:
                if self._redirect is None or self._gone.is_set():
                    raise
                task.uncancel()  # API-25: the new document runs instead
