"""The RCML verbs, one module each (design.md §4, §9 point 6), and what they share.

Every verb module has ``async def run(node, ctx) -> Outcome``: it works only through the
:class:`~dialtone.rcml.context.CallContext` and tells the interpreter how to go on
(:mod:`dialtone.rcml.outcome`).  The prompts a ``<Gather>`` may hold (``say``, ``play``,
``pause``) also have ``async def prompt(node, ctx, *, interrupt_on_digit) -> PlayResult``,
the same work without answering, which Gather runs so that the first digit stops them.

This package module holds the helpers those verbs share: answering first (DOC-7) and playing
a source ``loop`` times (VRB-1, VRB-2).  It imports no verb module; the interpreter owns the
table from node type to verb.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import count

from dialtone.media.sources import Source
from dialtone.rcml.context import CallContext, PlayResult

__all__ = ["PLAYED", "CountingSource", "answer_first", "play_looped"]

#: The result of a prompt that had nothing to interrupt (digits sent, audio skipped).
PLAYED = PlayResult(completed=True)


async def answer_first(ctx: CallContext) -> None:
    """Answer an unanswered call before the verb's first sound (DOC-7)."""
    if not ctx.answered:
        await ctx.answer()


class CountingSource:
    """A :class:`~dialtone.media.sources.Source` that counts the frames pulled from it.

    :func:`play_looped` uses the count to stop ``loop="0"`` repeating audio that has no
    frames at all, which would otherwise spin without ever waiting.
    """

    __slots__ = ("frames", "inner")

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.frames = 0

    def next_frame(self) -> bytes | None:
        """The inner source's next frame."""
        frame = self.inner.next_frame()
        if frame is not None:
            self.frames += 1
        return frame

    def __repr__(self) -> str:
        return f"CountingSource({self.inner!r})"


async def play_looped(
    ctx: CallContext,
    make_source: Callable[[], Awaitable[Source | None]],
    loop: int,
    *,
    interrupt_on_digit: bool = False,
) -> PlayResult | None:
    """Play a fresh source from ``make_source`` ``loop`` times (0: until the call ends).

    Returns the last pass's result: not ``completed`` when a digit interrupted it (then no
    further pass starts), or None when ``make_source`` gave nothing on the first pass.  A
    later None, or a pass that played no frame, ends the looping early.  ``ctx`` raises
    :class:`~dialtone.rcml.context.CallGone` when the call ends, which is how ``loop=0``
    stops.
    """
    result: PlayResult | None = None
    passes = count() if loop == 0 else range(loop)
    for _ in passes:
        source = await make_source()
        if source is None:
            break
        counted = CountingSource(source)
        result = await ctx.play(counted, interrupt_on_digit=interrupt_on_digit)
        if not result.completed or counted.frames == 0:
            break
    return result
