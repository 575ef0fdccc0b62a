"""``<Redirect>`` (VRB-8): fetch the document at a URL; it replaces the current one.

A Redirect does not answer the call (DOC-7).  The request carries the call's REQ-1
parameters and nothing else; a failure has no fallback (HOOK-9): the context records the
Notification and the interpreter ends the call as "RCML error".
"""

from __future__ import annotations

from dialtone.rcml.context import CallContext
from dialtone.rcml.nodes import Redirect
from dialtone.rcml.outcome import FAILED, Outcome, Replace

__all__ = ["run"]


async def run(node: Redirect, ctx: CallContext) -> Outcome:
    """Request ``node.url`` with ``node.method``: Replace with the document, or Failed."""
    document = await ctx.fetch(node.url, node.method)
    if document is None:
        return FAILED
    return Replace(document)
