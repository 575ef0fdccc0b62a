"""Stateless digest nonces bound to this server, and nonce-count replay tracking.

A pure core (RFC 7616 §3.3, §3.4.2; spec REG-2): nonces carry their issue time and a MAC
over a server secret, so checking one needs no server-side state; only the highest nonce
count seen per nonce is remembered, and forgotten when the nonce expires.  Call order per
request (see :mod:`dialtone.sip.digest`): ``check`` → ``verify`` → ``accept_nc``.
"""

from __future__ import annotations

import binascii
import collections
import enum
import hashlib
import hmac
import itertools
import math
import os
import struct

__all__ = ["NonceManager", "NonceStatus"]


class NonceStatus(enum.Enum):
    """The verdict of :meth:`NonceManager.check`."""

    VALID = "valid"
    STALE = "stale"  # issued by this server but expired: answer 401 with stale=true
    INVALID = "invalid"  # forged, garbled, or issued by another server/realm


# Nonce layout (33 bytes, so 44 base64 characters and no padding):
#   timestamp  8 bytes  big-endian float64 `now` at issue
#   counter    8 bytes  per-manager counter from a random start: unique nonces, so two
#                       clients never share nonce-count state
#   tag       17 bytes  keyed BLAKE2b(secret, timestamp || counter || realm)
# Keyed BLAKE2b is a MAC by design (RFC 7693 §2.9) and costs a third of HMAC-SHA256 in
# CPython; a nonce is authentic iff its tag verifies, so no server-side state is needed
# (RFC 7616 §3.3 suggests exactly this: a time stamp plus a hash over a server secret).
_BODY = struct.Struct(">dQ")
_BODY_LEN = _BODY.size
_TIMESTAMP = struct.Struct(">d")
_TAG_LEN = 17
_NONCE_CHARS = (_BODY_LEN + _TAG_LEN) * 4 // 3
_COUNTER_MASK = (1 << 64) - 1


