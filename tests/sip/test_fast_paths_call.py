"""The call hot-path shortcuts give exactly the general path's answers (hypothesis).

The second part of tests/sip/test_fast_paths.py, for the shortcuts of an INVITE
dialog's path (bench/sip_hotpath.py): the name-addr display-name fast path, the parse
memos, the ": " header split, NameAddr serialisation and tag reads, the batched Headers
construction, the IST's lazily read To tag, the dialog's kept wire texts and tags, and
the frozen results built as twins.  Each is compared with the code it short-cuts (kept
here as the reference where that code was rewritten in place), on inputs around the
common shapes and their near misses: equal values, or the same error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dialtone.sip import dialog, dialog_uac, headers, message, tokenizer, uri
from dialtone.sip.dialog import Dialog, DialogId, Handled, UacResult, contact_target
from dialtone.sip.errors import SipParseError
from dialtone.sip.events import Peer
from dialtone.sip.headerlist import Headers
from dialtone.sip.headers import CANON, NameAddr, is_token
from dialtone.sip.message import Request, Response, make_response, parse_message
from dialtone.sip.timers import TimerHeap
from dialtone.sip.transaction import ServerTransaction, TimerKey, build_ack
from dialtone.sip.transitions import IST, PROCEEDING, Input
from dialtone.sip.uri import SipUri
from tests.sip.test_fast_paths import (
    NAME_ADDRS,
    SETTINGS,
    TEXT,
    URIS,
    VIAS,
    ReferenceHeaders,
    outcome,
    pieces,
)

# ---------------------------------------------------------------------------- name-addr


DISPLAY_ADDRS = st.builds(
    "{}{}<{}>{}".format,
    pieces('"bench"', '"Alice Smith"', '""', '"a\\"b"', '"é"', "Bob", "Bob Jr", "", "B@b"),
    pieces(" ", "", "  ", "\t", " \t"),
    pieces("sip:+19991@127.0.0.1:5061", "sip:a@b", "sips:x.y", "sip:-bad", "tel:1"),
    pieces("", ";tag=31337SIPpTag001", ";tag=1;x", ";tag", "; tag=1", ';x="y"'),
)


@SETTINGS
@given(st.one_of(DISPLAY_ADDRS, NAME_ADDRS))
def test_display_name_fast_path_matches_general(text: str) -> None:
    once = outcome(lambda: headers._parse_name_addr_once(text))
    assert once == outcome(lambda: headers._parse_name_addr(text))


@SETTINGS
@given(st.one_of(DISPLAY_ADDRS, NAME_ADDRS))
def test_name_addr_memo_gives_the_parse(text: str) -> None:
    expected = outcome(lambda: headers._parse_name_addr(text))
    assert outcome(lambda: headers.parse_name_addr(text)) == expected
    assert outcome(lambda: headers.parse_name_addr(text)) == expected  # a hit, or an error


@SETTINGS
@given(URIS)
def test_uri_memo_gives_the_parse(text: str) -> None:
    expected = outcome(lambda: uri._parse_uri(text))
    assert outcome(lambda: uri.parse_uri(text)) == expected
    assert outcome(lambda: uri.parse_uri(text)) == expected


def test_memos_are_bounded_and_skip_long_texts() -> None:
    assert headers._name_addr_memo.cache_info().maxsize == uri.MEMO_SIZE
    assert uri._uri_memo.cache_info().maxsize == uri.MEMO_SIZE
    long_addr = f"<sip:{'a' * uri.MEMO_MAX_LENGTH}@b>"
    before = headers._name_addr_memo.cache_info()
    assert headers.parse_name_addr(long_addr) == headers._parse_name_addr(long_addr)
    after = headers._name_addr_memo.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)
    long_uri = f"sip:{'a' * uri.MEMO_MAX_LENGTH}@b"
    before = uri._uri_memo.cache_info()
    assert uri.parse_uri(long_uri) == uri._parse_uri(long_uri)
    after = uri._uri_memo.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_memo_keeps_no_errors() -> None:
    bad = '"unterminated <sip:a@b>'
    for _ in range(2):
        assert outcome(lambda: headers.parse_name_addr(bad)) == (
            "error",
            ("SipParseError", "Unterminated quoted string"),
        )


# ---------------------------------------------------------------------------- NameAddr


def _reference_name_addr_str(addr: NameAddr) -> str:
    # NameAddr.__str__ before the one-regex display-name test.
    if addr.is_wildcard:
        return "*"
    out = f"<{addr.uri}>{tokenizer._format_params(addr.params)}"
    if addr.display_name is None:
        return out
    name = addr.display_name
    if not all(map(is_token, name.split(" "))):
        name = headers.quote(name)
    return f"{name} {out}"


PARAMS = st.lists(
    st.tuples(pieces("tag", "TAG", "Tag", "expires", "x", "lr", "İ"), st.none() | TEXT),
    max_size=3,
).map(tuple)
ADDRS = st.builds(
    NameAddr,
    uri=st.builds(SipUri, host=pieces("h", "127.0.0.1"), user=st.none() | pieces("a", "+1")),
    display_name=st.none() | TEXT | pieces("Bob", "Bob Jr", "Bob  Jr", " Bob", "", "é"),
    params=PARAMS,
    is_wildcard=st.booleans(),
)


@SETTINGS
@given(ADDRS)
def test_name_addr_str_matches_reference(addr: NameAddr) -> None:
    assert str(addr) == _reference_name_addr_str(addr)


@SETTINGS
@given(ADDRS, pieces("tag", "TAG", "x", "İ"), st.none() | TEXT)
def test_with_param_matches_dataclasses_replace(addr: NameAddr, name: str, value: Any) -> None:
    expected = dataclasses.replace(addr, params=tokenizer._set_param(addr.params, name, value))
    built = addr.with_param(name, value)
    assert built == expected and type(built) is NameAddr
    assert addr.with_tag("t1") == dataclasses.replace(
        addr, params=tokenizer._set_param(addr.params, "tag", "t1")
    )


@SETTINGS
@given(PARAMS)
def test_tag_matches_the_general_lookup(params: tokenizer.Params) -> None:
    addr = NameAddr(uri=SipUri(host="h"), params=params)
    assert addr.tag == tokenizer._value(tokenizer._find_param(params, "tag")) == addr.param("tag")


@SETTINGS
@given(PARAMS, pieces("lr", "LR", "method", "transport", "İ", "x"))
def test_uri_param_lookups_match_reference(params: tokenizer.Params, name: str) -> None:
    u = SipUri(host="h", params=params)
    key = name.lower()
    found = [v for n, v in params if n.lower() == key]
    assert u.has_param(name) == bool(found)
    assert u.param(name, "absent") == (
        ("" if found[0] is None else found[0]) if found else "absent"
    )


@SETTINGS
@given(
    st.lists(st.tuples(pieces("tag", "a", "lr", "x-y"), st.none() | pieces("1", "b:c")), max_size=4)
)
def test_fast_params_matches_reference(pairs: list[tuple[str, str | None]]) -> None:
    text = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in pairs)
    reference = tuple(
        (n, v) if eq else (n, None)
        for n, eq, v in (piece.partition("=") for piece in text[1:].split(";"))
    )
    assert tokenizer.fast_params(text) == (reference if text else ())
    assert tokenizer.fast_params(text) == tokenizer.parse_params(text)


# ---------------------------------------------------------------------------- Headers


NAMES = pieces("Via", "via", "v", "To", "t", "Contact", "CSeq", "X-A", "x-a", "bad name", "İ")
VALUES = pieces("1", "<sip:a@b>", "a, b", "", "x\r\ny", "x\ry", "x\n")


@SETTINGS
@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_headers_constructor_matches_adds(items: list[tuple[str, str]]) -> None:
    def built() -> Any:
        h = Headers(items)
        return h._items, h._keys

    def added() -> Any:
        ref = ReferenceHeaders()
        for name, value in items:
            ref.add(name, value)
        return ref._items, ref._keys

    assert outcome(built) == outcome(added)


@SETTINGS
@given(st.lists(st.tuples(NAMES, VALUES), max_size=4), st.booleans())
def test_headers_extend_matches_adds(items: list[tuple[str, str]], parsed: bool) -> None:
    fast = Headers([("To", "<sip:a@b>")])
    slow = Headers([("To", "<sip:a@b>")])
    if parsed:  # a Headers with parses to drop takes add()
        fast._parsed["to"] = slow._parsed["to"] = headers.parse_name_addr("<sip:a@b>")
    results = [outcome(lambda: fast._extend(items))]
    for name, value in items:
        step = outcome(lambda name=name, value=value: slow.add(name, value))  # type: ignore[misc]
        if step[0] == "error":
            results.append(step)
            break
    else:
        results.append(("ok", None))
    assert results[0] == results[1]
    assert fast._items == slow._items and fast._keys == slow._keys
    assert fast._parsed == slow._parsed


# ---------------------------------------------------------------------------- parsing


def _reference_lines(lines: list[str]) -> tuple[list[tuple[str, str]], list[str], str | None]:
    # parse_message's header loop before the ": " split (names learnt the same way).
    items: list[tuple[str, str]] = []
    keys: list[str] = []
    error: str | None = None
    for line in lines:
        name, colon, value = line.partition(":")
        entry = message._NAMES.get(name)
        if entry is None or not colon:
            if line[:1] in (" ", "\t"):
                if items:
                    name, value = items[-1]
                    items[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
                else:
                    error = error or "Bad header folding"
                continue
            entry = message._learn_name(name) if colon else None
            if entry is None:
                error = error or "Bad header line"
                continue
        items.append((entry[0], value.strip(" \t")))
        keys.append(entry[1])
    return items, keys, error


LINE_NAMES = pieces("Via", "via", "v", "To", "From", "X-Hdr", "Call-ID", "CSeq", "Via ", "a b")
SEPARATORS = pieces(": ", ":", " : ", ":\t", ":  ", ": \t", "", "::", ": : ")
LINE_VALUES = pieces("SIP/2.0/UDP h;branch=z9hG4bK1", "<sip:a@b>", "x: y", " ", "", "a ", "1 X")


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.builds("{}{}{}".format, LINE_NAMES, SEPARATORS, LINE_VALUES),
            pieces(" folded", "\tfolded: x", "Via"),
        ),
        max_size=6,
    )
)
def test_header_split_matches_reference(lines: list[str]) -> None:
    mandatory = [
        "Via: SIP/2.0/UDP h;branch=z9hG4bK0",
        "From: <sip:a@b>;tag=1",
        "To: <sip:b@c>",
        "Call-ID: c",
        "CSeq: 1 OPTIONS",
    ]
    all_lines = [*mandatory, *lines]
    items, keys, error = _reference_lines(all_lines)
    data = ("\r\n".join(["OPTIONS sip:b@c SIP/2.0", *all_lines]) + "\r\n\r\n").encode()
    try:
        request: Request | Response | None = parse_message(data)
        reason = None
    except SipParseError as err:
        request, reason = err.partial, err.reason
    if error is not None:  # the loop's error comes first
        assert reason == error
    assert request is not None
    assert request.headers._items == items and request.headers._keys == keys


# ---------------------------------------------------------------------------- transaction


class _Host:
    def __init__(self) -> None:
        self.timers: TimerHeap[TimerKey] = TimerHeap()

    def transmit(self, data: bytes, peer: Peer) -> None:
        pass

    def emit(self, event: object) -> None:
        pass

    def terminated(self, transaction: object, now: float | None) -> None:
        pass


_INVITE = (
    b"INVITE sip:b@c SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    b"From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
)
TO_VALUES = st.none() | pieces(
    "<sip:b@c>", "<sip:b@c>;tag=t1", "<sip:b@c>;tag=t2", "<sip:b@c>;TAG=t3", "<bad", "", "*"
)


@SETTINGS
@given(
    st.lists(st.tuples(st.sampled_from((180, 183, 101)), TO_VALUES, st.booleans()), max_size=12),
    TO_VALUES,
)
def test_ist_to_tag_read_late_is_the_first_tag(
    provisionals: list[tuple[int, str | None, bool]], final: str | None
) -> None:
    invite = parse_message(_INVITE)
    assert isinstance(invite, Request)
    txn = ServerTransaction(_Host(), IST, "s", Peer("udp", "h", 5060), invite)
    txn.feed(Input.RECV_REQUEST, 1.0, invite, txn.peer)
    assert txn.state is PROCEEDING and txn.to_tag is None  # the 100 has no tag
    expected: str | None = None
    for status, to, read in [*provisionals, (200, final, True)]:
        response = Response(status, headers=[] if to is None else [("To", to)])
        txn.feed(Input.SEND_1XX if status < 200 else Input.SEND_2XX, 1.0, response)
        if expected is None:  # the eager rule: the first response above 100 with a tag
            try:
                expected = response.to.tag
            except SipParseError:
                expected = None
        if read:  # read it on the way, as a CANCEL would
            assert txn.to_tag == expected
    assert txn.to_tag == expected


# ---------------------------------------------------------------------------- dialog


def _uas() -> Dialog:
    return Dialog(
        call_id="c",
        local_party=headers.parse_name_addr("<sip:dt@h>;tag=L"),
        remote_party=headers.parse_name_addr('"Bob" <sip:b@c>;tag=R'),
        remote_target=uri.parse_uri("sip:b@10.0.0.1:5062;transport=udp"),
        local_seq=1,
        state=dialog.CONFIRMED,
    )


ROUTES = pieces("<sip:p1;lr>", "<sip:p2>", "<sip:p3;lr;method=INVITE>")
CHANGES = st.lists(
    st.one_of(
        st.tuples(st.just("remote_target"), pieces("sip:x@y", "sip:z@w;method=BYE")),
        st.tuples(st.just("route_set"), st.lists(ROUTES, max_size=2).map(", ".join)),
        st.tuples(st.just("local_party"), pieces("<sip:dt@h>;tag=L2", "Dt <sip:dt@h>")),
        st.tuples(st.just("remote_party"), pieces("<sip:b@c>;tag=R2", '"B\\"b" <sip:b@c>')),
        st.tuples(st.just("build"), st.just("")),
    ),
    max_size=8,
)


@SETTINGS
@given(CHANGES)
def test_dialog_wire_texts_follow_every_change(changes: list[tuple[str, str]]) -> None:
    d = _uas()
    for what, value in [*changes, ("build", "")]:
        if what == "remote_target":
            d.remote_target = uri.parse_uri(value)
        elif what == "route_set":
            d.route_set = tuple(headers.parse_name_addr_list(value)) if value else ()
        elif what == "local_party":
            d.local_party = headers.parse_name_addr(value)
        elif what == "remote_party":
            d.remote_party = headers.parse_name_addr(value)
        request = d.build_request("INFO")
        ruri, routes = d._request_uri_and_routes()
        assert request.uri == ruri and request.headers.get_all("Route") == routes
        assert request.headers.get("From") == str(d.local_party)
        assert request.headers.get("To") == str(d.remote_party)
        assert d.local_tag == (d.local_party.tag or "")
        assert d.remote_tag == (d.remote_party.tag or "")
        assert d.id == DialogId(d.call_id, d.local_tag, d.remote_tag)
        assert type(d.id) is DialogId


def test_twins_build_the_same_results() -> None:
    d = _uas()
    ack = d.build_ack(Response(200, headers=[("CSeq", "1 INVITE")]))
    assert dialog.uac_result(d, ack, answered=True) == UacResult(d, ack=ack, answered=True)
    assert dialog.uac_result(None) == UacResult()
    assert type(dialog.uac_result(None)) is UacResult
    response = Response(200)
    assert dialog._handled(response, True) == Handled(response, ended=True)
    assert type(dialog._handled(response)) is Handled


CONTACTS = st.lists(pieces("<sip:b@10.0.0.3>", "*", "<bad", "sip:c@d", "<sip:e@f>, <sip:g@h>"))


@SETTINGS
@given(CONTACTS, pieces("sip:b@c", "tel:123", "sip:"))
def test_remote_target_matches_contact_target(contacts: list[str], ruri: str) -> None:
    invite = Request("INVITE", ruri, [("To", "<sip:b@c>"), ("CSeq", "1 INVITE")])
    response = Response(
        180, headers=[("To", "<sip:b@c>;tag=x"), *(("Contact", c) for c in contacts)]
    )
    response.to  # noqa: B018  # UacDialog reads it first
    expected = outcome(lambda: contact_target(response, dialog_uac._request_uri(invite, response)))
    assert outcome(lambda: dialog_uac._remote_target(invite, response)) == expected


@SETTINGS
@given(
    st.lists(
        st.tuples(pieces("Authorization", "Proxy-Authorization", "From", "X-A"), pieces("v")),
        max_size=5,
    )
)
def test_uac_credentials_match_reference(lines: list[tuple[str, str]]) -> None:
    invite = Request(
        "INVITE",
        "sip:b@c",
        [("From", "<sip:a@b>;tag=1"), ("Call-ID", "c"), ("CSeq", "1 INVITE"), *lines],
    )
    response = Response(200, headers=[("To", "<sip:b@c>;tag=x"), ("CSeq", "1 INVITE")])
    reference = tuple((n, v) for n, v in invite.headers if n in dialog_uac._CREDENTIALS)
    assert dialog_uac.UacDialog(invite, response)._credentials == reference


# ---------------------------------------------------------------------------- messages


@SETTINGS
@given(
    st.lists(st.tuples(pieces("Via", "To", "X-A", "Content-Length"), pieces("1", "", "a b"))),
    st.binary(max_size=3),
)
def test_response_to_bytes_uses_canonical_lines(items: list[tuple[str, str]], body: bytes) -> None:
    response = Response(180, headers=items, body=body)
    expected = [f"{n}: {v}" for n, v in response.headers._items]
    head = response.to_bytes().split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    assert head[0] == "SIP/2.0 180 Ringing"
    if "content-length" not in response.headers._keys:
        assert head[1:] == [*expected, f"Content-Length: {len(body)}"]


def test_a_non_2xx_with_a_bare_cr_in_to_is_acked() -> None:
    # Found by test_endpoint's fuzzing: Headers.add refused the To (ValueError) and the
    # ACK escaped SipEndpoint.receive; the ACK now copies the To as received.
    invite = Request(
        "INVITE",
        "sip:b@c",
        [
            ("Via", "SIP/2.0/UDP h:5060;branch=z9hG4bKc1"),
            ("From", "<sip:a@b>;tag=1"),
            ("To", "<sip:b@c>"),
            ("Call-ID", "c"),
            ("CSeq", "1 INVITE"),
        ],
    )
    data = (
        b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKc1\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>;tag=2\r \r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    response = parse_message(data)
    assert isinstance(response, Response)
    ack = build_ack(invite, response)
    assert ack.headers.get("To") == "<sip:b@c>;tag=2\r"
    assert ack.headers._keys == ["via", "max-forwards", "from", "call-id", "to", "cseq"]
    assert make_response(invite, 200, to_tag="t").headers.get("To") == "<sip:b@c>;tag=t"


def test_canonical_names_are_the_lookup_keys() -> None:
    # make_response finds the Via lines by key, UacDialog the credentials by key.
    for name, key in CANON.values():
        assert Headers([(name, "v")])._keys == [key]


@SETTINGS
@given(
    st.builds(
        "{}{}{}".format,
        pieces("1", "0", "2147483647", "2147483648", "007", "", "x", "1" * 12, " 1", "²"),
        pieces(" ", "  ", "\t", ""),
        pieces("INVITE", "BYE", "FOO", "", "INVITE ", "bye", "A B"),
    )
)
def test_cseq_accessor_matches_parse_cseq(value: str) -> None:
    response = Response(200, headers=[("CSeq", value)])
    assert outcome(lambda: response.cseq) == outcome(lambda: headers.parse_cseq(value))


TRYING_LINES = st.lists(
    st.tuples(
        pieces("Via", "v", "From", "To", "Call-ID", "i", "CSeq", "Timestamp", "X-A", "Contact"),
        pieces("SIP/2.0/UDP h;branch=z9hG4bK1", "<sip:a@b>", "54", "1 INVITE", "é", "a\rb"),
    ),
    max_size=9,
)


@SETTINGS
@given(TRYING_LINES)
def test_trying_bytes_match_make_response(lines: list[tuple[str, str]]) -> None:
    request = Request("INVITE", "sip:b@c", [])
    request.headers._items = [(Headers._entry(n, "")[0], v) for n, v in lines]
    request.headers._keys = [Headers._entry(n, "")[1] for n, _ in lines]  # as parsed

    def reference() -> bytes:
        trying = make_response(request, 100)
        timestamp = request.headers.get("Timestamp")
        if timestamp is not None:
            trying.headers.add("Timestamp", timestamp)
        return trying.to_bytes()

    built = message.trying_bytes(request)
    expected = outcome(reference)
    if built is None:
        assert expected[0] == "error"
    else:
        assert ("ok", built) == expected


@SETTINGS
@given(st.one_of(VIAS, TEXT, st.tuples(VIAS, VIAS).map(", ".join), VIAS.map(" {} ".format)))
def test_top_via_matches_parse_via_list(line: str) -> None:
    request = Request("OPTIONS", "sip:b@c", [])
    request.headers._items, request.headers._keys = [("Via", line)], ["via"]
    assert outcome(lambda: request.top_via) == outcome(lambda: headers.parse_via_list(line)[0])
