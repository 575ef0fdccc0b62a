"""The value parsers of dialtone.rcml.attributes (HOOK-2, HOOK-4, CB-2, DIAL-1..DIAL-7, VRB)."""

from __future__ import annotations

import pytest

from dialtone.rcml import attributes as at
from dialtone.rcml.attributes import ValueProblem

BASE = "http://app.test/voice"


def problem(call: object, *args: object, **kwargs: object) -> ValueProblem:
    assert callable(call)
    with pytest.raises(ValueProblem) as info:
        call(*args, **kwargs)
    return info.value


# --- integers, methods, booleans, choices ------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("600", 600), ("007", 7)])
def test_parse_int_in_range(text: str, value: int) -> None:
    assert at.parse_int("timeout", text, low=1, high=600, code=13212) == value


@pytest.mark.parametrize(
    "text", ["0", "601", "", "-1", "+5", "1.0", "1e2", " 5", "٣", "²", "9" * 5000]
)
def test_parse_int_rejects(text: str) -> None:
    err = problem(at.parse_int, "timeout", text, low=1, high=600, code=13212)
    assert err.code == 13212
    assert err.detail.startswith("timeout is '")
    assert err.detail.endswith("; allowed: an integer 1-600")


def test_long_values_are_shortened_in_messages() -> None:
    err = problem(at.parse_int, "loop", "9" * 5000, low=0, high=1000, code=13510)
    assert len(err.detail) < 200
    assert "..." in err.detail


@pytest.mark.parametrize(("text", "method"), [("GET", "GET"), ("post", "POST"), ("Get", "GET")])
def test_methods_are_case_insensitive(text: str, method: str) -> None:
    assert at.parse_method("method", text, code=13210) == method


@pytest.mark.parametrize("text", ["PUT", "", "GETS", "HEAD"])
def test_bad_methods(text: str) -> None:
    err = problem(at.parse_method, "method", text, code=13710)
    assert (err.code, err.detail) == (13710, f"method is '{text}'; allowed: GET, POST")


def test_booleans_are_lower_case_words() -> None:
    assert at.parse_bool("hangupOnStar", "true", code=13213) is True
    assert at.parse_bool("hangupOnStar", "false", code=13213) is False
    for text in ("True", "1", "yes", ""):
        assert problem(at.parse_bool, "hangupOnStar", text, code=13213).code == 13213


def test_parse_choice() -> None:
    assert at.parse_choice("reason", "busy", ("rejected", "busy"), code=12200) == "busy"
    err = problem(at.parse_choice, "reason", "Busy", ("rejected", "busy"), code=12200)
    assert err.detail == "reason is 'Busy'; allowed: rejected, busy"


# --- URLs (HOOK-2, HOOK-3, HOOK-4) -------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "url"),
    [
        ("/menu", "http://app.test/menu"),
        ("menu", "http://app.test/menu"),
        ("../up?x=1", "http://app.test/up?x=1"),
        ("?q=2", "http://app.test/voice?q=2"),
        ("//cdn.example/a.wav", "http://cdn.example/a.wav"),
        ("https://other.example:8443/x", "https://other.example:8443/x"),
        ("/cb?leg=b#rc=0&ct=1000", "http://app.test/cb?leg=b#rc=0&ct=1000"),
        ("#section", "http://app.test/voice#section"),
        ("HTTP://App.Test/Path", "HTTP://App.Test/Path"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("/caf\u00e9", "http://app.test/caf\u00e9"),
    ],
)
def test_urls_resolve_against_the_document(ref: str, url: str) -> None:
    assert at.resolve_url("action", ref, BASE) == url


def test_relative_urls_resolve_against_the_final_document_url() -> None:
    assert at.resolve_url("url", "next", "https://b.example/dir/doc?x") == (
        "https://b.example/dir/next"
    )


