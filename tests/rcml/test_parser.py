"""parse_document: fixture documents, the spec's examples, structure, lines and messages.

Fixtures live in ``documents/good`` and ``documents/bad``.  A fixture may start with one
expectation comment, which the test blanks (so line numbers stay those of the file)::

    <!-- expect 12200 "unknown element 'Dail'" -->                   bad: code, message part
    <!-- expect warning 12200 "ignored" warning 13511 "voice" -->    good: warnings in order

followed by options: ``whisper``, ``sips``, ``url=...``, ``content-type=...``,
``clients=a,b``.  A good fixture without a comment must give no warning.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dialtone.rcml.errors import RcmlError, RcmlWarning
from dialtone.rcml.nodes import (
    SPECS,
    ClientNoun,
    Dial,
    Document,
    Gather,
    Hangup,
    NumberNoun,
    Pause,
    Play,
    Redirect,
    Reject,
    Say,
    SipNoun,
    field_name,
)
from dialtone.rcml.parser import MAX_BODY, UNSUPPORTED_VERBS, VERBS, parse_document

DOCUMENTS = Path(__file__).parent / "documents"
URL = "http://app.test/voice"


@dataclass
class Fixture:
    """A fixture file: its body (expectation line blanked) and what it declares."""

    body: bytes
    code: int | None = None
    fragment: str = ""
    warnings: list[tuple[int, str]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def load_fixture(path: Path) -> Fixture:
    """Read a fixture and its ``<!-- expect ... -->`` first line."""
    raw = path.read_bytes()
    first, newline, rest = raw.partition(b"\n")
    if not first.startswith(b"<!-- expect "):
        return Fixture(raw)
    words = shlex.split(first.decode()[len("<!-- expect ") : -len("-->")])
    fixture = Fixture(newline + rest)
    fixture.options = {"url": URL, "content_type": "text/xml"}
    while words:
        word = words.pop(0)
        if word == "warning":
            fixture.warnings.append((int(words.pop(0)), words.pop(0)))
        elif word.isdigit():
            fixture.code, fixture.fragment = int(word), words.pop(0)
        elif word == "whisper":
            fixture.options["whisper"] = True
        elif word == "sips":
            fixture.options["sips_allowed"] = True
        elif word.startswith("clients="):
            fixture.options["known_clients"] = set(word[len("clients=") :].split(","))
        elif word.startswith("url="):
            fixture.options["url"] = word[len("url=") :]
        elif word.startswith("content-type="):
            fixture.options["content_type"] = word[len("content-type=") :]
        else:
            raise AssertionError(f"{path.name}: unknown expectation word {word!r}")
    return fixture


def parse_fixture(fixture: Fixture) -> Document:
    options = {"url": URL, "content_type": "text/xml", **fixture.options}
    url = options.pop("url")
    return parse_document(fixture.body, url, **options)


def parse(text: str, **options: Any) -> Document:
    options.setdefault("content_type", "text/xml")
    return parse_document(text.encode(), options.pop("url", URL), **options)


def error_of(text: str | bytes, **options: Any) -> RcmlError:
    options.setdefault("content_type", "text/xml")
    body = text.encode() if isinstance(text, str) else text
    with pytest.raises(RcmlError) as info:
        parse_document(body, options.pop("url", URL), **options)
    return info.value


GOOD = sorted((DOCUMENTS / "good").glob("*.xml"))
BAD = sorted((DOCUMENTS / "bad").glob("*.xml"))


# --- fixtures --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_fixture_parses_with_its_declared_warnings(path: Path) -> None:
    fixture = load_fixture(path)
    document = parse_fixture(fixture)
    got = [(w.code, w.message_text) for w in document.warnings]
    assert [code for code, _ in got] == [code for code, _ in fixture.warnings], got
    for (_, text), (_, fragment) in zip(got, fixture.warnings, strict=True):
        assert fragment in text


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_fixture_raises_its_declared_code_and_message(path: Path) -> None:
    fixture = load_fixture(path)
    assert fixture.code is not None, f"{path.name} declares no expected code"
    with pytest.raises(RcmlError) as info:
        parse_fixture(fixture)
    assert info.value.code == fixture.code, str(info.value)
    assert fixture.fragment in str(info.value)


def test_fixtures_cover_every_code_the_parser_produces() -> None:
    """DOC-22: every code the parser can produce has at least one fixture."""
    codes = {load_fixture(p).code for p in BAD}
    codes |= {code for p in GOOD for code, _ in load_fixture(p).warnings}
    produced = {11100, 11243, 11770, 12100, 12102, 12200, 12300, 13201, 13210, 13212, 13213}
    produced |= {13214, 13215, 13216, 13217, 13221, 13222, 13223, 13241, 13243, 13249, 13250}
    produced |= {13310, 13312, 13313, 13314, 13320, 13326, 13410, 13430, 13510, 13511, 13520}
    produced |= {13710, 13910, 21626}
    assert produced <= codes, sorted(produced - codes)
    # 11750 (too large), 13251 (long URI headers), 13521 (long Say), 82001 are tested below.


# --- spec examples ---------------------------------------------------------------------------


def test_ex_v1_menu() -> None:
    """Ex. V-1: Gather action resolved against the document URL, its Say, then a Say."""
    document = parse(
        '<Response><Gather numDigits="1" action="/menu"><Say>Press 1 for sales.</Say>'
        "</Gather><Say>Goodbye.</Say></Response>"
    )
    gather, goodbye = document.verbs
    assert gather == Gather(
        action="http://app.test/menu",
        num_digits=1,
        children=(Say(text="Press 1 for sales.", element="Response/Gather[1]/Say[1]", line=1),),
        element="Response/Gather[1]",
        line=1,
    )
    assert goodbye == Say(text="Goodbye.", element="Response/Say[1]", line=1)
    assert document.url == URL
    assert document.warnings == ()


def test_ex_v2_reject_busy() -> None:
    (reject,) = parse('<Response><Reject reason="busy"/></Response>').verbs
    assert reject == Reject(reason="busy", element="Response/Reject[1]", line=1)


def test_ex_v3_message_is_exactly_the_spec_text() -> None:
    error = error_of("<Response><Say>hi</Say><Dail>+1555</Dail></Response>")
    assert error.code == 12200
    assert error.log == 0
    assert str(error) == (
        "Response/Dail[1] (line 1) of http://app.test/voice: unknown element 'Dail'"
    )
    assert (error.element, error.line, error.url) == ("Response/Dail[1]", 1, URL)


def test_doc21_example_message() -> None:
    error = error_of(
        "<Response>\n<Dial>\n<Client>a</Client>\n"
        '<Client statusCallback="/cb" statusCallbackEvent="initiated answred">b</Client>\n'
        "</Dial></Response>"
    )
    assert error.code == 21626
    assert error.message_text == (
        "Response/Dial[1]/Client[2] (line 4) of http://app.test/voice: statusCallbackEvent "
        "has unknown event 'answred'; allowed: initiated, ringing, answered, completed"
    )


def test_ex_d7_client_empty_and_no_branch() -> None:
    error = error_of("<Response><Dial><Client></Client></Dial></Response>")
    assert error.code == 12200
    assert "client name is empty" in str(error)


def test_ex_w4_whisper_with_dial() -> None:
    error = error_of(
        "<Response><Say>hi</Say><Dial>+15551230000</Dial></Response>",
        url="http://app.test/screen",
        whisper=True,
    )
    assert error.code == 13201
    assert "whisper document http://app.test/screen contains Dial (line 1)" in str(error)
    assert error.element == "Response/Dial[1]"


def test_same_document_with_dial_is_fine_outside_a_whisper() -> None:
    (_, dial) = parse("<Response><Say>hi</Say><Dial>+15551230000</Dial></Response>").verbs
    assert isinstance(dial, Dial)
    assert dial.nouns == (NumberNoun(number="+15551230000", element="Response/Dial[1]", line=1),)


def test_seed_example_1_dials_alice() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "seed-1-client.xml"))
    (dial,) = document.verbs
    assert isinstance(dial, Dial)
    assert dial.nouns == (ClientNoun(login="Alice", element="Response/Dial[1]/Client[1]", line=4),)
    assert (dial.timeout, dial.time_limit, dial.caller_id, dial.action) == (30, 14400, None, None)


def test_seed_example_2_simultaneous_dialing() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "seed-2-simultaneous.xml"))
    (dial,) = document.verbs
    assert isinstance(dial, Dial)
    assert dial.caller_id == "+19898XXXXXXX"  # a SIP user token (DIAL-1)
    number, jenny, tommy = dial.nouns
    assert isinstance(number, NumberNoun) and number.number == "1233214321"
    assert isinstance(jenny, ClientNoun) and jenny.login == "jenny"
    assert isinstance(tommy, ClientNoun) and tommy.element == "Response/Dial[1]/Client[2]"


def test_seed_example_3_progress_events_and_trimmed_name() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "seed-3-progress-events.xml"))
    (dial,) = document.verbs
    assert isinstance(dial, Dial)
    (thomas,) = dial.nouns
    assert thomas == ClientNoun(
        login="thomas",
        status_callback="https://myapp.com/calls/events",
        status_callback_method="POST",
        status_callback_events=frozenset({"initiated", "ringing", "answered", "completed"}),
        element="Response/Dial[1]/Client[1]",
        line=4,
    )


def test_client_text_is_trimmed_of_newlines() -> None:
    (dial,) = parse("<Response><Dial><Client>\n  thomas\n</Client></Dial></Response>").verbs
    assert isinstance(dial, Dial)
    assert [n.login for n in dial.nouns if isinstance(n, ClientNoun)] == ["thomas"]


def test_dial_common_rcml_resolves_relative_urls() -> None:
    (dial, say) = parse_fixture(load_fixture(DOCUMENTS / "good" / "dial-common.xml")).verbs
    assert isinstance(dial, Dial) and isinstance(say, Say)
    assert (dial.action, dial.timeout) == ("http://app.test/dial-done", 20)
    for noun in dial.nouns:
        assert noun.status_callback == "http://app.test/cb"
        assert noun.status_callback_events == {"initiated", "ringing", "answered", "completed"}


def test_ex_d5_only_completed_is_subscribed() -> None:
    """CB-2: a callback URL without an event list subscribes to ``completed`` only."""
    (dial,) = parse_fixture(load_fixture(DOCUMENTS / "good" / "ex-d5-mixed-nouns.xml")).verbs
    assert isinstance(dial, Dial)
    assert dial.caller_id == "+19898000000"
    assert [n.status_callback_events for n in dial.nouns] == [frozenset({"completed"})] * 3
    assert isinstance(dial.nouns[0], NumberNoun) and dial.nouns[0].number == "1233214321"


def test_whisper_parent_and_screen() -> None:
    (dial,) = parse_fixture(load_fixture(DOCUMENTS / "good" / "whisper-parent.xml")).verbs
    assert isinstance(dial, Dial)
    assert [n.url for n in dial.nouns] == ["http://app.test/screen"] * 2
    assert [n.method for n in dial.nouns] == ["POST"] * 2
    screen = parse_fixture(load_fixture(DOCUMENTS / "good" / "whisper-screen.xml"))
    gather, hangup = screen.verbs
    assert isinstance(gather, Gather) and isinstance(hangup, Hangup)
    assert gather.action == "http://app.test/screen-result"
    assert (gather.num_digits, gather.timeout) == (1, 5)


def test_gather_without_action_uses_the_document_url() -> None:
    """VRB-4, WSP-10: the default action is the URL of the document it belongs to."""
    (gather,) = parse("<Response><Gather/></Response>", url="http://app.test/screen#rc=0").verbs
    assert isinstance(gather, Gather)
    assert gather.action == "http://app.test/screen#rc=0"
    assert (gather.method, gather.timeout, gather.finish_on_key) == ("POST", 5, "#")
    assert (gather.num_digits, gather.input, gather.action_on_empty_result) == (None, "dtmf", False)


# --- Dial structure (DIAL-2, DIAL-3, DIAL-12) --------------------------------------------


def _nouns(count: int) -> str:
    return "".join(f"<Number>+1555000{i:04d}</Number>" for i in range(count))


def test_ten_nouns_are_allowed() -> None:
    (dial,) = parse(f"<Response><Dial>{_nouns(10)}</Dial></Response>").verbs
    assert isinstance(dial, Dial) and len(dial.nouns) == 10


def test_eleven_nouns_name_the_count() -> None:
    error = error_of(f"<Response><Dial>{_nouns(11)}</Dial></Response>")
    assert error.code == 13250
    assert "Dial has 11 nouns; allowed: at most 10" in str(error)


def test_nouns_are_counted_before_duplicates_are_removed() -> None:
    error = error_of("<Response><Dial>" + "<Client>alice</Client>" * 11 + "</Dial></Response>")
    assert error.code == 13250


def test_duplicates_are_dialled_once_with_the_first_attributes() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "duplicate-nouns.xml"))
    (dial,) = document.verbs
    assert isinstance(dial, Dial)
    assert [n.element for n in dial.nouns] == [
        "Response/Dial[1]/Client[1]",
        "Response/Dial[1]/Number[1]",
        "Response/Dial[1]/Sip[1]",
        "Response/Dial[1]/Client[3]",
    ]
    alice = dial.nouns[0]
    assert isinstance(alice, ClientNoun) and alice.status_callback is None  # first one wins
    assert all(w.code == 12200 and w.log == 1 for w in document.warnings)


def test_text_only_dial_is_one_number() -> None:
    (dial,) = parse_fixture(load_fixture(DOCUMENTS / "good" / "dial-text-only.xml")).verbs
    assert isinstance(dial, Dial)
    assert dial.nouns == (NumberNoun(number="+15551230000", element="Response/Dial[1]", line=3),)
    assert dial.caller_id == "client:alice"


@pytest.mark.parametrize("noun", ["Conference", "Queue", "Video"])
def test_conference_queue_video_are_not_supported(noun: str) -> None:
    error = error_of(f"<Response><Dial><{noun}>x</{noun}></Dial></Response>")
    assert error.code == 12200
    assert f"noun '{noun}' is not supported" in str(error)


def test_sip_noun_fields() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "sip-full.xml"))
    (dial,) = document.verbs
    assert isinstance(dial, Dial)
    (sip,) = dial.nouns
    assert sip == SipNoun(
        uri="sip:+15551230000@carrier.example:5070;transport=tcp",
        headers=(("X-Account", "42"), ("X-Priority", "urgent")),
        username="trunk",
        password="s3cret",
        url="http://app.test/screen",
        method="GET",
        status_callback="http://app.test/cb#rc=0&ct=1000",
        status_callback_method="GET",
        status_callback_events=frozenset({"completed"}),
        element="Response/Dial[1]/Sip[1]",
        line=3,
    )


def test_sips_is_accepted_with_a_tls_transport() -> None:
    text = "<Response><Dial><Sip>sips:bob@example.com</Sip></Dial></Response>"
    assert error_of(text).code == 13243
    (dial,) = parse(text, sips_allowed=True).verbs
    assert isinstance(dial, Dial) and isinstance(dial.nouns[0], SipNoun)


def test_sip_uri_and_header_length_limits() -> None:
    def doc(uri: str) -> str:
        return f"<Response><Dial><Sip>{uri}</Sip></Dial></Response>"

    base = "sip:bob@" + "h" * (255 - len("sip:bob@"))
    assert parse(doc(base)).verbs
    assert "256 characters long" in str(error_of(doc(base + "h")))
    headers = "X-A=" + "v" * (1024 - 4)
    assert parse(doc(f"sip:bob@example.com?{headers}")).verbs
    error = error_of(doc(f"sip:bob@example.com?{headers}v"))
    assert error.code == 13251
    assert "1025 characters long; allowed: 1024" in str(error)


def test_known_clients_warn_82001_for_unknown_ones() -> None:
    text = "<Response><Dial><Client>alice</Client><Client>carol</Client></Dial></Response>"
    document = parse(text, known_clients={"alice", "bob"})
    assert [(w.code, w.element) for w in document.warnings] == [
        (82001, "Response/Dial[1]/Client[2]")
    ]
    assert "Client 'carol' is not a Client of this account" in str(document.warnings[0])
    assert parse(text).warnings == ()


# --- documents, bodies, content types (DOC-2, DOC-3) -------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/xml",
        "application/xml",
        "text/html",
        "application/rss+xml",
        "TEXT/XML; charset=utf-8",
        "application/vnd.example+xml ; q=1",
    ],
)
def test_xml_content_types(content_type: str) -> None:
    assert parse("<Response><Hangup/></Response>", content_type=content_type).verbs


@pytest.mark.parametrize("content_type", ["audio/wav", "audio/wave", "audio/x-wav; rate=8000"])
def test_audio_content_types_play_the_url(content_type: str) -> None:
    document = parse_document(b"RIFF\x00\x00", URL, content_type=content_type)
    assert document.verbs == (Play(url=URL, element="Response/Play[1]", line=1),)


def test_audio_body_size_does_not_matter() -> None:
    assert parse_document(b"", URL, content_type="audio/wav").verbs
    assert parse_document(b"\0" * (MAX_BODY + 1), URL, content_type="audio/wav").verbs


def test_text_plain_is_said() -> None:
    document = parse_document(b"  Hello there.\n", URL, content_type="text/plain")
    assert document.verbs == (Say(text="Hello there.", element="Response/Say[1]", line=1),)
    latin = parse_document(
        "Grüß".encode("latin-1"), URL, content_type="text/plain; charset=latin-1"
    )
    assert isinstance(latin.verbs[0], Say) and latin.verbs[0].text == "Grüß"


def test_text_plain_too_long_is_13521() -> None:
    error = error_of(b"a" * 4097, content_type="text/plain")
    assert error.code == 13521
    assert "Say text is 4097 characters; allowed: 1-4096" in str(error)
    assert parse_document(b"a" * 4096, URL, content_type="text/plain").verbs


@pytest.mark.parametrize("content_type", [None, "", "application/json", "audio/mpeg", "text"])
def test_unusable_content_types_are_12300(content_type: str | None) -> None:
    error = error_of("<Response/>", content_type=content_type)
    assert error.code == 12300
    assert error.element is None
    assert str(error).startswith("http://app.test/voice: Content-Type is ")


@pytest.mark.parametrize("body", [b"", b"   \n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_bodies_are_11770(body: bytes) -> None:
    for content_type in ("text/xml", "text/plain", None):
        assert error_of(body, content_type=content_type).code == 11770


def test_body_over_64_kib_is_11750() -> None:
    say = "<Say>x</Say>"
    fits = "<Response>" + " " * (MAX_BODY - len(say) - 21) + say + "</Response>"
    assert len(fits) == MAX_BODY
    assert parse(fits).verbs
    error = error_of(fits + " ")
    assert error.code == 11750
    assert f"{MAX_BODY + 1} bytes; allowed: at most {MAX_BODY}" in str(error)


def test_bom_and_whitespace_before_the_declaration_are_tolerated() -> None:
    body = (
        b'\xef\xbb\xbf \r\n\n  <?xml version="1.0"?>\n<Response>\n<Say>hi</Say>\n<Dail/></Response>'
    )
    error = error_of(body)
    assert error.code == 12200
    assert error.line == 6  # lines count from the first byte, BOM and whitespace included
    assert parse_document(body.replace(b"<Dail/>", b""), URL, content_type="text/xml").verbs


def test_syntax_error_column_accounts_for_leading_whitespace() -> None:
    error = error_of(b"   <Response><Say></Response>")
    assert (error.code, error.line, error.column) == (12100, 1, 21)  # at the name after "</"
    assert str(error).startswith("line 1, column 21 of http://app.test/voice: XML is not")


def test_utf16_document() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><Response><Say>hé</Say></Response>'
    document = parse_document(body.encode("utf-16"), URL, content_type="text/xml")
    assert isinstance(document.verbs[0], Say) and document.verbs[0].text == "hé"


def test_xml_errors_carry_line_and_column() -> None:
    error = error_of("<Response>\n  <Say>\n</Response>")
    assert (error.code, error.line, error.column, error.element) == (12100, 3, 3, None)


# --- element rules (DOC-4) ---------------------------------------------------------------


@pytest.mark.parametrize("verb", sorted(UNSUPPORTED_VERBS))
def test_unsupported_verbs_are_12200(verb: str) -> None:
    error = error_of(f"<Response>\n<Say>hi</Say>\n<{verb}/></Response>")
    assert error.code == 12200
    assert f"Response/{verb}[1] (line 3)" in str(error)
    assert f"verb '{verb}' is not supported" in str(error)


def test_doc4_unsupported_list_is_complete() -> None:
    doc4 = {"Record", "Enqueue", "Leave", "Conference", "Sms", "Message", "Refer", "Connect"}
    assert {*doc4, "Start", "Stop", "Echo"} == UNSUPPORTED_VERBS
    assert list(VERBS) == ["Say", "Play", "Pause", "Gather", "Dial", "Hangup", "Reject", "Redirect"]


def test_paths_count_per_tag() -> None:
    error = error_of(
        "<Response><Say>a</Say><Pause/><Say>b</Say><Dial><Number>1</Number><Client>a</Client>"
        "<Number>2</Number><Client>b c</Client></Dial></Response>"
    )
    assert error.element == "Response/Dial[1]/Client[2]"


def test_xml_and_xmlns_attributes_are_ignored_without_warning() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "xml-namespace-attributes.xml"))
    assert document.warnings == ()
    (say,) = document.verbs
    assert isinstance(say, Say) and say.language == "fr-FR"


def test_text_directly_in_response() -> None:
    error = error_of("<Response>\n  <Say>hi</Say>\n  hello\n</Response>")
    assert (error.code, error.element, error.line) == (12200, "Response", 3)


def test_whitespace_only_elements_and_comments_are_fine() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "xml-declaration-and-comments.xml"))
    (say,) = document.verbs
    assert isinstance(say, Say) and say.text == "Fish & chips <today>"


def test_line_numbers_of_nodes() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "verbs-everywhere-lines.xml"))
    assert [v.line for v in document.verbs] == [3, 6]


def test_all_attributes_document() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "all-attributes.xml"))
    say, play, digits, pause, gather, dial, reject, redirect = document.verbs
    assert say == Say(text="Hallo", voice="woman", language="de", loop=0, element=say.element,
                      line=2)  # fmt: skip
    assert isinstance(play, Play) and (play.url, play.loop) == ("https://cdn.example/hello.wav", 3)
    assert isinstance(digits, Play) and (digits.url, digits.digits) == (None, "1w2W#*")
    assert isinstance(pause, Pause) and pause.length == 600
    assert isinstance(gather, Gather)
    assert gather.action == "http://app.test/menu?x=1#tt=60000&rp=ct,5xx"
    assert (gather.method, gather.timeout, gather.finish_on_key) == ("GET", 600, "")
    assert (gather.num_digits, gather.action_on_empty_result) == (100, True)
    assert [type(c) for c in gather.children] == [Play, Pause]
    assert isinstance(dial, Dial)
    assert (dial.action, dial.method, dial.timeout) == ("http://other.example/done", "GET", 600)
    assert (dial.time_limit, dial.caller_id, dial.hangup_on_star) == (86400, "+15557654321", True)
    (number,) = dial.nouns
    assert number == NumberNoun(
        number="+15551230000",
        send_digits="ww1234#",
        url="http://app.test/whisper",
        method="GET",
        status_callback="http://app.test/cb",
        status_callback_method="GET",
        status_callback_events=frozenset({"completed"}),
        element="Response/Dial[1]/Number[1]",
        line=12,
    )
    assert reject == Reject(reason="rejected", element="Response/Reject[1]", line=15)
    assert redirect == Redirect(url="http://app.test/start", method="GET",
                                element="Response/Redirect[1]", line=16)  # fmt: skip


def test_attribute_values_are_trimmed_and_methods_upper_cased() -> None:
    document = parse_fixture(load_fixture(DOCUMENTS / "good" / "attribute-values-trimmed.xml"))
    gather, pause = document.verbs
    assert isinstance(gather, Gather) and isinstance(pause, Pause)
    assert (gather.num_digits, gather.method, gather.action) == (4, "POST", "http://app.test/pin")
    assert gather.finish_on_key == "*"
    assert pause.length == 3


def test_client_prefix_is_removed() -> None:
    (dial,) = parse_fixture(load_fixture(DOCUMENTS / "good" / "client-prefix.xml")).verbs
    assert isinstance(dial, Dial)
    assert [n.login for n in dial.nouns if isinstance(n, ClientNoun)] == ["alice", "thomas"]


def test_events_are_split_on_whitespace_and_commas() -> None:
    (dial,) = parse_fixture(load_fixture(DOCUMENTS / "good" / "events-separators.xml")).verbs
    assert isinstance(dial, Dial)
    assert [n.status_callback_events for n in dial.nouns] == [
        {"initiated", "answered"},
        {"ringing", "completed"},
        {"ringing", "initiated"},
        {"completed"},
    ]


def test_say_too_long_is_13521() -> None:
    error = error_of(f"<Response><Say>{'a' * 4097}</Say></Response>")
    assert error.code == 13521


# --- the model ---------------------------------------------------------------------------


def test_every_spec_attribute_is_a_field_of_its_node() -> None:
    nodes: dict[str, type] = {
        "Say": Say, "Play": Play, "Pause": Pause, "Gather": Gather, "Dial": Dial,
        "Client": ClientNoun, "Number": NumberNoun, "Sip": SipNoun, "Hangup": Hangup,
        "Reject": Reject, "Redirect": Redirect,
    }  # fmt: skip
    for tag, spec in SPECS.items():
        if tag == "Response":
            continue
        fields = {f.name for f in dataclasses.fields(nodes[tag])}
        for attribute in spec.attributes:
            assert field_name(attribute) in fields, (tag, attribute)


def test_nodes_are_frozen_and_slotted() -> None:
    say = Say(text="hi", element="Response/Say[1]", line=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        say.text = "bye"  # type: ignore[misc]
    assert not hasattr(say, "__dict__")


def test_error_and_warning_records() -> None:
    error = RcmlError(13212, "timeout is '0'", "Response/Dial[1]", 3, URL)
    assert (
        str(error)
        == error.message_text
        == ("Response/Dial[1] (line 3) of http://app.test/voice: timeout is '0'")
    )
    assert repr(error).startswith("RcmlError(13212, ")
    warning = RcmlWarning(12200, "attribute trim is ignored", "Response/Dial[1]", 3, URL)
    assert warning.log == 1
    assert (
        str(warning)
        == "Response/Dial[1] (line 3) of http://app.test/voice: attribute trim is ignored"
    )
    assert str(RcmlError(11770, "empty", url=URL)) == "http://app.test/voice: empty"
