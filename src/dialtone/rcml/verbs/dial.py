"""``<Dial>`` (dial.md): ring the branches, bridge the winner, then the action URL.

The ringing, the race and the bridge belong to the call layer (``ctx.dial``); this verb only
decides what the document does afterwards (DIAL-41..DIAL-43):

- with ``action``, the action is requested exactly once with the ``Dial…`` parameters; its
  RCML replaces the rest of the document while the caller is connected (DIAL-42), and is read
  and discarded when the caller is gone (DIAL-43);
- without ``action``, the next verb runs, or nothing when the caller is gone.

``record`` other than ``false``/``do-not-record`` is not implemented yet (DIAL-38): warning
12200, and the Dial runs unrecorded.
"""

from __future__ import annotations

from dialtone.rcml.context import CallContext
from dialtone.rcml.nodes import Dial
from dialtone.rcml.outcome import FAILED, NEXT, HungUp, Outcome, Replace

__all__ = ["NOT_RECORDED_CODE", "run"]

#: DIAL-38 interim: the warning recorded when ``record`` asks for a recording.
NOT_RECORDED_CODE = 12200


async def run(node: Dial, ctx: CallContext) -> Outcome:
    """Dial, then go on as DIAL-42/DIAL-43 say."""
    if node.record not in ("false", "do-not-record"):
        ctx.warn(
            NOT_RECORDED_CODE,
            f"record={node.record!r} is not supported yet; the Dial runs unrecorded",
            element=node.element,
            line=node.line,
        )
    result = await ctx.dial(node)
    if node.action is not None:
        document = await ctx.fetch(node.action, node.method, result.params())
        if result.caller_gone:
            return HungUp()
        return FAILED if document is None else Replace(document)
    return HungUp() if result.caller_gone else NEXT
