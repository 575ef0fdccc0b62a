"""What a `<Dial>` needs from the rest of the call layer: its SIP, its parent, its settings.

:class:`Signalling` is the call manager's half (sending INVITE, CANCEL, ACK and BYE, and
routing what comes back to the :class:`~dialtone.calls.dial.DialRun`), :class:`DialParent`
the call the Dial runs on (the caller's leg), :class:`DialSettings` the process-wide knobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dialtone.calls.branch import BranchLeg
from dialtone.config import OutboundProxy
from dialtone.media.session import MediaSession
from dialtone.registrar.location import Binding
from dialtone.sip.dialog_set import DialogSet
from dialtone.sip.events import Peer
from dialtone.sip.message import Request
from dialtone.webhooks.params import CallInfo

if TYPE_CHECKING:
    from dialtone.calls.dial import DialRun

__all__ = ["DialParent", "DialSettings", "Signalling"]


class Signalling(Protocol):
    """The SIP the Dial sends, and the routing of what comes back (the call manager)."""

    def send_invite(self, branch: BranchLeg, invite: Request, dial: DialRun) -> str:
        """Send ``invite`` for ``branch``; route its responses to ``dial``; its id."""
        ...

    def cancel_invite(self, transaction: str) -> None:
        """CANCEL a pending INVITE (sent once a provisional has arrived, RFC 3261 §9.1)."""
        ...

    def send_ack(self, ack: Request, peer: Peer) -> None:
        """Send the ACK of a 2xx (no transaction)."""
        ...

    def send_bye(self, bye: Request, peer: Peer) -> None:
        """Send a BYE (a client transaction whose answer nobody waits for)."""
        ...

    def release(self, branch: BranchLeg) -> None:
        """Stop routing to ``branch``: the Dial is over."""
        ...

    def contact(self, transport: str) -> str:
        """dialtone's Contact URI for ``transport``."""
        ...

    @property
    def dialogs(self) -> DialogSet:
        """The registry in-dialog requests are matched against."""
        ...


class DialParent(Protocol):
    """What the Dial needs of the call it runs on (the caller's leg)."""

    @property
    def call_sid(self) -> str:
        """The parent's CallSid (ParentCallSid of every branch)."""
        ...

    @property
    def answered(self) -> bool:
        """Whether the parent has been answered."""
        ...

    @property
    def info(self) -> CallInfo:
        """The parent's REQ-1 facts, status now."""
        ...

    @property
    def media(self) -> MediaSession:
        """The parent's media session (ringback, bridge)."""
        ...

    @property
    def display_name(self) -> str | None:
        """The caller's display name, copied into the branches' From (LEG-1)."""
        ...

    def early_media(self) -> None:
        """Send ``180 Ringing`` with the SDP answer (DIAL-30)."""
        ...

    def answer_now(self) -> None:
        """Send ``200 OK`` with the SDP answer (DIAL-33)."""
        ...


@dataclass(frozen=True, slots=True)
class DialSettings:
    """The process-wide knobs of every Dial."""

    domain: str
    proxy: OutboundProxy | None
    whisper_timeout: float = 60.0
    client_sid: Callable[[str], str | None] = lambda login: None
    bindings: Callable[[str], list[Binding]] = lambda sid: []