class NonceManager:
    """Issues and checks stateless nonces bound to this server; tracks nonce counts.

    ``secret`` (at least 16 bytes, e.g. 32 from ``os.urandom``) keys the nonces: a nonce
    from another secret — another server — is INVALID. Nodes that share the secret and
    a wall clock accept each other's nonces. ``now`` must come from one clock for the
    whole life of the nonces: use wall-clock epoch seconds when nonces must survive a
    restart or move between nodes. A nonce is VALID from ``max_skew`` seconds before its
    issue time (clock skew between nodes) to ``lifetime`` seconds after it.
    ``counter_start`` fixes the first nonce counter (random by default) for reproducible
    nonces in tests. Nonce counts are tracked per manager, i.e. per process.
    """

    __slots__ = ("_counter", "_expiries", "_lifetime", "_mac", "_max_skew", "_seen")

    def __init__(
        self,
        secret: bytes,
        lifetime: float = 300.0,
        *,
        max_skew: float = 5.0,
        counter_start: int | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if not lifetime > 0:
            raise ValueError("nonce lifetime must be positive")
        # BLAKE2b keys are at most 64 bytes; hash a longer secret down to one.
        key = secret if len(secret) <= 64 else hashlib.blake2b(secret).digest()
        self._mac = hashlib.blake2b(key=key, digest_size=_TAG_LEN)
        self._lifetime = float(lifetime)
        self._max_skew = float(max_skew)
        start = int.from_bytes(os.urandom(8)) if counter_start is None else counter_start
        self._counter = itertools.count(start & _COUNTER_MASK)
        # nonce -> highest nc accepted; insertion-ordered FIFO of (expiry, nonce) for prune.
        self._seen: dict[str, int] = {}
        self._expiries: collections.deque[tuple[float, str]] = collections.deque()

    @property
    def lifetime(self) -> float:
        """Seconds a nonce stays valid after it was issued."""
        return self._lifetime

    def __len__(self) -> int:
        """The number of nonces whose nonce count is being tracked."""
        return len(self._seen)

    def _tag(self, body: bytes, realm: str) -> bytes:
        # Copying a keyed state skips re-absorbing the key block: ~35% cheaper per nonce.
        mac = self._mac.copy()
        mac.update(body)
        mac.update(realm.encode())
        return mac.digest()

    def issue(self, now: float, *, realm: str = "") -> str:
        """Return a fresh nonce issued at ``now``, optionally bound to ``realm``."""
        body = _BODY.pack(now, next(self._counter) & _COUNTER_MASK)
        return binascii.b2a_base64(body + self._tag(body, realm), newline=False).decode("ascii")

    def _decode(self, nonce: str, realm: str) -> float | None:
        """The issue time of an authentic nonce, else None."""
        if len(nonce) != _NONCE_CHARS or not nonce.isascii():
            return None
        try:
            # strict_mode rejects anything outside the alphabet, so there is exactly one
            # spelling of each nonce (44 characters carry 33 bytes with no spare bits).
            raw = binascii.a2b_base64(nonce, strict_mode=True)
        except ValueError:
            return None
        body = raw[:_BODY_LEN]
        if not hmac.compare_digest(raw[_BODY_LEN:], self._tag(body, realm)):
            return None
        issued: float = _BODY.unpack(body)[0]
        return issued

    def check(self, nonce: str | None, now: float, *, realm: str = "") -> NonceStatus:
        """Classify ``nonce`` at ``now``: VALID, STALE (authentic but expired) or INVALID.

        ``realm`` must be the one given to :meth:`issue`.
        """
        if nonce is None:
            return NonceStatus.INVALID
        issued = self._decode(nonce, realm)
        if issued is None:
            return NonceStatus.INVALID
        # Written as a negated range so that a NaN `now` is never VALID.
        if not issued - self._max_skew <= now <= issued + self._lifetime:
            # Expired, or from far in the future (the clock stepped back): authentic but
            # unusable, so the client may retry with a fresh nonce (RFC 7616 §3.3 stale).
            return NonceStatus.STALE
        return NonceStatus.VALID

    def accept_nc(self, nonce: str | None, nc: int | None) -> bool:
        """Record nonce count ``nc`` for ``nonce``; False if it is not above the highest seen.

        RFC 7616 §3.4.2 / spec REG-2: a repeated (or lower) nc for a nonce is a replay.
        Call it only for a VALID nonce and after :func:`verify` succeeded, so that forged
        requests cannot advance a legitimate client's count. O(1); entries are dropped by
        :meth:`prune` once their nonce has expired, when a replay would be STALE anyway.
        """
        if nonce is None or nc is None or not 0 < nc <= 0xFFFFFFFF:
            return False
        highest = self._seen.get(nonce)
        if highest is None:
            if len(nonce) != _NONCE_CHARS:
                return False
            try:
                # The first 12 characters carry the first 9 bytes: the timestamp.
                # (ValueError covers binascii.Error and non-ASCII text.)
                raw = binascii.a2b_base64(nonce[:12], strict_mode=True)
                issued: float = _TIMESTAMP.unpack_from(raw)[0]
            except (ValueError, struct.error):
                return False
            expiry = issued + self._lifetime
            if not math.isfinite(expiry):
                return False  # never VALID; and a NaN would block prune() for good
            self._expiries.append((expiry, nonce))
        elif nc <= highest:
            return False
        self._seen[nonce] = nc
        return True

    def prune(self, now: float) -> None:
        """Forget the nonce counts of nonces that expired before ``now``.

        Amortised O(1): call it as often as convenient (e.g. with every REGISTER). Entries
        leave in first-use order, so one used late may outlive its expiry a little; none
        leaves before its nonce is STALE, which keeps replays out.
        """
        expiries = self._expiries
        seen = self._seen
        while expiries and expiries[0][0] < now:
            _, nonce = expiries.popleft()
            seen.pop(nonce, None)
