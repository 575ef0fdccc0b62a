"""HOOK-1..HOOK-4: URL resolution and checks, fragment overrides, GET query and POST body."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from dialtone.webhooks.urls import (
    DEFAULTS,
    MAX_URL,
    ConnectionSettings,
    RequestKind,
    UrlError,
    check,
    form_body,
    parse_settings,
    prepare,
    resolve,
    split_fragment,
    with_query,
)

RCML, CALLBACK = RequestKind.RCML, RequestKind.CALLBACK
RFC_BASE = "http://a/b/c/d;p?q"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [  # RFC 3986 §5.4.1 and §5.4.2 (the http: ones)
        ("g", "http://a/b/c/g"),
        ("./g", "http://a/b/c/g"),
        ("g/", "http://a/b/c/g/"),
        ("/g", "http://a/g"),
        ("//g", "http://g"),
        ("?y", "http://a/b/c/d;p?y"),
        ("g?y", "http://a/b/c/g?y"),
        ("#s", "http://a/b/c/d;p?q#s"),
        ("g?y#s", "http://a/b/c/g?y#s"),
        (";x", "http://a/b/c/;x"),
        (".", "http://a/b/c/"),
        ("..", "http://a/b/"),
        ("../g", "http://a/b/g"),
        ("../../g", "http://a/g"),
        ("../../../g", "http://a/g"),
        ("/./g", "http://a/g"),
        ("/../g", "http://a/g"),
        ("g.", "http://a/b/c/g."),
        ("..g", "http://a/b/c/..g"),
        ("./../g", "http://a/b/g"),
        ("g/./h", "http://a/b/c/g/h"),
        ("g/../h", "http://a/b/c/h"),
        ("g;x=1/../y", "http://a/b/c/y"),
        ("g?y/../x", "http://a/b/c/g?y/../x"),
        ("https://other.test:8443/x", "https://other.test:8443/x"),
    ],
)
def test_hook3_rfc3986_resolution(reference: str, expected: str) -> None:
    assert resolve(reference, RFC_BASE) == expected


def test_hook3_resolves_against_final_document_url_or_public_url() -> None:
    assert resolve("/menu", "http://app.test/after/redirect.xml") == "http://app.test/menu"
    assert resolve("next", "http://app.test/after/redirect.xml") == "http://app.test/after/next"
    assert resolve("/cb", "http://127.0.0.1:8080") == "http://127.0.0.1:8080/cb"


@pytest.mark.parametrize(
    ("reference", "base", "part"),
    [
        ("", "http://app.test/", "is empty"),
        ("/a b", "http://app.test/", "whitespace"),
        ("/a\tb", "http://app.test/", "whitespace"),
        ("/a\x01", "http://app.test/", "whitespace"),
        ("ftp://app.test/x", None, "http(s)"),
        ("mailto:a@b.c", None, "http(s)"),
        ("http:g", RFC_BASE, "has no host"),  # strict: a scheme makes it absolute
        ("http:///x", None, "has no host"),
        ("http://app.test:99999/", None, "is not a URL"),
        ("http://[::1/", None, "is not a URL"),
        ("/relative", None, "relative and there is no base"),
        ("/x", "urn:x", "http(s)"),
    ],
)
def test_hook2_invalid_urls_are_11100(reference: str, base: str | None, part: str) -> None:
    with pytest.raises(UrlError) as caught:
        resolve(reference, base)
    assert caught.value.code == 11100
    assert part in caught.value.message


def test_hook2_length_limit() -> None:
    url = "http://app.test/" + "a" * (MAX_URL - len("http://app.test/"))
    assert check(url) == url
    with pytest.raises(UrlError, match="4001 characters"):
        check(url + "a")


def test_hook4_defaults_per_kind() -> None:
    assert DEFAULTS[RCML] == ConnectionSettings(5000, 15000, 15000, 1, frozenset({"ct"}))
    assert DEFAULTS[CALLBACK] == ConnectionSettings(5000, 15000, 45000, 2, frozenset({"ct", "5xx"}))


def test_example_c2_fragment_is_stripped_and_overrides_apply() -> None:
    target = prepare(resolve("/cb?leg=b#rc=0&ct=1000", "http://app.test/voice"), CALLBACK)
    assert target.url == "http://app.test/cb?leg=b"
    assert target.settings == ConnectionSettings(1000, 15000, 45000, 0, frozenset({"ct", "5xx"}))
    assert target.settings.connect_timeout == 1.0
    assert target.settings.retries == 0


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("", DEFAULTS[RCML]),
        ("top", DEFAULTS[RCML]),
        ("a=1&b", DEFAULTS[RCML]),  # another shape: ignored as a whole
        ("CT=100", DEFAULTS[RCML]),  # keys are case-sensitive
        (
            "ct=100&rt=100&tt=100&rc=5&rp=all",
            ConnectionSettings(100, 100, 100, 5, frozenset({"all"})),
        ),
        (
            "ct=10000&rt=15000&tt=60000&rc=0&x=y",
            ConnectionSettings(10000, 15000, 60000, 0, frozenset({"ct"})),
        ),
        ("rp=RT, 4xx", ConnectionSettings(5000, 15000, 15000, 1, frozenset({"rt", "4xx"}))),
    ],
)
def test_hook4_overrides(fragment: str, expected: ConnectionSettings) -> None:
    assert parse_settings(fragment, RCML) == expected


@pytest.mark.parametrize(
    "fragment",
    [
        "ct=99",
        "ct=10001",
        "rt=99",
        "rt=15001",
        "tt=99",
        "tt=60001",
        "rc=6",
        "rc=-1",
        "ct=",
        "ct=1s",
        "ct=+100",
    ],
)
def test_hook4_out_of_range_is_11100(fragment: str) -> None:
    with pytest.raises(UrlError) as caught:
        resolve(f"/cb#{fragment}", "http://app.test/")
    assert caught.value.code == 11100
    assert f"fragment override '{fragment}' is out of range" in caught.value.message


@pytest.mark.parametrize("fragment", ["rp=ct,6xx", "rp=", "rp=ct;rt"])
def test_hook4_bad_rp_is_11243(fragment: str) -> None:
    with pytest.raises(UrlError) as caught:
        prepare(f"http://app.test/cb#{fragment}", CALLBACK)
    assert caught.value.code == 11243


def test_hook5_retry_classes() -> None:
    settings = DEFAULTS[CALLBACK]
    assert settings.retries_on("ct") and settings.retries_on("5xx")
    assert not settings.retries_on("rt") and not settings.retries_on("4xx")
    assert not settings.retries_on(None)
    every = parse_settings("rp=all", CALLBACK)
    assert all(every.retries_on(c) for c in ("ct", "rt", "4xx", "5xx"))
    assert not every.retries_on(None)


def test_split_fragment() -> None:
    assert split_fragment("http://a/b?c#d#e") == ("http://a/b?c", "d#e")
    assert split_fragment("http://a/b") == ("http://a/b", "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://app.test/cb", "http://app.test/cb?A=1&B=x+y"),
        ("http://app.test/cb?leg=b", "http://app.test/cb?leg=b&A=1&B=x+y"),
        ("http://app.test/cb?", "http://app.test/cb?A=1&B=x+y"),
        ("http://app.test/cb?leg=b&", "http://app.test/cb?leg=b&A=1&B=x+y"),
    ],
)
def test_hook1_get_appends_after_existing_query(url: str, expected: str) -> None:
    assert with_query(url, [("A", "1"), ("B", "x y")]) == expected


def test_hook1_get_without_params_keeps_url() -> None:
    assert with_query("http://app.test/cb?x=1", []) == "http://app.test/cb?x=1"


def test_hook1_post_body_is_utf8_form() -> None:
    params = [("From", "+15557654321"), ("Name", "Zoë & co"), ("X", "a=b")]
    body = form_body(params)
    assert body == b"From=%2B15557654321&Name=Zo%C3%AB+%26+co&X=a%3Db"
    assert parse_qsl(body.decode()) == params
