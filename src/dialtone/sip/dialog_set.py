"""The registry of live dialogs: lookup by (Call-ID, local tag, remote tag), 2xx timers.

Split from :mod:`dialtone.sip.dialog`, which holds the dialog itself (RFC 3261 §12).
"""

from __future__ import annotations

from collections.abc import Iterator

from dialtone.sip.dialog import (
    CONFIRMED,
    TERMINATED,
    Dialog,
    DialogId,
    Handled,
    TimerEvent,
    UacResult,
    dialog_from_response,
)
from dialtone.sip.errors import SipParseError
from dialtone.sip.message import Message, Request, Response

_new_tuple = tuple.__new__


class DialogSet:
    """The live dialogs of one endpoint, keyed by (Call-ID, local tag, remote tag).

    Dialogs leave by themselves when terminated.  ``count()`` is the ``sip_dialogs``
    figure of ``/dialtone/stats.json``.  :meth:`next_deadline`/:meth:`on_timer` run the
    2xx retransmissions of every dialog (only those awaiting an ACK are looked at).
    """

    __slots__ = ("_dialogs", "_waiting")

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}
        self._waiting: set[Dialog] = set()

    def add(self, dialog: Dialog) -> None:
        """Register ``dialog``; ValueError if its id is taken or it has ended."""
        key = dialog.id
        if dialog.state is TERMINATED:
            raise ValueError("a terminated dialog")
        if key in self._dialogs:
            raise ValueError(f"dialog {key} exists")
        self._dialogs[key] = dialog
        dialog._registry = self
        self._timing(dialog)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        """The dialog of ``dialog_id``, or None."""
        return self._dialogs.get(dialog_id)

    def find(self, message: Message) -> Dialog | None:
        """The dialog a request from a peer (To tag = ours) or a response to our request
        (From tag = ours) belongs to, or None."""
        try:
            if isinstance(message, Request):
                local, remote = message.to.tag, message.from_.tag
            else:
                local, remote = message.from_.tag, message.to.tag
            # DialogId(...) without the NamedTuple's Python-level __new__.
            key = _new_tuple(DialogId, (message.call_id, local or "", remote or ""))
        except SipParseError:
            return None
        return self._dialogs.get(key)

    def handle_request(
        self, request: Request, now: float, *, transaction: str | None = None
    ) -> Handled | None:
        """:meth:`Dialog.handle_request` of the request's dialog; None when there is
        none: the caller answers 481 (§12.2.2)."""
        dialog = self.find(request)
        if dialog is None:
            return None
        return dialog.handle_request(request, now, transaction=transaction)

    def ack_received(self, ack: Request) -> Dialog | None:
        """Give a 2xx ACK (``RequestReceived`` with transaction None) to its dialog;
        returns the dialog when the ACK was one of its."""
        dialog = self.find(ack)
        return dialog if dialog is not None and dialog.ack_received(ack) else None

    def on_stray_2xx(self, response: Response) -> UacResult:
        """A 2xx the endpoint could not give to a transaction (``ResponseReceived`` with
        transaction None: a retransmission after Timer M, a late forked answer).

        A 2xx of a confirmed dialog is ACKed (again: the same ACK, when it was before);
        anything else is a dialog nobody wants: ACK and BYE (§13.2.2.4, spec DIAL-24),
        built from the response alone when no dialog matches.
        """
        dialog = self.find(response)
        if dialog is not None and dialog.state is CONFIRMED:
            again = dialog.acked(response.cseq.seq)
            return UacResult(dialog, ack=dialog.build_ack(response), retransmission=again)
        if dialog is None:
            dialog = dialog_from_response(response)
        return UacResult(dialog, ack=dialog.build_ack(response), bye=dialog.build_bye())

    def count(self) -> int:
        """Live dialogs, early and confirmed."""
        return len(self._dialogs)

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog: object) -> bool:
        return isinstance(dialog, Dialog) and self._dialogs.get(dialog.id) is dialog

    def next_deadline(self) -> float | None:
        """The earliest deadline of any dialog (arm it next to ``endpoint.next_timer()``)."""
        deadlines = [d for dialog in self._waiting if (d := dialog.next_deadline()) is not None]
        return min(deadlines, default=None)

    def on_timer(self, now: float) -> list[TimerEvent]:
        """Every dialog's due :class:`Resend`/:class:`AckTimeout` events."""
        out: list[TimerEvent] = []
        for dialog in list(self._waiting):
            deadline = dialog.next_deadline()
            if deadline is not None and deadline <= now:
                out += dialog.on_timer(now)
        return out

    def _forget(self, dialog: Dialog) -> None:
        key = dialog.id
        if self._dialogs.get(key) is dialog:
            del self._dialogs[key]
        self._waiting.discard(dialog)
        dialog._registry = None

    def _timing(self, dialog: Dialog) -> None:
        if dialog._pending is None:
            self._waiting.discard(dialog)
        else:
            self._waiting.add(dialog)
