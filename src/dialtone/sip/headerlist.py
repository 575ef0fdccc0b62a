"""The header list of a SIP message: ordered, multi-valued, case-insensitive names.

:class:`Headers` lives here so that :mod:`dialtone.sip.message` stays readable; import
it from there (``from dialtone.sip.message import Headers``), as every caller does.

Besides the lines themselves a :class:`Headers` keeps the parsed form of the values that
:class:`~dialtone.sip.message.Message`'s accessors have read (``_parsed``), so that a
change to one header drops only the parses of that header: the endpoint rewrites the
top Via of every request it receives, and re-parsing To, CSeq and Max-Forwards after
that cost more than the rewrite itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dialtone.sip.headers import CANON, LIST_HEADERS, is_token, split_quoted

# Cache keys of _parsed that do not equal a header's lookup key: they are dropped with
# the header they are parsed from (see Headers._changed).
TOP_VIA = "via:top"

# Exact spelling -> lookup key, and -> (canonical name, key), for the spellings code
# writes (canonical, lower case and compact forms).  A hit saves the str.lower() and
# CANON lookup that every get/add/in pays otherwise (a REGISTER's way through the
# endpoint, the application and the registrar makes about thirty of them); other
# spellings take the general path, which gives the same answer.
_ENTRY_OF: dict[str, tuple[str, str]] = {}
for _lower, _canon_entry in CANON.items():
    _ENTRY_OF[_lower] = _canon_entry
    _ENTRY_OF[_canon_entry[0]] = CANON[_canon_entry[0].lower()]
_KEY_OF: dict[str, str] = {name: entry[1] for name, entry in _ENTRY_OF.items()}


def header_key(name: str) -> str:
    """The lookup key of header ``name``: compact forms expanded, lower case."""
    key = _KEY_OF.get(name)
    if key is not None:
        return key
    lower = name.lower()
    entry = CANON.get(lower)
    return lower if entry is None else entry[1]


class Headers:
    """Ordered, multi-valued SIP headers with case-insensitive names.

    Names are canonicalised on insert (compact forms expanded, known headers in their
    usual case); every header line is one ``(name, value)`` entry, in order.
    """

    __slots__ = ("_gen", "_items", "_keys", "_parsed")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._keys: list[str] = []
        self._gen = 0
        self._parsed: dict[str, Any] = {}
        self._extend(items)  # add() for each line, in one loop

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]], keys: list[str]) -> Headers:
        # The parser has already canonicalised and checked every entry.
        h = cls.__new__(cls)
        h._items, h._keys, h._gen, h._parsed = items, keys, 0, {}
        return h

    def _extend(self, items: Iterable[tuple[str, str]]) -> None:
        # add() for each line, for a Headers that has no parse to drop yet (one just
        # built): the same lines and the same errors, without a _changed() per line.
        if self._parsed:
            for name, value in items:
                self.add(name, value)
            return
        entry_of, entry = _ENTRY_OF.get, self._entry
        lines = self._items
        add_line, add_key = lines.append, self._keys.append
        before = len(lines)
        try:
            for name, value in items:
                known = entry_of(name)
                if known is None or "\r" in value or "\n" in value:
                    known = entry(name, value)  # the general path (and its errors)
                add_line((known[0], value))
                add_key(known[1])
        finally:
            self._gen += len(lines) - before

    @staticmethod
    def _entry(name: str, value: str) -> tuple[str, str]:
        entry = _ENTRY_OF.get(name)
        if entry is None:
            entry = CANON.get(name.lower())
            if entry is None:
                if not is_token(name):
                    raise ValueError(f"header name is not a token: {name!r}")
                entry = (name, name.lower())
        if "\r" in value or "\n" in value:
            # A CR or LF would let a value inject headers into the serialised message.
            raise ValueError(f"header value contains CR or LF: {value!r}")
        return entry

    def _changed(self, key: str) -> None:
        # Only the parses of the header that changed are stale.
        self._gen += 1
        parsed = self._parsed
        if parsed:
            parsed.pop(key, None)
            if key == "via":
                parsed.pop(TOP_VIA, None)

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a header line (or put it on top with ``first=True``, as a new Via)."""
        canon, key = self._entry(name, value)
        if first:
            self._items.insert(0, (canon, value))
            self._keys.insert(0, key)
        else:
            self._items.append((canon, value))
            self._keys.append(key)
        self._changed(key)

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` line by one, at the place of the first (else at the end)."""
        canon, key = self._entry(name, value)
        keys = self._keys
        if keys.count(key) == 1:  # the usual case: one line, replaced in place
            self._items[keys.index(key)] = (canon, value)
            self._changed(key)
            return
        at = keys.index(key) if key in keys else len(keys)
        self.remove(name)
        self._items.insert(at, (canon, value))
        self._keys.insert(at, key)
        self._changed(key)

    def replace_first(self, name: str, value: str) -> None:
        """Replace the value of the first ``name`` line in place; later lines stay.

        Appends a line when there is none.  This is how the top Via is rewritten
        (received/rport, RFC 3581) without touching the Vias below it.
        """
        canon, key = self._entry(name, value)
        keys = self._keys
        if key in keys:
            self._items[keys.index(key)] = (canon, value)
        else:
            self._items.append((canon, value))
            keys.append(key)
        self._changed(key)

    def remove(self, name: str) -> int:
        """Remove every ``name`` line; return how many were removed."""
        key = header_key(name)
        keys = self._keys
        count = keys.count(key)
        if count == 0:
            return 0
        if count == 1:
            at = keys.index(key)
            del keys[at]
            del self._items[at]
        else:
            kept = [(k, item) for k, item in zip(keys, self._items, strict=True) if k != key]
            self._keys = [k for k, _ in kept]
            self._items = [item for _, item in kept]
        self._changed(key)
        return count

    @staticmethod
    def _key(name: str) -> str:
        return header_key(name)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the value of the first ``name`` line, else ``default``."""
        key = _KEY_OF.get(name) or header_key(name)
        keys = self._keys
        if key in keys:
            return self._items[keys.index(key)][1]
        return default

    def get_all(self, name: str) -> list[str]:
        """Return the value of every ``name`` line, each line whole, in order."""
        key = _KEY_OF.get(name) or header_key(name)
        keys = self._keys
        count = keys.count(key)
        if count == 0:
            return []
        if count == 1:
            return [self._items[keys.index(key)][1]]
        return [item[1] for k, item in zip(keys, self._items, strict=True) if k == key]

    def values(self, name: str) -> list[str]:
        """Return the elements of a list header across all its lines (``Allow``, ``Require``).

        Commas inside quotes and ``<>`` do not split; empty elements are dropped.  Headers
        that are not lists (``WWW-Authenticate``, ``Authorization``, ``Date``, unknown
        ones) come back one element per line, like :meth:`get_all`.
        """
        lines = self.get_all(name)
        if not lines or header_key(name) not in LIST_HEADERS:
            return lines
        return [piece for line in lines for piece in split_quoted(line, ",") if piece]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return (_KEY_OF.get(name) or header_key(name)) in self._keys

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def items(self) -> list[tuple[str, str]]:
        """Return a copy of all ``(name, value)`` lines, in order."""
        return list(self._items)

    def copy(self) -> Headers:
        """Return an independent copy."""
        copied = Headers._trusted(list(self._items), list(self._keys))
        copied._parsed = dict(self._parsed)  # immutable values, or lists never handed out
        return copied

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._keys == other._keys and [v for _, v in self._items] == [
            v for _, v in other._items
        ]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"