@pytest.mark.parametrize(
    ("ref", "part"),
    [
        ("", "action is empty"),
        ("/a b", "contains whitespace"),
        ("/a\tb", "contains whitespace"),
        ("/a\x01", "contains whitespace"),
        ("ftp://app.test/x", "is not an http(s) URL"),
        ("mailto:a@b.c", "is not an http(s) URL"),
        ("http:///menu", "has no host"),
        ("http:menu", "has no host"),
        ("http://app.test:99999/", "is not a URL"),
        ("http://[::1/", "is not a URL"),
    ],
)
def test_invalid_urls_are_11100(ref: str, part: str) -> None:
    err = problem(at.resolve_url, "action", ref, BASE)
    assert err.code == 11100
    assert part in err.detail
    assert "allowed: an absolute http(s) URL or a relative reference" in err.detail


def test_relative_reference_against_a_base_without_host() -> None:
    assert problem(at.resolve_url, "action", "/x", "urn:x").code == 11100


def test_url_length_limit_is_4000_after_resolution() -> None:
    path = "/" + "a" * (4000 - len("http://app.test/"))
    assert len(at.resolve_url("action", path, BASE)) == 4000
    err = problem(at.resolve_url, "action", path + "a", BASE)
    assert (err.code, err.detail) == (
        11100,
        "action is 4001 characters long after resolution; allowed: 4000",
    )


@pytest.mark.parametrize(
    ("fragment", "found"),
    [
        ("", {}),
        ("section-2", {}),
        ("a=1&b", {}),  # not every part is key=value: another shape, ignored
        ("ct=100&rt=15000&tt=60000&rc=0", {"ct": 100, "rt": 15000, "tt": 60000, "rc": 0}),
        ("ct=10000&rc=5&x=whatever", {"ct": 10000, "rc": 5}),
        ("rp=ct,5xx", {"rp": frozenset({"ct", "5xx"})}),
        ("rp=ALL", {"rp": frozenset({"all"})}),
        ("rp=rt, 4xx", {"rp": frozenset({"rt", "4xx"})}),
        ("CT=1", {}),  # keys are case-sensitive; unknown keys are ignored
    ],
)
def test_fragment_overrides(fragment: str, found: dict[str, object]) -> None:
    assert at.parse_overrides(fragment) == found


@pytest.mark.parametrize(
    "fragment",
    [
        "ct=99",
        "ct=10001",
        "rt=99",
        "rt=15001",
        "tt=60001",
        "tt=99",
        "rc=6",
        "rc=-1",
        "ct=",
        "ct=1s",
    ],
)
def test_out_of_range_overrides_are_11100(fragment: str) -> None:
    err = problem(at.resolve_url, "statusCallback", f"/cb#{fragment}", BASE)
    assert err.code == 11100
    assert f"statusCallback fragment override '{fragment}' is out of range" in err.detail


@pytest.mark.parametrize("fragment", ["rp=ct,6xx", "rp=", "rp=ct,,rt", "rp=timeout"])
def test_bad_retry_policy_is_11243(fragment: str) -> None:
    err = problem(at.resolve_url, "url", f"/x#ct=1000&{fragment}", BASE)
    assert err.code == 11243
    assert "allowed: rp= a comma-separated list of ct, rt, 4xx, 5xx, all" in err.detail


# --- status callback events (CB-2) -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "events"),
    [
        ("initiated ringing", {"initiated", "ringing"}),
        ("ringing,completed", {"ringing", "completed"}),
        ("initiated,  answered", {"initiated", "answered"}),
        ("COMPLETED completed Completed", {"completed"}),
        ("\n initiated\t, ,ringing ", {"initiated", "ringing"}),
        ("", set()),
        (" , ", set()),
    ],
)
def test_events(text: str, events: set[str]) -> None:
    assert at.parse_events("statusCallbackEvent", text) == events


@pytest.mark.parametrize(("text", "token"), [("initiated answred", "answred"), ("queued", "queued"),
                                             ("ringing;answered", "ringing;answered")])  # fmt: skip
