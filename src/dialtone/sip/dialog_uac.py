"""The dialogs of an INVITE dialtone sends (RFC 3261 §12.1.2, §13.2.2; spec DIAL-24).

An outbound INVITE (a Dial branch, an API call) may create several dialogs: a forking
proxy relays provisional responses with different To tags (one early dialog each) and
possibly several 2xx (§13.2.2.4).  :class:`UacInvite` owns that INVITE and its small
map of :class:`UacDialog` by remote tag; :meth:`UacInvite.on_response` turns each
response into what to send:

- a 1xx with a To tag creates or refreshes an early dialog;
- the first 2xx is kept: its dialog is confirmed and ACKed (``answered``);
- a 2xx of another fork, or any 2xx once the branch was ended (:meth:`UacInvite.end`,
  a CANCEL race), is ACKed and at once BYEd (§13.2.2.4, spec DIAL-24, LEG-6);
- a retransmitted 2xx gets the same ACK again;
- a 300-699 final ends the early dialogs (§12.3).
"""

from __future__ import annotations

from dialtone.sip.dialog import (
    CONFIRMED,
    EARLY,
    TERMINATED,
    Dialog,
    UacResult,
    contact_target,
    record_route,
    uac_result,
)
from dialtone.sip.dialog_set import DialogSet
from dialtone.sip.errors import SipParseError
from dialtone.sip.message import Request, Response
from dialtone.sip.uri import SipUri

__all__ = ["UacDialog", "UacInvite"]

_CREDENTIALS = ("Authorization", "Proxy-Authorization")


class UacDialog(Dialog):
    """A dialog in which dialtone is the caller (the UAC of the initial INVITE).

    ``invite`` is that INVITE (its credentials go into the ACK, §13.2.2.4; its Contact
    is our local target; its SDP our current one).
    """

    __slots__ = ("_credentials", "invite")

    def __init__(self, invite: Request, response: Response) -> None:
        """Prefer :meth:`from_response`, which checks the response may create a dialog."""
        # §12.1.2: route set = Record-Route of the response, reversed; remote target =
        # its Contact; local sequence = the INVITE's CSeq; remote sequence empty; local
        # URI/tag = From, remote URI/tag = the response's To.
        status = response.status
        super().__init__(
            call_id=invite.call_id,
            local_party=invite.from_,
            remote_party=response.to,
            remote_target=_remote_target(invite, response),
            route_set=reversed(record_route(response, strict=False)),
            local_seq=invite.cseq.seq,
            local_contact=invite.headers.get("Contact"),
            local_sdp=invite.body
            if invite.body and invite.content_type == "application/sdp"
            else None,
            state=CONFIRMED if 200 <= status < 300 else EARLY,
        )
        self.invite = invite
        # Header lines are (name, value) tuples with canonical names: kept as they are.
        # Most INVITEs carry no credentials: the keys say so without a loop.
        headers = invite.headers
        keys = headers._keys
        if "authorization" in keys or "proxy-authorization" in keys:
            lines = headers._items
            self._credentials = tuple([line for line in lines if line[0] in _CREDENTIALS])
        else:
            self._credentials = ()

    @classmethod
    def from_response(cls, invite: Request, response: Response) -> UacDialog:
        """The dialog ``response`` (a 1xx with To tag: early; a 2xx: confirmed) creates.

        A 2xx without To tag (RFC 2543) still makes a dialog, with remote tag ``""``.
        """
        status = response.status
        if not (100 < status < 300):
            raise ValueError(f"a {status} creates no dialog")
        if status < 200 and response.to.tag is None:
            raise ValueError("a provisional without To tag creates no dialog (§12.1)")
        return cls(invite, response)

    def update(self, response: Response) -> None:
        """A later 1xx/2xx of this dialog: its Contact refreshes the remote target; a 2xx
        confirms an early dialog and recomputes the route set (§13.2.2.4)."""
        self.remote_target = contact_target(response, self.remote_target)
        if 200 <= response.status < 300 and self.state is EARLY:
            self.state = CONFIRMED
            self.route_set = tuple(reversed(record_route(response, strict=False)))

    def _ack_headers(self, seq: int) -> tuple[tuple[str, str], ...]:
        # §13.2.2.4: the ACK of the initial INVITE carries the INVITE's credentials.
        return self._credentials if seq == self.invite.cseq.seq else ()


