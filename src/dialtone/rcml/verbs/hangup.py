"""``<Hangup/>`` (VRB-6): end the call; in a whisper, decline the branch (WSP-6).

On a call the context ends it as DOC-11 says (BYE when answered; 603, or 486/480 after a
Dial outcome, when not).  In a whisper nothing is sent: the Dial that runs the whisper ends
the branch when it learns of the decline.
"""

from __future__ import annotations

from dialtone.rcml.context import CallContext
from dialtone.rcml.nodes import Hangup
from dialtone.rcml.outcome import Declined, HungUp, Outcome

__all__ = ["run"]


async def run(node: Hangup, ctx: CallContext) -> Outcome:
    """Hang up, or decline in a whisper."""
    if ctx.whisper:
        return Declined("Hangup")
    await ctx.hangup()
    return HungUp()
