"""``<Dial>`` (DIAL-1..): not available yet — a stub the interpreter skips with a warning.

The real Dial (forking to Clients, Numbers and SIP URIs, whispers, the action request) comes
with the call layer.  Until then the verb returns :class:`~dialtone.rcml.outcome.Unavailable`:
the interpreter records warning 12200 naming the element and runs the next verb, so a
document such as ``<Dial>…</Dial><Say>Sorry</Say>`` still reaches its fallback prompt.  The
call is not answered (DOC-7: Dial answers only when it bridges).
"""

from __future__ import annotations

from dialtone.rcml.context import CallContext
from dialtone.rcml.nodes import Dial
from dialtone.rcml.outcome import Outcome, Unavailable

__all__ = ["UNAVAILABLE_CODE", "run"]

#: The warning recorded for a skipped Dial (12200, log 1: "not yet supported").
UNAVAILABLE_CODE = 12200


async def run(node: Dial, ctx: CallContext) -> Outcome:
    """Skip the Dial: the interpreter warns and goes on with the next verb."""
    count = len(node.nouns)
    nouns = f"{count} destination{'s' if count != 1 else ''}"
    return Unavailable(UNAVAILABLE_CODE, f"Dial is not available yet; skipped ({nouns})")