def test_unknown_event_names_the_token(text: str, token: str) -> None:
    err = problem(at.parse_events, "statusCallbackEvent", text)
    assert err.code == 21626
    assert err.detail == (
        f"statusCallbackEvent has unknown event '{token}'; allowed: initiated, ringing, "
        "answered, completed"
    )


# --- callerId, numbers, digits, logins (DIAL-1, DIAL-5, DIAL-6, VRB-2, VRB-4) ------------


@pytest.mark.parametrize(
    "text", ["+15557654321", "15557654321", "client:alice", "alice", "+19898XXXXXXX", "a.b%20c"]
)
def test_caller_ids(text: str) -> None:
    assert at.parse_caller_id(text) == text


@pytest.mark.parametrize(
    "text", ["", "+1 555", "client:", "client:a b", "alice@example.com", "<sip:a>", "1" * 65]
)
def test_bad_caller_ids(text: str) -> None:
    assert problem(at.parse_caller_id, text).code == 13214


def test_caller_id_of_64_characters() -> None:
    assert at.parse_caller_id("1" * 64)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("123-321-4321", "1233214321"),
        ("+1 (555) 123.0000", "+15551230000"),
        ("+1 555\n123 0000", "+15551230000"),
        ("1" * 32, "1" * 32),
        ("+" + "1" * 32, "+" + "1" * 32),
    ],
)
def test_numbers_are_normalised(text: str, number: str) -> None:
    assert at.normalise_number(text) == number


@pytest.mark.parametrize("text", ["", "+", "1" * 33, "1+1", "++1", "555-CALL", "١٢٣", "1/2"])
def test_bad_numbers(text: str) -> None:
    assert problem(at.normalise_number, text).code == 13223


def test_digit_strings() -> None:
    assert at.parse_digits("sendDigits", "ww12#*", alphabet="0123456789*#w", limit=32, code=1) == (
        "ww12#*"
    )
    for text in ("", "1" * 33, "W", "a", "1 2"):
        err = problem(at.parse_digits, "sendDigits", text, alphabet="0123456789*#w", limit=32,
                      code=13222)  # fmt: skip
        assert err.code == 13222
        assert err.detail.endswith("allowed: 1-32 characters of 0-9*#w")


@pytest.mark.parametrize("text", ["", "#", "*", "0", "9"])
def test_finish_on_key(text: str) -> None:
    assert at.parse_finish_on_key(text) == text


@pytest.mark.parametrize("text", ["##", "a", "10", "w"])
def test_bad_finish_on_key(text: str) -> None:
    assert problem(at.parse_finish_on_key, text).code == 13310


@pytest.mark.parametrize(
    ("text", "login"), [("alice", "alice"), ("client:bob", "bob"), ("a.b_c~d-e", "a.b_c~d-e")]
)
def test_client_logins(text: str, login: str) -> None:
    assert at.parse_client_login(text) == login


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("", "client name is empty"),
        ("client:", "client name is empty"),
        ("a b", "is not a valid login"),
        ("x" * 65, "is not a valid login"),
        ("Client:bob", "is not a valid login"),
        ("al/ice", "is not a valid login"),
    ],
)
def test_bad_client_logins(text: str, part: str) -> None:
    err = problem(at.parse_client_login, text)
    assert err.code == 12200
    assert part in err.detail


# --- SIP (DIAL-7, LEG-4, DIAL-12) ---------------------------------------------------------


def test_sip_uri_with_headers() -> None:
    uri, headers = at.parse_sip_uri(
        "sip:bob@example.com;transport=tcp?X-Account=42&Subject=hi%20there&x-low=1",
        sips_allowed=False,
    )
    assert uri == "sip:bob@example.com;transport=tcp"
    assert headers == (("X-Account", "42"), ("X-Subject", "hi there"), ("x-low", "1"))


