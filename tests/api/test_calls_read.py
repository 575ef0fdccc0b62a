"""Reading Calls over the real server: fields, filters, paging, formats, errors (API-22, API-23).

Nothing places calls over SIP here: the rows are written into the server's SQLite file by
:class:`~dialtone.calls.records.CallRecords` from the test process, as the call layer would.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from twilio.rest import Client as TwilioClient

from dialtone import ids
from dialtone.calls.records import CallRecords
from dialtone.storage.database import Database
from dialtone.storage.models import Account
from dialtone.testing.clock import FakeClock
from tests.support.server import ServerProcess

DAY1 = datetime(2025, 11, 4, 10, 0, 0, tzinfo=UTC)
DAY2 = datetime(2025, 11, 5, 9, 0, 0, tzinfo=UTC)
DAY3 = datetime(2025, 11, 6, 12, 0, 0, tzinfo=UTC)
OTHER_ACCOUNT = "AC" + "0" * 31 + "1"
NUMBER_SID = "PN" + "5" * 32


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@dataclass
class Seeded:
    """The SIDs written into a server's database (newest ``date_created`` last)."""

    a: str = field(default_factory=lambda: ids.new_sid(ids.CALL))  # inbound, completed
    b: str = field(default_factory=lambda: ids.new_sid(ids.CALL))  # branch of a to bob, won
    c: str = field(default_factory=lambda: ids.new_sid(ids.CALL))  # branch of a to alice, lost
    d: str = field(default_factory=lambda: ids.new_sid(ids.CALL))  # API call (Restcomm), busy
    e: str = field(default_factory=lambda: ids.new_sid(ids.CALL))  # inbound, still ringing
    foreign: str = field(default_factory=lambda: ids.new_sid(ids.CALL))  # another account's
    notifications: dict[str, str] = field(default_factory=dict)
    body: str = "<Response><Say>" + "x" * 5000 + "</Say></Response>"


async def _write(server: ServerProcess, seeded: Seeded) -> None:
    db = Database(f"sqlite+aiosqlite:///{(server.data_dir / 'dialtone.db').resolve()}")
    async with db.session() as session:
        session.add(
            Account(
                sid=OTHER_ACCOUNT,
                friendly_name="other",
                auth_token="f" * 32,
                status="active",
                date_created=DAY1,
                date_updated=DAY1,
            )
        )
    clock = FakeClock(utc=DAY1)
    records = CallRecords(db, clock, public_url=server.base_url)
    me = server.account_sid
    common: dict[str, Any] = {"account_sid": me, "api_version": "2010-04-01"}
    records.create(
        seeded.a,
        **common,
        direction="inbound",
        from_="+15557654321",
        to="+15550001111",
        status="ringing",
        start_time=DAY1,
        phone_number_sid=NUMBER_SID,
        caller_name="Alice Caller",
        forwarded_from="+15550009999",
        sip_call_id="a1@127.0.0.1",
    )
    records.update(seeded.a, status="in-progress", answer_time=DAY1 + s(1))
    for sid, to in ((seeded.b, "client:bob"), (seeded.c, "client:alice")):
        clock.advance(1)
        records.create(
            sid,
            **common,
            direction="outbound-dial",
            from_="+15557654321",
            to=to,
            status="ringing",
            start_time=DAY1 + s(2),
            parent_call_sid=seeded.a,
        )
    records.update(seeded.b, status="in-progress", answer_time=DAY1 + s(5))
    records.finish(seeded.c, "canceled", DAY1 + s(5), 487)
    records.finish(seeded.b, "completed", DAY1 + s(15), 200)
    records.finish(seeded.a, "completed", DAY1 + s(15.5), 200)  # 14.5 s → "15"
    clock.advance(1)
    records.create(
        seeded.d,
        account_sid=me,
        api_version="2012-04-24",
        direction="outbound-api",
        from_="+15550001111",
        to="sip:carol@example.com",
        status="queued",
        start_time=DAY2,
    )
    records.finish(seeded.d, "busy", DAY2 + s(3), 486)
    clock.advance(1)
    records.create(
        seeded.e,
        **common,
        direction="inbound",
        from_="client:alice",
        to="+15550001111",
        status="ringing",
        start_time=DAY3,
    )
    records.create(
        seeded.foreign,
        account_sid=OTHER_ACCOUNT,
        api_version="2010-04-01",
        direction="inbound",
        from_="+15557654321",
        to="+15550001111",
        status="ringing",
        start_time=DAY1,
    )
    note = seeded.notifications
    clock.advance(1)
    note["n1"] = records.notify(
        me,
        seeded.a,
        log=0,
        error_code=11200,
        message_text="http://app.test/voice: HTTP 500 Internal Server Error",
        request_url="http://app.test/voice",
        request_method="POST",
        request_variables=[("CallSid", seeded.a), ("CallStatus", "ringing")],
        response_body=seeded.body,
        message_date=DAY1 + s(3),
    )
    clock.advance(1)
    note["n2"] = records.notify(
        me,
        seeded.a,
        log=1,
        error_code=13511,
        message_text="Response/Say[1] (line 1) of http://app.test/voice: voice mapped",
        message_date=DAY1 + s(4),
    )
    clock.advance(1)
    note["n3"] = records.notify(
        me, None, log=1, error_code=15003, message_text="not delivered", message_date=DAY2
    )
    clock.advance(1)
    note["n4"] = records.notify(
        me, seeded.d, log=0, error_code=12100, message_text="bad XML", message_date=DAY2 + s(5)
    )
    note["foreign"] = records.notify(
        OTHER_ACCOUNT, None, log=0, error_code=12400, message_text="other account"
    )
    await records.flush()
    stats = records.stats()
    await records.close()
    await db.dispose()
    assert stats["failed"] == stats["dropped"] == stats["missing"] == 0, stats


