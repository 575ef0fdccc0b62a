"""Routing of inbound INVITEs (RTE-2, RTE-3) as a pure decision."""

from __future__ import annotations

from dialtone.calls.routing import ClientRecord, NumberRecord, Refusal, Route, decide

NUMBER = NumberRecord(
    "PN1", "+15550001111", "http://app.test/voice", "POST", None, "POST", None, "POST", "2010-04-01"
)
ALICE = ClientRecord("CLa", "alice", "http://app.test/alice", "GET", None, "POST", "2010-04-01")
BOB = ClientRecord("CLb", "bob", None, "POST", None, "POST", "2012-04-24")


def test_number_wins_and_keeps_the_external_caller() -> None:
    route = decide("+15550001111", "+15557654321", None, NUMBER, None)
    assert isinstance(route, Route)
    assert (route.kind, route.from_, route.to, route.voice_url) == (
        "number",
        "+15557654321",
        "+15550001111",
        "http://app.test/voice",
    )
    assert route.phone_number_sid == "PN1"


def test_number_called_by_a_client_says_client_in_from() -> None:
    route = decide("15550001111", "alice", ALICE, NUMBER, None)
    assert isinstance(route, Route) and route.from_ == "client:alice" and route.kind == "number"


def test_client_with_voice_url_runs_its_app() -> None:
    route = decide("bob", "alice", ALICE, None, BOB)
    assert isinstance(route, Route)
    assert (route.kind, route.from_, route.to, route.voice_url, route.voice_method) == (
        "client-app",
        "client:alice",
        "client:bob",
        "http://app.test/alice",
        "GET",
    )
    other = decide("+4930123", "alice", ALICE, None, None)
    assert isinstance(other, Route) and other.to == "+4930123"


def test_client_without_voice_url_dials_the_callee_directly() -> None:
    route = decide("alice", "bob", BOB, None, ALICE)
    assert isinstance(route, Route)
    assert (route.kind, route.to, route.api_version) == (
        "client-direct",
        "client:alice",
        "2012-04-24",
    )
    assert route.callee == ALICE


def test_everything_else_is_404() -> None:
    assert decide("nobody", "x", None, None, None) == Refusal(404, "Not Found")
    assert decide("alice", "x", None, None, ALICE) == Refusal(404, "Not Found")
    assert decide("nobody", "bob", BOB, None, None) == Refusal(404, "Not Found")


def test_number_without_voice_url_is_404_with_a_warning() -> None:
    empty = NumberRecord("PN2", "+1555", None, "POST", None, "POST", None, "POST", "2010-04-01")
    refusal = decide("+1555", "x", None, empty, None)
    assert isinstance(refusal, Refusal) and refusal.status == 404 and refusal.warning_code