class UacInvite:
    """One INVITE of ours and the dialogs its responses create (module docstring).

    With ``dialogs``, every dialog created is added to that :class:`DialogSet` (they
    leave it when terminated).  ``kept`` is the dialog of the 2xx the branch keeps;
    ``ending`` is set by :meth:`end`.
    """

    __slots__ = ("_registry", "dialogs", "ending", "final_status", "invite", "kept")

    def __init__(self, invite: Request, *, dialogs: DialogSet | None = None) -> None:
        if invite.method != "INVITE":
            raise ValueError(f"not an INVITE: {invite.method}")
        self.invite = invite
        self.dialogs: dict[str, UacDialog] = {}
        self.kept: UacDialog | None = None
        self.ending = False
        self.final_status: int | None = None
        self._registry = dialogs

    def early(self) -> list[UacDialog]:
        """The early dialogs (one per fork that rang with a To tag)."""
        return [d for d in self.dialogs.values() if d.state is EARLY]

    def belongs(self, response: Response) -> bool:
        """True when ``response`` answers this INVITE (Call-ID, From tag, CSeq)."""
        try:
            cseq = response.cseq
            return (
                cseq.method == "INVITE"
                and cseq.seq == self.invite.cseq.seq
                and response.call_id == self.invite.call_id
                and response.from_.tag == self.invite.from_.tag
            )
        except SipParseError:
            return False

    def on_response(self, response: Response) -> UacResult:
        """What to send for ``response`` (``ResponseReceived`` of the INVITE transaction);
        see the module docstring.  A response to another request gives an empty result.
        """
        if not self.belongs(response):
            return UacResult()
        status = response.status
        tag = _to_tag(response)
        if status < 200:
            return uac_result(self._provisional(response, tag))
        if status >= 300:
            self.final_status = self.final_status or status
            for dialog in self.early():  # §12.3: a non-2xx final ends the early dialogs
                dialog.terminate()
            return UacResult()
        return self._success(response, tag or "")

    def end(self) -> list[Request]:
        """The branch is to end (DIAL-23): a BYE for each confirmed dialog (send them);
        early dialogs end now; every later 2xx gets ACK and BYE (DIAL-24).

        A pending INVITE is the caller's to cancel: ``endpoint.cancel(transaction)``
        (which waits for a provisional, §9.1).
        """
        self.ending = True
        byes = []
        for dialog in self.dialogs.values():
            if dialog.state is CONFIRMED:
                byes.append(dialog.build_bye())
            elif dialog.state is EARLY:
                dialog.terminate()
        return byes

    def _provisional(self, response: Response, tag: str | None) -> UacDialog | None:
        # 100 has no dialog; a 1xx without tag neither (§12.1); once a 2xx is kept or the
        # branch is ending, other forks' early dialogs serve nothing.
        if response.status == 100 or tag is None or self.ending or self.kept is not None:
            return None
        dialog = self.dialogs.get(tag)
        if dialog is None or dialog.state is TERMINATED:
            dialog = self._add(UacDialog.from_response(self.invite, response))
        else:
            dialog.update(response)
        return dialog

    def _success(self, response: Response, tag: str) -> UacResult:
        # §13.2.2.4: every 2xx is ACKed; a dialog not wanted is ended with a BYE.
        dialog = self.dialogs.get(tag)
        if dialog is not None and dialog.acked(response.cseq.seq):
            return UacResult(dialog, ack=dialog.build_ack(response), retransmission=True)
        if dialog is None or dialog.state is TERMINATED:
            dialog = self._add(UacDialog.from_response(self.invite, response))
        else:
            dialog.update(response)
        ack = dialog.build_ack(response)
        if self.ending or self.kept is not None:  # DIAL-24, or a second fork answered
            return UacResult(dialog, ack=ack, bye=dialog.build_bye())
        self.kept = dialog
        self.final_status = response.status
        # §13.2.2.4 ends the other early dialogs 64*T1 after the first 2xx; as dialtone
        # keeps one answer, a later 2xx of theirs gets ACK + BYE either way: end them now.
        for other in self.early():
            other.terminate()
        return uac_result(dialog, ack, answered=True)

    def _add(self, dialog: UacDialog) -> UacDialog:
        self.dialogs[dialog.remote_tag] = dialog
        if self._registry is not None:
            self._registry.add(dialog)
        return dialog

    def __repr__(self) -> str:
        return f"<UacInvite {self.invite.call_id} {len(self.dialogs)} dialogs>"


def _to_tag(response: Response) -> str | None:
    try:
        return response.to.tag
    except SipParseError:
        return None


def _remote_target(invite: Request, response: Response) -> SipUri:
    """contact_target(response, _request_uri(invite, response)), the fallback computed
    only when it is used: the caller has read ``response.to`` already, so the fallback
    cannot raise, and it has no other effect."""
    try:
        contacts = response.contacts
    except SipParseError:
        return _request_uri(invite, response)
    if len(contacts) != 1 or contacts[0].is_wildcard:
        return _request_uri(invite, response)
    return contacts[0].uri


def _request_uri(invite: Request, response: Response) -> SipUri:
    """Where to send when the peer gave no Contact: the INVITE's Request-URI."""
    try:
        return invite.ruri
    except SipParseError:
        return response.to.uri
