"""REQ-1..REQ-5 and CB-5: the parameters of voice requests and status callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialtone.webhooks.params import (
    API_VERSION,
    RESTCOMM_API_VERSION,
    CallInfo,
    clean,
    format_timestamp,
    sip_header_params,
    status_callback_params,
    voice_params,
)

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
BOB = CallInfo(
    call_sid="CAb",
    account_sid=ACCOUNT,
    from_="+15557654321",
    to="client:bob",
    status="in-progress",
    direction="outbound-dial",
    parent_call_sid="CAp",
)
INBOUND = CallInfo(
    call_sid="CAi",
    account_sid=ACCOUNT,
    from_="+15557654321",
    to="+15550001111",
    status="ringing",
    direction="inbound",
    forwarded_from="+15559998888",
    caller_name="Alice Smith",
    sip_headers=(("X-Customer", "42"), ("Via", "SIP/2.0/UDP x"), ("x-lower", "yes")),
)


def test_example_c1_answered_callback_of_bob() -> None:
    """Ex. C-1: the exact field set, in code-point order."""
    when = datetime(2025, 11, 4, 10, 0, 4, tzinfo=UTC)
    assert status_callback_params(BOB, timestamp=when, sequence_number=2) == [
        ("AccountSid", ACCOUNT),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CAb"),
        ("CallStatus", "in-progress"),
        ("CallbackSource", "call-progress-events"),
        ("Called", "client:bob"),
        ("Caller", "+15557654321"),
        ("Direction", "outbound-dial"),
        ("From", "+15557654321"),
        ("ParentCallSid", "CAp"),
        ("SequenceNumber", "2"),
        ("Timestamp", "Tue, 04 Nov 2025 10:00:04 +0000"),
        ("To", "client:bob"),
    ]


def test_req1_inbound_set_with_optional_fields() -> None:
    params = dict(voice_params(INBOUND))
    assert params == {
        "AccountSid": ACCOUNT,
        "ApiVersion": API_VERSION,
        "CallSid": "CAi",
        "CallStatus": "ringing",
        "Called": "+15550001111",
        "Caller": "+15557654321",
        "CallerName": "Alice Smith",
        "Direction": "inbound",
        "ForwardedFrom": "+15559998888",
        "From": "+15557654321",
        "SipHeader_X-Customer": "42",
        "SipHeader_x-lower": "yes",
        "To": "+15550001111",
    }
    assert "ParentCallSid" not in params


def test_req2_absent_and_empty_values_are_left_out() -> None:
    call = CallInfo("CA1", ACCOUNT, "", "client:bob", "ringing", "inbound", caller_name="")
    params = voice_params(call, {"Digits": "", "Extra": None, "": "x"})
    names = [name for name, _ in params]
    assert "From" not in names and "Caller" not in names
    assert "CallerName" not in names and "Digits" not in names and "Extra" not in names
    assert all(name and value for name, value in params)


def test_req4_restcomm_api_version() -> None:
    call = CallInfo(
        "CA1", ACCOUNT, "a", "b", "ringing", "inbound", api_version=RESTCOMM_API_VERSION
    )
    assert ("ApiVersion", "2012-04-24") in voice_params(call)


def test_req5_extras_are_added_and_typed() -> None:
    params = dict(
        voice_params(
            BOB.with_status("completed"),
            {"DialCallStatus": "completed", "DialCallDuration": 20, "DialBridged": True},
        )
    )
    assert params["CallStatus"] == "completed"
    assert params["DialCallDuration"] == "20"
    assert params["DialBridged"] == "true"
    assert dict(voice_params(BOB, {"DialBridged": False}))["DialBridged"] == "false"


def test_extras_replace_base_names_and_caller_follows_from() -> None:
    params = dict(voice_params(BOB, {"From": "client:alice", "CallStatus": "ringing"}))
    assert params["From"] == params["Caller"] == "client:alice"
    assert params["CallStatus"] == "ringing"
    # an extra None removes a base parameter
    assert "ParentCallSid" not in dict(voice_params(BOB, {"ParentCallSid": None}))


def test_req5_sip_headers_only_x_headers_each_occurrence() -> None:
    headers = [("X-A", "1"), ("X-A", "2"), ("Contact", "<sip:x>"), ("X-", "bare"), ("X-B", " ")]
    assert sip_header_params(headers) == [("SipHeader_X-A", "1"), ("SipHeader_X-A", "2")]


def test_cb5_completed_fields() -> None:
    when = datetime(2025, 11, 4, 10, 0, 24, tzinfo=UTC)
    params = dict(
        status_callback_params(
            BOB,
            status="completed",
            timestamp=when,
            sequence_number=3,
            call_duration=20,
            sip_response_code=200,
        )
    )
    assert params["CallStatus"] == "completed"
    assert params["CallDuration"] == "20"
    assert params["SipResponseCode"] == "200"
    assert params["SequenceNumber"] == "3"


def test_cb5_duration_zero_is_sent_and_missing_sip_code_is_not() -> None:
    params = dict(status_callback_params(BOB, status="failed", call_duration=0))
    assert params["CallDuration"] == "0"
    assert "SipResponseCode" not in params
    assert "Timestamp" not in params and "SequenceNumber" not in params


def test_timestamp_is_rfc2822_utc_from_any_offset() -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2025, 11, 4, 11, 0, 4, 999999, tzinfo=paris)
    assert format_timestamp(moment) == "Tue, 04 Nov 2025 10:00:04 +0000"


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        format_timestamp(datetime(2025, 11, 4, 10, 0, 4))


@given(st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.text(max_size=5)))))
def test_clean_never_yields_empty_names_or_values(pairs: list[tuple[str, str | None]]) -> None:
    out = clean(pairs)
    assert all(name and value for name, value in out)
    assert [name for name, _ in out] == sorted(name for name, _ in out)