def seed(server: ServerProcess) -> Seeded:
    """Write the calls and notifications of :class:`Seeded` into the server's database."""
    seeded = Seeded()
    asyncio.run(_write(server, seeded))
    return seeded


@pytest.fixture(scope="module")
def seeded(server: ServerProcess) -> Seeded:
    return seed(server)


def twilio_client(server: ServerProcess) -> TwilioClient:
    client = TwilioClient(server.account_sid, server.auth_token)
    client.api.base_url = server.base_url
    return client


def sids(api: httpx.Client, url: str, **params: str) -> list[str]:
    response = api.get(url, params=params)
    assert response.status_code == 200, response.text
    return [call["sid"] for call in response.json()["calls"]]


def test_list_is_newest_first_and_only_this_accounts(
    server: ServerProcess, api: httpx.Client, seeded: Seeded
) -> None:
    body = api.get(f"{server.api}/Calls.json").json()
    assert [c["sid"] for c in body["calls"]] == [seeded.e, seeded.d, seeded.c, seeded.b, seeded.a]
    paging = {"page", "page_size", "start", "end", "uri", "first_page_uri"}
    paging |= {"previous_page_uri", "next_page_uri"}
    assert set(body) == {"calls"} | paging
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 50, 0, 4)
    assert body["next_page_uri"] is None and body["previous_page_uri"] is None
    assert body["uri"] == f"/2010-04-01/Accounts/{server.account_sid}/Calls.json?PageSize=50&Page=0"