@pytest.mark.parametrize(
    "text", ["sip:example.com", "sip:+15551230000@10.0.0.1:5070", "SIP:bob@[2001:db8::1]"]
)
def test_sip_uris(text: str) -> None:
    assert at.parse_sip_uri(text, sips_allowed=False) == (text, ())


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", 13243),
        ("tel:+1555", 13243),
        ("bob@example.com", 13243),
        ("sip:", 13243),
        ("sip:bob@", 13243),
        ("sip:bob@exa mple.com", 13243),
        ("sip:bob@example.com:99999", 13243),
        ("sip:bob@example.com?", 13243),
        ("sip:bob@example.com?Bad%20Name=1", 13243),
        ("sip:bob@example.com?X-A=1%0d%0aVia:x", 13243),
        ("sips:bob@example.com", 13243),
        ("sip:" + "a" * 252, 13243),
        ("sip:a@b?X=" + "v" * 1023, 13251),
    ],
)
def test_bad_sip_uris(text: str, code: int) -> None:
    assert problem(at.parse_sip_uri, text, sips_allowed=False).code == code


def test_sips_with_tls() -> None:
    assert at.parse_sip_uri("sips:bob@example.com", sips_allowed=True)[0] == "sips:bob@example.com"


def test_sip_limits_are_inclusive() -> None:
    assert at.parse_sip_uri("sip:" + "a" * 251, sips_allowed=False)
    assert at.parse_sip_uri("sip:a@b?X=" + "v" * 1022, sips_allowed=False)


def test_sip_uri_equality_follows_rfc3261() -> None:
    assert at.sip_uris_equal(
        "sip:bob@EXAMPLE.com;transport=TCP", "sip:bob@example.com;transport=tcp"
    )
    assert at.sip_uris_equal("sip:%61lice@example.com", "sip:alice@example.com")
    assert not at.sip_uris_equal("sip:Bob@example.com", "sip:bob@example.com")
    assert not at.sip_uris_equal("sip:bob@example.com", "sip:bob@example.com:5060")


def test_credentials() -> None:
    at.parse_credentials(None, None)
    at.parse_credentials("u", "p")
    at.parse_credentials("u" * 255, "p" * 255)
    for username, password in (("u", None), (None, "p"), ("", "p"), ("u", "p" * 256)):
        assert problem(at.parse_credentials, username, password).code == 13249


# --- voice and language (VRB-1) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "voice"),
    [("man", "man"), ("Woman", "woman"), ("alice", "alice"), ("Polly.Joanna", "Polly.Joanna"),
     ("Google.en-US-Standard-A", "Google.en-US-Standard-A")],
)  # fmt: skip
def test_voices(text: str, voice: str) -> None:
    assert at.check_voice(text) == voice


@pytest.mark.parametrize("text", ["robot", "", "Polly.", "polly.Joanna"])
def test_unknown_voices_are_warnings(text: str) -> None:
    err = problem(at.check_voice, text)
    assert (err.code, err.warning) == (13511, True)


@pytest.mark.parametrize("text", ["en-US", "fr-FR", "de", "zh-Hant-TW", "es-419"])
def test_languages(text: str) -> None:
    assert at.check_language(text) == text


@pytest.mark.parametrize("text", ["", "e", "en_US", "en-", "-US", "123"])
def test_bad_languages_are_warnings(text: str) -> None:
    err = problem(at.check_language, text)
    assert (err.code, err.warning) == (13511, True)


def test_show_quotes_one_line() -> None:
    assert at.show("abc") == "'abc'"
    assert at.show("a\nb") == "'a\\nb'"
    assert at.show("x" * 100) == "'" + "x" * 77 + "...'"


def test_sip_header_values_are_utf8_unescaped() -> None:
    _, headers = at.parse_sip_uri("sip:a@b?Subject=caf%C3%A9", sips_allowed=False)
    assert headers == (("X-Subject", "café"),)
    assert problem(at.parse_sip_uri, "sip:a@b?Subject=%FF", sips_allowed=False).code == 13243


def test_non_ascii_look_alikes_are_not_methods_or_events() -> None:
    assert problem(at.parse_method, "method", "po\u017ft", code=13210).code == 13210
    assert problem(at.parse_events, "e", "\u212aringing").code == 21626
