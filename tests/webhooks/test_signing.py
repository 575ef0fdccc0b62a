"""HOOK-10: X-Twilio-Signature, checked against the official twilio-python RequestValidator."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from dialtone.webhooks.signing import signature, signed_string, validate

TOKEN = "0123456789abcdef0123456789abcdef"


class MultiDict(dict[str, str]):
    """Form fields with repeated names, as frameworks hand them to the validator."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]


def test_twilio_documented_example() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    assert signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_example_c1_signed_string() -> None:
    params = [("To", "client:bob"), ("AccountSid", "AC1"), ("Called", "client:bob")]
    text = signed_string("http://app.test/cb", params)
    assert text == "http://app.test/cbAccountSidAC1Calledclient:bobToclient:bob"
    expected = base64.b64encode(
        hmac.new(TOKEN.encode(), text.encode(), hashlib.sha1).digest()
    ).decode()
    assert signature(TOKEN, "http://app.test/cb", params) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/voice",
        "http://app.test/cb?leg=b",
        "https://app.test:8443/a/b?x=1&y=%20z",
        "http://[::1]:9000/v?q=%C3%A9",
        "http://app.test/",
    ],
)
@pytest.mark.parametrize(
    "params",
    [
        [],
        [("CallSid", "CA1"), ("From", "+15557654321")],
        [("Body", "héllo wörld ☎"), ("Name", "名前")],
        [("SipHeader_X-A", "2"), ("SipHeader_X-A", "1"), ("A", "")],
        [("Digits", "1"), ("Digits", "1"), ("Z", "z")],  # identical repeats count once
    ],
)
def test_post_matches_official_validator(url: str, params: list[tuple[str, str]]) -> None:
    sig = signature(TOKEN, url, params)
    assert RequestValidator(TOKEN).validate(url, MultiDict(params), sig)
    assert validate(TOKEN, url, params, sig)


def test_get_signs_the_url_alone() -> None:
    url = "http://app.test/cb?leg=b&CallSid=CA1&From=%2B15557654321"
    sig = signature(TOKEN, url, None)
    assert sig == signature(TOKEN, url, [])
    assert RequestValidator(TOKEN).validate(url, {}, sig)


def test_repeated_names_sort_values() -> None:
    assert signed_string("u", [("b", "2"), ("a", "9"), ("b", "1")]) == "ua9b1b2"


def test_code_point_order_of_names() -> None:
    assert signed_string("u", [("a", "1"), ("B", "2"), ("_", "3")]) == "uB2_3a1"


def test_mapping_params() -> None:
    assert signature(TOKEN, "u", {"b": "2", "a": "1"}) == signature(
        TOKEN, "u", [("a", "1"), ("b", "2")]
    )


def test_validate_rejects_wrong_token_url_or_params() -> None:
    url, params = "http://app.test/cb", [("A", "1")]
    sig = signature(TOKEN, url, params)
    assert not validate("f" * 32, url, params, sig)
    assert not validate(TOKEN, url + "x", params, sig)
    assert not validate(TOKEN, url, [("A", "2")], sig)
    assert not validate(TOKEN, url, params, "")


def test_validate_accepts_explicit_default_port_either_way() -> None:
    sig = signature(TOKEN, "http://app.test:80/cb", [("A", "1")])
    assert validate(TOKEN, "http://app.test/cb", [("A", "1")], sig)
    sig = signature(TOKEN, "https://app.test/cb", None)
    assert validate(TOKEN, "https://app.test:443/cb", None, sig)
    assert not validate(TOKEN, "https://app.test:444/cb", None, sig)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=6), st.text(min_size=1, max_size=6)), max_size=6
    )
)
def test_property_official_validator_agrees(params: list[tuple[str, str]]) -> None:
    url = "https://app.test:8443/cb?x=1"
    sig = signature(TOKEN, url, params)
    assert RequestValidator(TOKEN).validate(url, MultiDict(params), sig)
