"""Digest's vocabulary: its error, its algorithms and their hashes, the stored HA1.

Split out of :mod:`dialtone.sip.digest`, which re-exports the public names (import
them from there, as callers do).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable

__all__ = ["DigestAlgorithm", "DigestError", "compute_ha1", "parse_algorithm"]


class DigestError(ValueError):
    """A Digest header value is malformed, or an algorithm or qop cannot be used.

    ``reason`` is a short human-readable explanation (also the exception message).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- algorithms


class DigestAlgorithm(enum.StrEnum):
    """The digest algorithms dialtone computes (RFC 7616 §3.3, RFC 8760 §2).

    The ``-sess`` variants derive a session HA1 from the stored one, the nonce and the
    cnonce (RFC 7616 §3.4.2); they are verified and answered but never offered.
    """

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"

    @property
    def is_session(self) -> bool:
        """True for the ``-sess`` variants."""
        return self in (DigestAlgorithm.MD5_SESS, DigestAlgorithm.SHA256_SESS)

    @property
    def base(self) -> DigestAlgorithm:
        """The algorithm of the stored HA1: ``MD5`` for ``MD5-sess``, and so on."""
        if self is DigestAlgorithm.MD5_SESS:
            return DigestAlgorithm.MD5
        if self is DigestAlgorithm.SHA256_SESS:
            return DigestAlgorithm.SHA256
        return self


# Algorithm tokens are case-insensitive (RFC 7616 §3.3 writes "MD5", SIP stacks send "md5").
_ALGORITHMS: dict[str, DigestAlgorithm] = {a.value.lower(): a for a in DigestAlgorithm}


def parse_algorithm(name: str) -> DigestAlgorithm:
    """Map an ``algorithm`` token (case-insensitive) to a :class:`DigestAlgorithm`.

    Raises :class:`DigestError` for an algorithm dialtone does not implement
    (e.g. ``SHA-512-256``).
    """
    try:
        return _ALGORITHMS[name.lower()]
    except KeyError:
        raise DigestError(f"unsupported digest algorithm {name!r}") from None


def _md5_hex(data: bytes) -> str:
    # MD5 is what RFC 2617 mandates and what deployed phones speak; usedforsecurity=False
    # keeps it available on FIPS builds of OpenSSL.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_HASHES: dict[DigestAlgorithm, Callable[[bytes], str]] = {
    DigestAlgorithm.MD5: _md5_hex,
    DigestAlgorithm.MD5_SESS: _md5_hex,
    DigestAlgorithm.SHA256: _sha256_hex,
    DigestAlgorithm.SHA256_SESS: _sha256_hex,
}


_HASH_BY_NAME: dict[str, tuple[Callable[[bytes], str], bool]] = {
    a.value.lower(): (_HASHES[a], a.is_session) for a in DigestAlgorithm
}
_MD5_INFO = _HASH_BY_NAME["md5"]


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """Return ``H(username ":" realm ":" password)`` as lowercase hex (RFC 7616 §3.4.2).

    This is the value the registrar stores instead of the password (spec REG-1): one per
    base algorithm (``MD5``, ``SHA-256``) with realm = ``--domain``. For a ``-sess``
    algorithm the *stored* HA1 of its base algorithm is returned; the session HA1 is
    derived per request by :func:`verify` / :func:`build_authorization`. Strings are
    encoded as UTF-8 (RFC 7616 §4, what SIP phones do in practice).
    """
    alg = parse_algorithm(algorithm)
    return _HASHES[alg](f"{username}:{realm}:{password}".encode())
