"""One branch of a `<Dial>`: its outbound INVITE, its media, and the whisper context.

A :class:`BranchLeg` is a Call of its own (Direction ``outbound-dial``, DIAL-10).  It holds
the :class:`~dialtone.sip.dialog_uac.UacInvite` of its INVITE (LEG-1..LEG-3), the media
session that INVITE offered, and what the Dial needs to route responses and requests to
it.  While its whisper runs it is the :class:`~dialtone.rcml.context.CallContext` of that
RCML (WSP-2..WSP-4): its verbs play to the called party only; answering, dialling and
ending are the Dial's, so those methods do nothing here (the interpreter never calls them
in a whisper).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Literal

from dialtone.calls.leg import Leg
from dialtone.calls.services import CallServices
from dialtone.calls.targets import Target
from dialtone.media.session import MediaSession
from dialtone.rcml.context import DialResult
from dialtone.rcml.nodes import Dial, SipNoun
from dialtone.sip.dialog_set import DialogSet
from dialtone.sip.dialog_uac import UacInvite
from dialtone.sip.digest import build_authorization, choose_challenge, parse_challenges
from dialtone.sip.digest_algorithms import DigestError
from dialtone.sip.events import Peer
from dialtone.sip.message import Headers, Request, Response
from dialtone.webhooks.params import CallInfo

__all__ = ["BranchLeg", "build_invite"]

_CHALLENGES = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


def build_invite(
    target: Target,
    *,
    from_uri: str,
    display_name: str | None,
    contact: str,
    sdp: bytes,
    extra: list[tuple[str, str]],
) -> Request:
    """The branch INVITE of LEG-1..LEG-4 (Via, Max-Forwards: the endpoint's)."""
    name = f'"{display_name}" ' if display_name else ""
    headers = Headers(
        [
            ("From", f"{name}<{from_uri}>;tag={secrets.token_hex(5)}"),
            ("To", f"<{target.to_uri}>"),
            ("Call-ID", secrets.token_hex(12)),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<{contact}>"),
            *extra,
            *target.headers,
            ("Content-Type", "application/sdp"),
        ]
    )
    return Request("INVITE", target.ruri, headers, sdp)


class BranchLeg(Leg):
    """A Dial branch (module docstring); ``index`` is its place in the Fork."""

    def __init__(
        self,
        services: CallServices,
        *,
        index: int,
        target: Target,
        call_sid: str,
        info: CallInfo,
        media: MediaSession | None,
        base_url: str | None,
    ) -> None:
        super().__init__(
            services,
            call_sid=call_sid,
            media=media,  # type: ignore[arg-type]  # None only for branches that send nothing
            info=info,
            status="ringing",
            whisper=True,
            base_url=base_url,
        )
        self.index = index
        self.target = target
        self.peer: Peer | None = None
        self._dialogs: DialogSet | None = None
        self.uac: UacInvite | None = None
        self.transaction: str | None = None
        self.reported_2xx = False  # the Fork was told of this INVITE's answer (once)
        self.refused = False  # that 2xx already got ACK + BYE (DIAL-24)
        self.authenticated = False  # LEG-5: one retry with credentials
        self.whisper_task: asyncio.Task[None] | None = None
        self.duration = 0
        self.ended = False
        self.detached = False  # API-25: it left its Dial, a ChildCall carries it on

    def start(self, invite: Request, peer: Peer, dialogs: DialogSet) -> None:
        """The INVITE is about to be sent to ``peer``; its dialogs join ``dialogs`` (so the
        called party's BYE, re-INVITE and INFO find them)."""
        self.peer = peer
        self._dialogs = dialogs
        self.uac = UacInvite(invite, dialogs=dialogs)

    def restart(self, invite: Request) -> None:
        """LEG-5: the same INVITE again, with credentials, as a new transaction."""
        self.uac = UacInvite(invite, dialogs=self._dialogs)

    def answered_now(self) -> None:
        """The Fork kept this branch's 2xx: whisper verbs now play with comfort silence."""
        self._answered = True
        self._status = "in-progress"

    def end(self, status: Literal["completed", "busy", "no-answer", "canceled", "failed"]) -> None:
        """The branch's Call has ended: its whisper, if any, stops at once."""
        self.ended = True
        self._status = status
        self.stop_whisper()

    def stop_whisper(self) -> None:
        """WSP-8/WSP-9: stop the whisper RCML and its audio now."""
        self._gone.set()
        if self.media is not None:
            self.media.stop_playback()
        task = self.whisper_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def authenticated_invite(self, response: Response) -> Request | None:
        """LEG-5: the INVITE again with credentials for a 401/407, once; None when the
        noun has none, they were tried already, or the challenge is unusable."""
        noun = self.target.noun
        if not isinstance(noun, SipNoun):  # only <Sip> carries credentials (DIAL-7)
            return None
        username, password = noun.username, noun.password
        names = _CHALLENGES.get(response.status)
        if self.authenticated or names is None or not username or not password or not self.uac:
            return None
        challenge_header, answer_header = names
        try:
            challenges = [
                c for v in response.headers.values(challenge_header) for c in parse_challenges(v)
            ]
            challenge = choose_challenge(challenges)
            invite = self.uac.invite
            value = build_authorization(
                challenge,
                "INVITE",
                invite.uri,
                username,
                password,
                cnonce=secrets.token_hex(8),
            )
        except DigestError:
            return None
        self.authenticated = True
        headers = Headers([(n, v) for n, v in invite.headers if n.lower() != "via"])
        headers.set("CSeq", f"{invite.cseq.seq + 1} INVITE")
        headers.add(answer_header, value)
        return Request("INVITE", invite.uri, headers, invite.body)

    def _record(
        self,
        log_level: int,
        code: int,
        message: str,
        url: str | None = None,
        method: str | None = None,
        params: object = None,
        body: bytes | str | None = None,
    ) -> None:
        """WSP-7: a whisper's Notifications name the noun it belongs to."""
        message = f"whisper of {self.target.noun.element}: {message}"
        super()._record(log_level, code, message, url, method, params, body)

    # -- CallContext: what only the Dial does (never called in a whisper) ------------------

    async def answer(self) -> None:
        """The branch is answered already (its 2xx started the whisper)."""

    async def dial(self, node: Dial) -> DialResult:
        """A whisper never dials (WSP-4: the parser refuses such documents)."""
        raise RuntimeError("a whisper cannot Dial (WSP-4)")

    async def hangup(self) -> None:
        """In a whisper ``<Hangup>`` declines; the Dial sends the BYE (WSP-6)."""

    async def reject(self, reason: Literal["rejected", "busy"]) -> None:
        """In a whisper ``<Reject>`` declines; the Dial sends the BYE (WSP-6)."""

    async def fail(self, code: int | None = None, message: str | None = None) -> None:
        """A failed whisper is ended ``failed`` by the Dial (WSP-7)."""
