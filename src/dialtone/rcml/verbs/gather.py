"""``<Gather>`` (VRB-4, VRB-5): collect DTMF digits, then request ``action``.

The rules, in the order they apply:

1. The call is answered (DOC-7) and digits pressed before the Gather are forgotten.
2. The nested ``<Say>``, ``<Play>`` and ``<Pause>`` run in order; the first digit stops
   them at once, and that digit counts (the context keeps it queued for ``next_digit``).
3. The ``timeout`` timer starts when the prompts end (at once without prompts) and restarts
   after each digit: ``ctx.next_digit(timeout)`` is that timer.
4. The Gather submits when ``numDigits`` digits have arrived, when ``finishOnKey`` is
   pressed (the key is not part of ``Digits``; an empty ``finishOnKey`` means no key), or
   when the timer expires after at least one digit: ``action`` is requested with ``method``
   and ``Digits``, and its document replaces the current one (DOC-6).
5. With no digit (timer expiry, or ``finishOnKey`` alone) the next verb runs, or, with
   ``actionOnEmptyResult="true"``, ``action`` is requested without ``Digits``.

A failed request ends the call as "RCML error" without fallback (HOOK-9).  ``action``
already holds the document's URL when the attribute was absent (the parser fills it in, also
for whispers, WSP-10).
"""

from __future__ import annotations

from dialtone.rcml.context import CallContext, PlayResult
from dialtone.rcml.nodes import Gather, GatherChild, Pause, Play, Say
from dialtone.rcml.outcome import FAILED, NEXT, Outcome, Replace
from dialtone.rcml.verbs import answer_first
from dialtone.rcml.verbs import pause as pause_verb
from dialtone.rcml.verbs import play as play_verb
from dialtone.rcml.verbs import say as say_verb

__all__ = ["collect", "run"]


async def run(node: Gather, ctx: CallContext) -> Outcome:
    """Answer, prompt, collect digits and submit them (or fall through) per VRB-5."""
    await answer_first(ctx)
    ctx.clear_digits()
    for child in node.children:
        result = await _prompt(child, ctx)
        if not result.completed:
            break
    digits = await collect(node, ctx)
    if digits:
        return await _submit(node, ctx, {"Digits": digits})
    if node.action_on_empty_result:
        return await _submit(node, ctx, None)
    return NEXT


async def collect(node: Gather, ctx: CallContext) -> str:
    """The digits entered once the prompts are over: ``""`` when none came in time.

    Digits pressed during the prompts are still queued in the context and come first.
    """
    digits = ""
    while True:
        digit = await ctx.next_digit(node.timeout)
        if digit is None:  # the timer expired: submit what we have (maybe nothing)
            return digits
        if node.finish_on_key and digit == node.finish_on_key:
            return digits
        digits += digit
        if node.num_digits is not None and len(digits) >= node.num_digits:
            return digits


async def _prompt(child: GatherChild, ctx: CallContext) -> PlayResult:
    """Run one nested verb so that a digit interrupts it."""
    if isinstance(child, Say):
        return await say_verb.prompt(child, ctx, interrupt_on_digit=True)
    if isinstance(child, Play):
        return await play_verb.prompt(child, ctx, interrupt_on_digit=True)
    if isinstance(child, Pause):
        return await pause_verb.prompt(child, ctx, interrupt_on_digit=True)
    raise TypeError(f"Gather cannot hold {type(child).__name__}")  # the parser forbids it


async def _submit(node: Gather, ctx: CallContext, extra: dict[str, str] | None) -> Outcome:
    """Request ``action``: its document replaces the current one, or the call fails."""
    document = await ctx.fetch(node.action, node.method, extra)
    if document is None:
        return FAILED
    return Replace(document)
