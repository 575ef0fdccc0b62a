"""``<Pause>`` (VRB-3): ``length`` seconds of silence.

A Pause does not answer the call (DOC-7): on an unanswered call the caller keeps hearing
ringing.  Inside ``<Gather>`` the silence is played as a source so that the first digit ends
it like any other prompt (VRB-5).
"""

from __future__ import annotations

from dialtone.media.sources import Silence
from dialtone.rcml.context import CallContext, PlayResult
from dialtone.rcml.nodes import Pause
from dialtone.rcml.outcome import NEXT, Outcome

__all__ = ["prompt", "run"]


async def run(node: Pause, ctx: CallContext) -> Outcome:
    """Stay silent for ``node.length`` seconds, then go on with the next verb."""
    await ctx.pause(node.length)
    return NEXT


async def prompt(node: Pause, ctx: CallContext, *, interrupt_on_digit: bool = False) -> PlayResult:
    """Silence inside ``<Gather>`` (the call is answered): a digit ends it early."""
    return await ctx.play(Silence(node.length), interrupt_on_digit=interrupt_on_digit)
