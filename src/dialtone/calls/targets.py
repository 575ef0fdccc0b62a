"""Where each branch of a `<Dial>` goes (DIAL-10, DIAL-13, LEG-1, LEG-4).

:func:`branch_targets` turns the nouns of a Dial into branch targets, in document order:
one per binding of a ``<Client>``, one towards ``--outbound-proxy`` for a ``<Number>``, one
for a ``<Sip>``.  A noun that cannot be dialled still gives one target, with the DIAL-13
warning code that fails it at once.  Host names are resolved by the caller
(:func:`resolve_host`); this module only reads the lookups it is given.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dialtone.config import OutboundProxy
from dialtone.rcml.nodes import ClientNoun, Noun, NumberNoun, SipNoun
from dialtone.registrar.location import Binding
from dialtone.sip.errors import SipParseError
from dialtone.sip.events import Peer
from dialtone.sip.uri import parse_uri

__all__ = [
    "NO_BINDING",
    "NO_CLIENT",
    "NO_PROXY",
    "Target",
    "branch_targets",
    "resolve_host",
]

NO_CLIENT = 82001
"""DIAL-13: a ``<Client>`` naming no Client of the account."""
NO_BINDING = 82002
"""DIAL-13: the Client has no registered device."""
NO_PROXY = 82003
"""DIAL-13: a ``<Number>`` while no ``--outbound-proxy`` is configured."""


@dataclass(frozen=True, slots=True)
class Target:
    """One branch to create: its noun, where its INVITE goes, or why it cannot go.

    ``to`` is the REQ-1 ``To`` (``client:alice``, ``1233214321``, the SIP URI); ``ruri``
    and ``to_uri`` the INVITE's Request-URI and To; ``host`` still needs resolving when it
    is not an IP address (``peer`` is then None).  ``failure`` is the DIAL-13 code of a
    branch that fails at once, with ``message`` for its Notification.
    """

    noun: Noun
    to: str
    ruri: str = ""
    to_uri: str = ""
    host: str = ""
    port: int = 5060
    transport: str = "udp"
    connection: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    failure: int | None = None
    message: str = ""

    def peer(self, address: str | None = None) -> Peer:
        """The transport address (``address``: the resolved host)."""
        if self.transport == "tcp":
            return Peer("tcp", address or self.host, self.port, self.connection)
        return Peer("udp", address or self.host, self.port, self.connection)

    @property
    def needs_resolving(self) -> bool:
        """Whether :attr:`host` is a name rather than an IP address."""
        return self.failure is None and not _is_ip(self.host)


def branch_targets(
    nouns: Sequence[Noun],
    *,
    domain: str,
    client_sid: Callable[[str], str | None],
    bindings: Callable[[str], list[Binding]],
    proxy: OutboundProxy | None,
) -> list[Target]:
    """The targets of ``nouns`` (DIAL-10), looking Clients up with ``client_sid`` (login →
    ClientSid) and ``bindings`` (ClientSid → live bindings, oldest first)."""
    out: list[Target] = []
    for noun in nouns:
        if isinstance(noun, ClientNoun):
            out += _client(noun, domain, client_sid, bindings)
        elif isinstance(noun, NumberNoun):
            out.append(_number(noun, proxy))
        else:
            out.append(_sip(noun))
    return out


def _client(
    noun: ClientNoun,
    domain: str,
    client_sid: Callable[[str], str | None],
    bindings: Callable[[str], list[Binding]],
) -> list[Target]:
    to = f"client:{noun.login}"
    sid = client_sid(noun.login)
    if sid is None:
        return [Target(noun, to, failure=NO_CLIENT, message=f"no Client {noun.login!r}")]
    found = bindings(sid)
    if not found:
        message = f"Client {noun.login!r} has no registered device"
        return [Target(noun, to, failure=NO_BINDING, message=message)]
    to_uri = f"sip:{noun.login}@{domain}"
    return [
        Target(
            noun,
            to,
            ruri=b.contact,
            to_uri=to_uri,
            host=b.source_host,
            port=b.source_port,
            transport=b.transport,
            connection=b.connection,
        )
        for b in found
    ]


def _number(noun: NumberNoun, proxy: OutboundProxy | None) -> Target:
    if proxy is None:
        message = f"no --outbound-proxy is configured for <Number> {noun.number}"
        return Target(noun, noun.number, failure=NO_PROXY, message=message)
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    suffix = ";transport=tcp" if proxy.transport == "tcp" else ""
    uri = f"sip:{noun.number}@{host}:{proxy.port}{suffix}"
    return Target(
        noun,
        noun.number,
        ruri=uri,
        to_uri=f"sip:{noun.number}@{host}",
        host=proxy.host,
        port=proxy.port,
        transport=proxy.transport,
    )


def _sip(noun: SipNoun) -> Target:
    try:
        uri = parse_uri(noun.uri)
    except SipParseError as exc:  # validated by the parser: defensive only
        return Target(noun, noun.uri, failure=NO_CLIENT, message=f"{noun.uri}: {exc.reason}")
    host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
    transport = (uri.transport or "udp").lower()
    return Target(
        noun,
        noun.uri,
        ruri=noun.uri,
        to_uri=noun.uri,
        host=host,
        port=uri.port or 5060,
        transport="tcp" if transport == "tcp" else "udp",
        headers=noun.headers,
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve_host(host: str, timeout: float = 2.0) -> str | None:
    """An IPv4 (else IPv6) address of ``host``, or None (RFC 3263 A/AAAA step only)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), timeout
        )
    except (OSError, TimeoutError, UnicodeError):
        return None
    addresses = [str(info[4][0]) for info in infos]
    ipv4 = [a for a in addresses if ":" not in a]
    choices = ipv4 or addresses
    return choices[0] if choices else None
