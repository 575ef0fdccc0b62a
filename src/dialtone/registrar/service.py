"""REGISTER handling (spec REG-1..REG-5): domain check, digest auth, contacts, expiry.

:meth:`Registrar.register` is synchronous and returns the response: the credential cache
and the location service live in memory, and changed Clients are written to storage in
batches by :class:`dialtone.registrar.store.BindingStore`, so REGISTER never waits on I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

import structlog

from dialtone.registrar.auth import Authenticator, Verdict
from dialtone.registrar.location import ContactUpdate, Location, OutOfOrder, Source
from dialtone.sip.errors import SipParseError
from dialtone.sip.events import Peer
from dialtone.sip.message import Request, Response, make_response
from dialtone.sip.randomness import random_hex

log = structlog.get_logger("dialtone.registrar")

_OK: Final = Verdict.OK  # a global: reading Verdict.OK goes through the enum metaclass

MIN_EXPIRES: Final = 60
MAX_EXPIRES: Final = 3600
DEFAULT_EXPIRES: Final = 3600


class Registrar:
    """The registrar for the Clients of the account at one SIP domain."""

    def __init__(
        self,
        *,
        domain: str,
        local_hosts: Collection[str],
        auth: Authenticator,
        location: Location,
        on_change: Callable[[str], None] = lambda client_sid: None,
    ) -> None:
        self.domain = domain.lower()
        self.local_hosts = {h.lower() for h in local_hosts} | {self.domain}
        self.auth = auth
        self.location = location
        self.on_change = on_change

    def register(self, request: Request, peer: Peer, now_mono: float, now_wall: float) -> Response:
        """Answer one REGISTER (a new server transaction's request)."""
        try:
            to = request.to
            contacts = request.contacts
            header_expires = request.expires
        except SipParseError as exc:
            return make_response(request, 400, exc.reason, to_tag=_tag())
        to_uri = to.uri
        host = (to_uri.host or "").lower()
        if host not in self.local_hosts or not to_uri.user:
            return make_response(request, 403, "Domain Not Served Here", to_tag=_tag())
        verdict = self.auth.check(request, "Authorization", to_uri.user, peer.host, now_mono)
        if verdict.verdict is not _OK or verdict.credentials is None:
            return self._refuse(request, verdict.verdict, now_mono)
        client_sid = verdict.credentials.client_sid
        call_id = request.call_id
        cseq = request.cseq.seq
        if contacts and contacts[0].is_wildcard:
            if header_expires != 0:
                return make_response(request, 400, "Wildcard Needs Expires 0", to_tag=_tag())
            try:
                self.location.remove_all(client_sid, call_id, cseq)
            except OutOfOrder:
                return make_response(request, 500, "Out Of Order CSeq", to_tag=_tag())
            self.on_change(client_sid)
            return self._ok(request, client_sid, now_wall)
        updates: list[ContactUpdate] = []
        for contact in contacts:
            try:
                expires = contact.expires
            except SipParseError:
                return make_response(request, 400, "Bad Contact Expires", to_tag=_tag())
            if expires is None:
                expires = DEFAULT_EXPIRES if header_expires is None else header_expires
            if 0 < expires < MIN_EXPIRES:
                return make_response(
                    request,
                    423,
                    to_tag=_tag(),
                    headers=[("Min-Expires", str(MIN_EXPIRES))],
                )
            updates.append(ContactUpdate(str(contact.uri), min(expires, MAX_EXPIRES)))
        if updates:
            source = Source(
                transport=peer.transport,
                host=peer.host,
                port=peer.port,
                connection=peer.connection,
                user_agent=request.headers.get("User-Agent"),
            )
            try:
                self.location.update(client_sid, updates, call_id, cseq, source, now_wall)
            except OutOfOrder:
                return make_response(request, 500, "Out Of Order CSeq", to_tag=_tag())
            self.on_change(client_sid)
        return self._ok(request, client_sid, now_wall)

    def _ok(self, request: Request, client_sid: str, now_wall: float) -> Response:
        headers = [
            ("Contact", f"<{b.contact}>;expires={b.remaining(now_wall)}")
            for b in self.location.bindings(client_sid, now_wall)
        ]
        return make_response(request, 200, to_tag=_tag(), headers=headers)

    def _refuse(self, request: Request, verdict: Verdict, now_mono: float) -> Response:
        if verdict in (Verdict.CHALLENGE, Verdict.STALE):
            stale = verdict is Verdict.STALE
            headers = [("WWW-Authenticate", c) for c in self.auth.challenges(now_mono, stale=stale)]
            return make_response(request, 401, to_tag=_tag(), headers=headers)
        if verdict is Verdict.MALFORMED:
            return make_response(request, 400, "Malformed Authorization", to_tag=_tag())
        log.info("register.forbidden", call_id=request.call_id, reason=verdict.value)
        return make_response(request, 403, to_tag=_tag())

    def bindings_view(self, client_sid: str, now_wall: float) -> list[dict[str, Any]]:
        """The REST ``registrations`` of a Client (API-32)."""
        return [
            {
                "contact": b.contact,
                "transport": b.transport,
                "source": f"{b.source_host}:{b.source_port}",
                "expires": b.remaining(now_wall),
                "user_agent": b.user_agent,
            }
            for b in self.location.bindings(client_sid, now_wall)
        ]


def _tag() -> str:
    return random_hex(5)