def test_fields_of_an_ended_call(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    call = api.get(f"{server.api}/Calls/{seeded.a}.json").json()
    base = f"/2010-04-01/Accounts/{server.account_sid}/Calls/{seeded.a}"
    assert call == {
        "sid": seeded.a,
        "account_sid": server.account_sid,
        "parent_call_sid": None,
        "date_created": "Tue, 04 Nov 2025 10:00:00 +0000",
        "date_updated": "Tue, 04 Nov 2025 10:00:02 +0000",
        "to": "+15550001111",
        "to_formatted": "+15550001111",
        "from": "+15557654321",
        "from_formatted": "+15557654321",
        "phone_number_sid": NUMBER_SID,
        "status": "completed",
        "start_time": "Tue, 04 Nov 2025 10:00:00 +0000",
        "end_time": "Tue, 04 Nov 2025 10:00:15 +0000",
        "duration": "15",
        "price": None,
        "price_unit": "USD",
        "direction": "inbound",
        "answered_by": None,
        "api_version": "2010-04-01",
        "forwarded_from": "+15550009999",
        "group_sid": None,
        "caller_name": "Alice Caller",
        "queue_time": "0",
        "trunk_sid": None,
        "stir_verstat": None,
        "sip_response_code": 200,
        "uri": base + ".json",
        "subresource_uris": {"notifications": base + "/Notifications.json"},
    }


def test_branches_and_live_calls(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    won = api.get(f"{server.api}/Calls/{seeded.b}.json").json()
    assert (won["parent_call_sid"], won["direction"], won["to"]) == (
        seeded.a,
        "outbound-dial",
        "client:bob",
    )
    assert (won["duration"], won["sip_response_code"]) == ("10", 200)
    lost = api.get(f"{server.api}/Calls/{seeded.c}.json").json()
    assert (lost["status"], lost["duration"], lost["sip_response_code"]) == ("canceled", "0", 487)
    live = api.get(f"{server.api}/Calls/{seeded.e}.json").json()
    assert (live["status"], live["duration"], live["end_time"]) == ("ringing", None, None)
    assert live["sip_response_code"] is None and live["from"] == "client:alice"


def test_every_filter(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    a, b, c, d, e = seeded.a, seeded.b, seeded.c, seeded.d, seeded.e
    url = f"{server.api}/Calls.json"
    cases: list[tuple[dict[str, str], list[str]]] = [
        ({"To": "+15550001111"}, [e, a]),
        ({"To": "15550001111"}, [e, a]),  # a number matches with or without its +
        ({"To": "client:bob"}, [b]),
        ({"To": "sip:carol@example.com"}, [d]),
        ({"From": "+15550001111"}, [d]),
        ({"From": "+15557654321", "To": "client:alice"}, [c]),
        ({"Status": "canceled"}, [c]),
        ({"Status": "completed"}, [b, a]),
        ({"ParentCallSid": a}, [c, b]),
        ({"StartTime": "2025-11-04"}, [c, b, a]),
        ({"StartTime": "2025-11-04T23:59:59Z"}, [c, b, a]),  # the UTC day of the instant
        ({"StartTime>": "2025-11-05"}, [e, d]),
        ({"StartTime<": "2025-11-05"}, [c, b, a]),
        ({"StartTime>": "2025-11-05", "StartTime<": "2025-11-06"}, [d]),
        ({"StartTime>": "2025-11-05T00:00:00Z"}, [e, d]),  # as twilio-python sends it
        ({"StartTime": "2025-11-04", "StartTime>": "2025-11-05"}, []),
        ({"EndTime": "2025-11-05"}, [d]),
        ({"EndTime>": "2025-11-04"}, [d, c, b, a]),  # the live call has no end time
        ({"EndTime<": "2025-11-05"}, [c, b, a]),
        ({"EndTime>": "2025-11-04T10:00:10Z", "EndTime<": "2025-11-04T10:00:15.2Z"}, [b]),
        ({"Status": "completed", "StartTime<": "2025-11-05", "ParentCallSid": a}, [b]),
        ({"To": "+15550002222"}, []),
    ]
    for params, expected in cases:
        assert sids(api, url, **params) == expected, params
    # The spelling of the docs, StartTime>=YYYY-MM-DD, is the parameter "StartTime>".
    raw = api.get(f"{url}?StartTime>=2025-11-05&EndTime<=2025-11-06").json()
    assert [call["sid"] for call in raw["calls"]] == [d]


def test_bad_filters_are_400_naming_them(server: ServerProcess, api: httpx.Client) -> None:
    cases = [
        ({"StartTime": "2025-13-01"}, 20422, "StartTime"),
        ({"StartTime": "yesterday"}, 20422, "StartTime"),
        ({"EndTime<": "2025-11-31"}, 20422, "EndTime<"),
        ({"StartTime>": "11/05/2025"}, 20422, "StartTime>"),
        ({"Status": "ended"}, 20422, "Status"),
        ({"ParentCallSid": "CA123"}, 20422, "ParentCallSid"),
        ({"PageSize": "1001"}, 20007, "PageSize"),
        ({"Page": "-1"}, 20422, "Page"),
    ]
    for params, code, named in cases:
        response = api.get(f"{server.api}/Calls.json", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["code"] == code, params
        assert named in response.json()["message"], params


def test_paging_keeps_filters_and_page_size(
    server: ServerProcess, api: httpx.Client, seeded: Seeded
) -> None:
    first = api.get(f"{server.api}/Calls.json", params={"StartTime": "2025-11-04", "PageSize": 2})
    body = first.json()
    assert [c["sid"] for c in body["calls"]] == [seeded.c, seeded.b]
    assert (body["start"], body["end"]) == (0, 1)
    next_uri = body["next_page_uri"]
    assert "StartTime=2025-11-04" in next_uri and "PageSize=2" in next_uri and "Page=1" in next_uri
    second = api.get(server.base_url + next_uri).json()
    assert [c["sid"] for c in second["calls"]] == [seeded.a]
    assert second["next_page_uri"] is None and second["previous_page_uri"] is not None
    assert (second["start"], second["end"]) == (2, 2)
    operator = api.get(
        f"{server.api}/Calls.json", params={"StartTime>": "2025-11-05", "PageSize": 1}
    )
    follow = api.get(server.base_url + operator.json()["next_page_uri"]).json()
    assert [c["sid"] for c in follow["calls"]] == [seeded.d]
    beyond = api.get(f"{server.api}/Calls.json", params={"Page": 9, "PageSize": 2}).json()
    assert beyond["calls"] == [] and beyond["next_page_uri"] is None


def test_xml_list_and_fetch(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    listing = api.get(f"{server.api}/Calls", params={"Status": "completed"})
    assert listing.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(listing.content)
    assert root.tag == "TwilioResponse"
    calls = root.find("Calls")
    assert calls is not None and calls.get("page") == "0" and calls.get("pagesize") == "50"
    assert [c.findtext("Sid") for c in calls.findall("Call")] == [seeded.b, seeded.a]
    one = ET.fromstring(api.get(f"{server.api}/Calls/{seeded.a}").content).find("Call")
    assert one is not None
    assert (one.findtext("From"), one.findtext("To")) == ("+15557654321", "+15550001111")
    assert (one.findtext("Duration"), one.findtext("SipResponseCode")) == ("15", "200")
    assert one.findtext("ParentCallSid") == "" and one.findtext("AnsweredBy") == ""
    assert one.findtext("Uri") == f"/2010-04-01/Accounts/{server.account_sid}/Calls/{seeded.a}"
    assert (one.findtext("SubresourceUris/Notifications") or "").endswith(
        f"/Calls/{seeded.a}/Notifications"
    )


def test_restcomm_prefix(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    body = api.get(f"{server.restcomm_api}/Calls/{seeded.d}.json").json()
    assert body["uri"] == (
        f"/restcomm/2012-04-24/Accounts/{server.account_sid}/Calls/{seeded.d}.json"
    )
    assert (body["api_version"], body["direction"], body["status"]) == (
        "2012-04-24",
        "outbound-api",
        "busy",
    )
    assert (body["duration"], body["sip_response_code"]) == ("0", 486)
    xml = ET.fromstring(
        api.get(f"{server.restcomm_api}/Calls", params={"To": "client:bob"}).content
    )
    assert xml.tag == "RestcommResponse" and xml.findtext("Calls/Call/Sid") == seeded.b
    accepted = api.get(
        f"{server.restcomm_api}/Calls/{seeded.b}", headers={"Accept": "application/json"}
    )
    assert accepted.json()["sid"] == seeded.b


def test_unknown_foreign_and_unauthenticated(
    server: ServerProcess, api: httpx.Client, seeded: Seeded
) -> None:
    for sid in (ids.new_sid(ids.CALL), seeded.foreign, "nonsense"):
        response = api.get(f"{server.api}/Calls/{sid}.json")
        assert response.status_code == 404 and response.json()["code"] == 20404, sid
    other = f"{server.base_url}/2010-04-01/Accounts/{OTHER_ACCOUNT}"
    for path in ("/Calls.json", f"/Calls/{seeded.foreign}.json", f"/Calls/{seeded.a}.json"):
        response = api.get(other + path)
        assert response.status_code == 403 and response.json()["code"] == 20403, path
    assert httpx.get(f"{server.api}/Calls.json").status_code == 401
    xml = ET.fromstring(api.get(f"{server.api}/Calls/{ids.new_sid(ids.CALL)}").content)
    assert xml.findtext("RestException/Code") == "20404"


def test_twilio_library_lists_and_fetches_calls(server: ServerProcess, seeded: Seeded) -> None:
    client = twilio_client(server)
    listed = client.calls.list()
    assert [c.sid for c in listed] == [seeded.e, seeded.d, seeded.c, seeded.b, seeded.a]
    assert [c.sid for c in client.calls.list(page_size=2)] == [c.sid for c in listed]
    assert [c.sid for c in client.calls.list(parent_call_sid=seeded.a)] == [seeded.c, seeded.b]
    assert [c.sid for c in client.calls.list(status="busy")] == [seeded.d]
    assert [c.sid for c in client.calls.list(to="client:bob")] == [seeded.b]
    assert [c.sid for c in client.calls.list(from_="+15550001111")] == [seeded.d]
    after = client.calls.list(start_time_after=datetime(2025, 11, 5, tzinfo=UTC))
    assert [c.sid for c in after] == [seeded.e, seeded.d]
    day = client.calls.list(start_time=date(2025, 11, 4))
    assert [c.sid for c in day] == [seeded.c, seeded.b, seeded.a]
    before = client.calls.list(end_time_before=datetime(2025, 11, 5, tzinfo=UTC))
    assert [c.sid for c in before] == [seeded.c, seeded.b, seeded.a]
    call = client.calls(seeded.a).fetch()
    assert call.sid == seeded.a and call.account_sid == server.account_sid
    assert (call.to, call._from, call.to_formatted, call.from_formatted) == (
        "+15550001111",
        "+15557654321",
        "+15550001111",
        "+15557654321",
    )
    assert (call.status, call.direction, call.duration, call.api_version) == (
        "completed",
        "inbound",
        "15",
        "2010-04-01",
    )
    assert call.start_time == DAY1 and call.end_time == DAY1 + s(15)
    assert call.date_created == DAY1 and call.date_updated == DAY1 + s(2)
    assert (call.caller_name, call.forwarded_from, call.phone_number_sid) == (
        "Alice Caller",
        "+15550009999",
        NUMBER_SID,
    )
    assert (call.price, call.price_unit, call.queue_time, call.answered_by) == (
        None,
        "USD",
        "0",
        None,
    )
    assert call.subresource_uris is not None and "notifications" in call.subresource_uris
    live = client.calls(seeded.e).fetch()
    assert live.end_time is None and live.duration is None
    notes = client.calls(seeded.a).notifications.list()
    assert [n.sid for n in notes] == [seeded.notifications["n2"], seeded.notifications["n1"]]
