"""The RCML interpreter: a short loop over the current document's verbs (design.md §9.6).

:func:`run_call` runs a validated document on a call (or on a Dial branch as a whisper)
through its :class:`~dialtone.rcml.context.CallContext`.  Each verb module does its own work
and returns an :mod:`~dialtone.rcml.outcome`; this loop only decides what comes next:

- ``Next``: the next verb; the end of the document hangs up (DOC-11 via ``ctx.hangup()``),
  or, in a whisper, accepts the branch (WSP-5);
- ``Replace``: the fetched document replaces the rest (DOC-6), unless it is the 20th in a
  row without ``<Say>``, ``<Play>``, ``<Pause>``, ``<Gather>`` or ``<Dial>`` (DOC-8: error
  82020);
- ``HungUp``/``Rejected``/``Declined``: the verb ended the call or declined the branch;
- ``Failed``: a request failed and its Notification is recorded: ``ctx.fail()`` (HOOK-9);
- ``Unavailable``: warning, then the next verb.

``CallGone`` from the context ends the run quietly.  Any other exception is DOC-13: logged
with the CallSid, recorded as 12400 and the call ended as "RCML error"; it never leaves
:func:`run_call`.  Cancellation (the call's task group ending) is not caught.

In a whisper the interpreter never ends the branch itself: accept, decline and failure are
decisions for the Dial that runs it (WSP-5..WSP-7), returned as the :class:`Ending`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import structlog

from dialtone.rcml.context import CallContext, CallGone
from dialtone.rcml.nodes import (
    Dial,
    Document,
    Gather,
    Hangup,
    Pause,
    Play,
    Redirect,
    Reject,
    Say,
    Verb,
)
from dialtone.rcml.outcome import (
    Declined,
    Ending,
    EndingKind,
    Failed,
    HungUp,
    Next,
    Outcome,
    Rejected,
    Replace,
    Unavailable,
)
from dialtone.rcml.verbs import dial, gather, hangup, pause, play, redirect, reject, say

__all__ = ["MAX_SILENT_DOCUMENTS", "VERBS", "run_call"]

log = structlog.get_logger("dialtone.rcml")

#: DOC-8: this many documents in a row without a verb that does something is a loop.
MAX_SILENT_DOCUMENTS: Final = 20
#: The verbs that count as doing something for DOC-8.
_ACTIVE_VERBS: Final = (Say, Play, Pause, Gather, Dial)

VerbRun = Callable[[Any, CallContext], Awaitable[Outcome]]

#: Node type → the ``run`` of its verb module.
VERBS: Final[Mapping[type[Verb], VerbRun]] = {
    Say: say.run,
    Play: play.run,
    Pause: pause.run,
    Gather: gather.run,
    Dial: dial.run,
    Hangup: hangup.run,
    Reject: reject.run,
    Redirect: redirect.run,
}

_GONE = Ending(EndingKind.GONE)


async def run_call(ctx: CallContext, first: Document, *, whisper: bool | None = None) -> Ending:
    """Run ``first`` and the documents it leads to; return how it ended.

    ``whisper`` defaults to ``ctx.whisper``; the verbs always follow ``ctx.whisper``, so the
    two should agree.  On a call the context has been told how to end it (``hangup``,
    ``reject`` or ``fail``) when this returns, except for ``GONE``.  In a whisper nothing
    ends the branch: ``ACCEPTED`` (WSP-5), ``DECLINED`` (WSP-6), ``FAILED`` (WSP-7) and
    ``GONE`` (the called party hung up) are for the Dial to act upon.
    """
    run = _Run(ctx, ctx.whisper if whisper is None else whisper, first)
    try:
        return await run.documents()
    except CallGone:
        return _GONE
    except Exception as exc:  # DOC-13: one call's bug never escapes
        return await run.internal_failure(exc)


class _Run:
    """The state of one :func:`run_call`: where it is, for the loop and for messages."""

    __slots__ = ("ctx", "document", "verb", "whisper")

    def __init__(self, ctx: CallContext, whisper: bool, first: Document) -> None:
        self.ctx = ctx
        self.whisper = whisper
        self.document = first
        self.verb: Verb | None = None

    async def documents(self) -> Ending:
        """The loop: one verb at a time, documents replacing each other."""
        silent = 0  # documents in a row, finished, without an active verb (DOC-8)
        active = False
        index = 0
        while True:
            verbs = self.document.verbs
            if index >= len(verbs):
                self.verb = None
                return await self._end_of_document()
            self.verb = verb = verbs[index]
            index += 1
            active = active or isinstance(verb, _ACTIVE_VERBS)
            outcome = await VERBS[type(verb)](verb, self.ctx)
            if isinstance(outcome, Next):
                continue
            if isinstance(outcome, Replace):
                silent = 0 if active else silent + 1
                if silent >= MAX_SILENT_DOCUMENTS:
                    return await self._redirect_loop(outcome.document)
                self.document, self.verb, index, active = outcome.document, None, 0, False
                continue
            if isinstance(outcome, Unavailable):
                self.ctx.warn(outcome.code, outcome.message, element=verb.element, line=verb.line)
                continue
            return await self._ending(outcome)

    async def _ending(self, outcome: HungUp | Rejected | Declined | Failed) -> Ending:
        """The verb ended the run."""
        if isinstance(outcome, HungUp):
            return Ending(EndingKind.COMPLETED)
        if isinstance(outcome, Rejected):
            return Ending(EndingKind.REJECTED, reason=outcome.reason)
        if isinstance(outcome, Declined):
            return Ending(EndingKind.DECLINED)
        if not isinstance(outcome, Failed):  # a verb's bug: DOC-13
            raise TypeError(f"verb returned {outcome!r}, not an Outcome")
        if not self.whisper:  # the Notification is recorded (HOOK-9)
            await self.ctx.fail()
        return Ending(EndingKind.FAILED)

    async def _end_of_document(self) -> Ending:
        """No verb left: a whisper accepts (WSP-5); a call hangs up (DOC-11)."""
        if self.whisper:
            return Ending(EndingKind.ACCEPTED)
        await self.ctx.hangup()
        return Ending(EndingKind.COMPLETED)

    async def _redirect_loop(self, next_document: Document) -> Ending:
        """DOC-8: error 82020 instead of running ``next_document``."""
        message = (
            f"redirect loop: {MAX_SILENT_DOCUMENTS} documents in a row without Say, Play, "
            f"Pause, Gather or Dial; the last one, {self.document.url}, led to "
            f"{next_document.url}"
        )
        log.warning("rcml.redirect_loop", call_sid=self.ctx.call_sid, url=self.document.url)
        return await self._fail(82020, message)

    async def internal_failure(self, exc: Exception) -> Ending:
        """DOC-13: log with the CallSid, record 12400, end as "RCML error"; never raise."""
        verb, url = self.verb, self.document.url
        message = f"internal failure ({type(exc).__name__}) while running {url}"
        try:
            call_sid: str | None = self.ctx.call_sid
        except Exception:
            call_sid = None
        log.error(
            "rcml.internal_error",
            call_sid=call_sid,
            url=url,
            element=verb.element if verb is not None else None,
            exc_info=exc,
        )
        try:
            return await self._fail(12400, message)
        except CallGone:
            return Ending(EndingKind.FAILED, code=12400)
        except Exception as again:
            log.error("rcml.fail_failed", call_sid=call_sid, exc_info=again)
            return Ending(EndingKind.FAILED, code=12400)

    async def _fail(self, code: int, message: str) -> Ending:
        """Record error ``code`` and end the call with it (a whisper: only record)."""
        verb = self.verb
        element = verb.element if verb is not None else None
        line = verb.line if verb is not None else None
        self.ctx.error(code, message, element=element, line=line)
        if not self.whisper:
            await self.ctx.fail(code, message)
        return Ending(EndingKind.FAILED, code=code)
