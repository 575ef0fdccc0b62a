"""The dialog of an INVITE dialtone answers (RFC 3261 §12.1.1, §13.3.1).

:meth:`UasDialog.from_invite` builds the (early) dialog of an inbound INVITE;
:meth:`~UasDialog.provisional` (180/183), :meth:`~UasDialog.answer` (the 2xx, retransmitted
until its ACK: :meth:`~dialtone.sip.dialog.Dialog.on_timer`) and
:meth:`~UasDialog.reject` (a final failure) build the responses the call layer sends in
the INVITE's server transaction with ``endpoint.respond``.  :func:`reject_invite` refuses
an INVITE that has no dialog (yet).
"""

from __future__ import annotations

from collections.abc import Iterable

from dialtone.sip.dialog import (
    CONFIRMED,
    EARLY,
    TERMINATED,
    Dialog,
    DialogStateError,
    record_route,
)
from dialtone.sip.errors import SipParseError
from dialtone.sip.headers import quote
from dialtone.sip.message import Request, Response, make_response

__all__ = ["UasDialog", "reject_invite"]


class UasDialog(Dialog):
    """A dialog in which dialtone is the callee (the UAS of the initial INVITE).

    ``invite`` is that INVITE.  The dialog is early until :meth:`answer` (confirmed at
    once: §12.1.1, the 2xx creates it) or :meth:`reject` (terminated).
    """

    __slots__ = ("_final", "invite")

    def __init__(self, invite: Request, local_tag: str, local_contact: str) -> None:
        """Prefer :meth:`from_invite`, which validates the INVITE."""
        # §12.1.1: route set = Record-Route in order; remote target = Contact; remote
        # sequence = the INVITE's CSeq; local sequence empty; remote URI/tag = From,
        # local URI = To (with our tag).
        super().__init__(
            call_id=invite.call_id,
            local_party=invite.to.with_tag(local_tag),
            remote_party=invite.from_,
            remote_target=invite.contacts[0].uri,
            route_set=record_route(invite),
            remote_seq=invite.cseq.seq,
            local_contact=_contact(local_contact),
            state=EARLY,
        )
        self.invite = invite
        self._final: int | None = None  # the status of the final response we built

    @classmethod
    def from_invite(cls, invite: Request, local_tag: str, local_contact: str) -> UasDialog:
        """The early dialog of a new INVITE (§12.1.1); ``local_contact`` is our URI.

        Raises ``SipParseError`` (answer it 400, :func:`~dialtone.sip.errors.
        status_for_error`) for a missing or unusable Contact or a bad Record-Route, and
        ValueError for a request that is not an initial INVITE (To tag present).
        """
        if invite.method != "INVITE":
            raise ValueError(f"{invite.method} does not create a dialog here")
        if invite.to.tag is not None:
            raise ValueError("an INVITE with a To tag belongs to a dialog (§12.2.2)")
        contacts = invite.contacts
        if not contacts:
            raise SipParseError("Missing Contact")  # §8.1.1.8: MUST be present
        if len(contacts) != 1 or contacts[0].is_wildcard:
            raise SipParseError("Bad Contact")
        record_route(invite)  # raises now rather than in __init__'s callers
        return cls(invite, local_tag, local_contact)

    @property
    def answered(self) -> bool:
        """True once :meth:`answer` built the 2xx."""
        return self._final is not None and self._final < 300

    @property
    def final_status(self) -> int | None:
        """The status of the final response built (:meth:`answer`, :meth:`reject`)."""
        return self._final

    def provisional(
        self,
        status: int = 180,
        sdp: bytes = b"",
        *,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A 101-199 response with our To tag and Contact (§12.1.1): 180 Ringing, or 183
        Session Progress with ``sdp`` for early media.  The dialog stays early."""
        if not 100 < status < 200:
            raise ValueError(f"{status} is not a provisional the TU sends")
        self._check_open()
        if sdp:
            self.local_sdp = sdp
        return self._response(status, reason, headers, sdp)

    def answer(
        self,
        sdp: bytes,
        now: float,
        *,
        transaction: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """The 200 to the INVITE: To tag, Contact, Record-Route and the SDP (§13.3.1.4).

        The dialog is confirmed.  Over UDP the 2xx is then resent at T1, 2*T1 ... T2
        (:class:`~dialtone.sip.dialog.Resend` from :meth:`on_timer`, handing back
        ``transaction``) until :meth:`ack_received`; without an ACK in 64*T1,
        :class:`~dialtone.sip.dialog.AckTimeout`: send :meth:`build_bye`.
        """
        self._check_open()
        response = self._response(200, None, headers, sdp)
        self._final = 200
        self.state = CONFIRMED
        if sdp:
            self.local_sdp = sdp
        self._start_2xx(self.invite, response, transaction, now)
        return response

    def reject(
        self,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        warning: str | None = None,
    ) -> Response:
        """A 300-699 final response to the INVITE (486, 603, 480, 487 after CANCEL, 500,
        488 ...) with our To tag and an optional ``Warning``; the dialog is terminated
        (§12.3).  Also after a BYE on the early dialog: the INVITE still gets its 487
        (§15.1.2)."""
        if self._final is not None:
            raise DialogStateError(f"the INVITE has its final response ({self._final})")
        response = reject_invite(
            self.invite, status, reason, to_tag=self.local_tag, headers=headers, warning=warning
        )
        self._final = status
        self.terminate()
        return response

    def build_bye(self, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """The BYE ending the call; the callee MUST NOT send one on an early dialog
        (§15): :meth:`reject` the INVITE instead."""
        if self.state is EARLY:
            raise DialogStateError("BYE on an early dialog: reject the INVITE (§15)")
        return super().build_bye(headers)

    def _check_open(self) -> None:
        if self._final is not None:
            raise DialogStateError(f"the INVITE has its final response ({self._final})")
        if self.state is TERMINATED:
            raise DialogStateError("the dialog has ended (rejected, or a BYE arrived)")

    def _response(
        self, status: int, reason: str | None, headers: Iterable[tuple[str, str]], sdp: bytes
    ) -> Response:
        # §12.1.1: a dialog-creating response copies every Record-Route of the request
        # (in order) and carries our Contact.
        extra = [("Record-Route", line) for line in self.invite.headers.get_all("Record-Route")]
        if self.local_contact is not None:
            extra.append(("Contact", self.local_contact))
        extra += headers
        response = make_response(self.invite, status, reason, to_tag=self.local_tag, headers=extra)
        if sdp:
            response.body = sdp
            response.headers.add("Content-Type", "application/sdp")
        return response


def reject_invite(
    invite: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str,
    headers: Iterable[tuple[str, str]] = (),
    warning: str | None = None,
    warn_agent: str = "dialtone",
) -> Response:
    """A 300-699 response to ``invite``, for ``endpoint.respond`` in its server transaction.

    ``warning`` adds ``Warning: 399 <warn_agent> "<warning>"`` (§20.43: 399 is the
    miscellaneous warning).  The INVITE's server transaction retransmits it and absorbs
    the ACK (§17.2.1).
    """
    if not 300 <= status <= 699:
        raise ValueError(f"{status} is not a failure status")
    extra = list(headers)
    if warning is not None:
        extra.append(("Warning", f"399 {warn_agent} {quote(warning)}"))
    return make_response(invite, status, reason, to_tag=to_tag, headers=extra)


def _contact(uri: str) -> str:
    """A Contact value for ``uri`` (``sip:...`` gets its ``<>``, §20.10)."""
    return uri if "<" in uri else f"<{uri}>"
