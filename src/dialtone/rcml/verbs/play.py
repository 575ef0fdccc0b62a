"""``<Play>`` (VRB-2): play the audio at a URL ``loop`` times, or send DTMF ``digits``.

The call is answered first (DOC-7), also for ``digits``.  ``digits`` are sent once as
RFC 4733 events (``w``/``W`` pauses are the context's business); ``loop`` applies to audio
only.  ``ctx.audio(url)`` returning None means the context recorded a warning (fetch
failure 11200/11205…, unplayable audio 13420): the verb is skipped and the next one runs.
"""

from __future__ import annotations

from dialtone.media.sources import Source
from dialtone.rcml.context import CallContext, PlayResult
from dialtone.rcml.nodes import Play
from dialtone.rcml.outcome import NEXT, Outcome
from dialtone.rcml.verbs import PLAYED, answer_first, play_looped

__all__ = ["prompt", "run"]


async def run(node: Play, ctx: CallContext) -> Outcome:
    """Answer, play (or send the digits), go on with the next verb."""
    await answer_first(ctx)
    await prompt(node, ctx)
    return NEXT


async def prompt(node: Play, ctx: CallContext, *, interrupt_on_digit: bool = False) -> PlayResult:
    """Play without answering; inside ``<Gather>`` the first digit stops the audio (VRB-5).

    Sending ``digits`` is never interrupted.  Audio that cannot be fetched or played ends
    the prompt at once, as played.
    """
    if node.digits is not None:
        await ctx.send_digits(node.digits)
        return PLAYED
    url = node.url
    if url is None:  # the parser sets exactly one of url and digits
        return PLAYED

    async def audio() -> Source | None:
        return await ctx.audio(url)

    result = await play_looped(ctx, audio, node.loop, interrupt_on_digit=interrupt_on_digit)
    return result or PLAYED
