"""``<Reject>`` (VRB-7): refuse an unanswered call with 603 (``rejected``) or 486 (``busy``).

In a whisper it declines the branch whatever the reason (WSP-6) and sends nothing: the Dial
ends the branch.  On any other answered call (an answered inbound call, an outbound-api
call) it acts as ``<Hangup/>`` and records warning 12200.
"""

from __future__ import annotations

from dialtone.rcml.context import CallContext
from dialtone.rcml.nodes import Reject
from dialtone.rcml.outcome import Declined, HungUp, Outcome, Rejected, RejectReason

__all__ = ["run"]


async def run(node: Reject, ctx: CallContext) -> Outcome:
    """Reject, decline (whisper) or hang up (answered call)."""
    if ctx.whisper:
        return Declined("Reject")
    if ctx.answered:
        ctx.warn(
            12200,
            f"Reject on an answered call acts as Hangup (reason {node.reason!r} not sent)",
            element=node.element,
            line=node.line,
        )
        await ctx.hangup()
        return HungUp()
    reason: RejectReason = "busy" if node.reason == "busy" else "rejected"
    await ctx.reject(reason)
    return Rejected(reason)
