"""``<Say>`` (VRB-1): speak text with espeak-ng, ``loop`` times.

The call is answered first (DOC-7).  Each pass asks the context for a fresh speech source
(``ctx.speech`` caches per text, voice and language, so later passes cost nothing); the
context records warning 13511 when the voice or language had to be mapped.  ``loop="0"``
repeats until the call ends, which the context reports with ``CallGone``.
"""

from __future__ import annotations

from dialtone.media.sources import Source
from dialtone.rcml.context import CallContext, PlayResult
from dialtone.rcml.nodes import Say
from dialtone.rcml.outcome import NEXT, Outcome
from dialtone.rcml.verbs import PLAYED, answer_first, play_looped

__all__ = ["prompt", "run"]


async def run(node: Say, ctx: CallContext) -> Outcome:
    """Answer, speak ``node.text`` ``node.loop`` times, go on with the next verb."""
    await answer_first(ctx)
    await prompt(node, ctx)
    return NEXT


async def prompt(node: Say, ctx: CallContext, *, interrupt_on_digit: bool = False) -> PlayResult:
    """Speak without answering (the caller did); inside ``<Gather>`` the first digit stops
    it (VRB-5) and the result is not ``completed``."""

    async def speech() -> Source:
        return await ctx.speech(node.text, node.voice, node.language)

    result = await play_looped(ctx, speech, node.loop, interrupt_on_digit=interrupt_on_digit)
    return result or PLAYED
