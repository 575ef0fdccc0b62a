"""Reading Notifications over the real server (API-50, DOC-20): fields, filters, formats.

The rows are those of :func:`tests.api.test_calls_read.seed`, written into the server's
database by :class:`~dialtone.calls.records.CallRecords` from the test process.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

import httpx
import pytest

from dialtone import ids
from tests.api.test_calls_read import DAY1, OTHER_ACCOUNT, Seeded, s, seed, twilio_client
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def seeded(server: ServerProcess) -> Seeded:
    return seed(server)


def listed(api: httpx.Client, url: str, **params: str) -> list[str]:
    response = api.get(url, params=params)
    assert response.status_code == 200, response.text
    return [n["sid"] for n in response.json()["notifications"]]


def test_fields_of_a_notification(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    n1 = seeded.notifications["n1"]
    body = api.get(f"{server.api}/Notifications/{n1}.json").json()
    response_body = body.pop("response_body")
    assert body == {
        "sid": n1,
        "account_sid": server.account_sid,
        "call_sid": seeded.a,
        "api_version": "2010-04-01",
        "log": "0",
        "error_code": "11200",
        "more_info": f"{server.base_url}/docs/errors/11200",
        "message_text": "http://app.test/voice: HTTP 500 Internal Server Error",
        "message_date": "Tue, 04 Nov 2025 10:00:03 +0000",
        "request_url": "http://app.test/voice",
        "request_method": "POST",
        "request_variables": f"CallSid={seeded.a}&CallStatus=ringing",
        "date_created": "Tue, 04 Nov 2025 10:00:05 +0000",
        "date_updated": "Tue, 04 Nov 2025 10:00:05 +0000",
        "uri": f"/2010-04-01/Accounts/{server.account_sid}/Notifications/{n1}.json",
    }
    assert len(response_body) == 4096 and seeded.body.startswith(response_body)
    warning = api.get(f"{server.api}/Notifications/{seeded.notifications['n3']}.json").json()
    assert (warning["log"], warning["call_sid"], warning["request_url"]) == ("1", None, None)
    assert warning["request_variables"] is None and warning["response_body"] is None


def test_more_info_describes_the_code(
    server: ServerProcess, api: httpx.Client, seeded: Seeded
) -> None:
    for key, code in (("n1", "11200"), ("n2", "13511"), ("n3", "15003"), ("n4", "12100")):
        more_info = api.get(f"{server.api}/Notifications/{seeded.notifications[key]}.json").json()[
            "more_info"
        ]
        page = httpx.get(more_info)
        assert page.status_code == 200 and code in page.text, code


def test_list_filters_and_order(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    n = seeded.notifications
    url = f"{server.api}/Notifications.json"
    assert listed(api, url) == [n["n4"], n["n3"], n["n2"], n["n1"]]  # not the other account's
    cases: list[tuple[dict[str, str], list[str]]] = [
        ({"Log": "0"}, [n["n4"], n["n1"]]),
        ({"Log": "1"}, [n["n3"], n["n2"]]),
        ({"MessageDate": "2025-11-04"}, [n["n2"], n["n1"]]),
        ({"MessageDate>": "2025-11-05"}, [n["n4"], n["n3"]]),
        ({"MessageDate<": "2025-11-05"}, [n["n2"], n["n1"]]),
        ({"MessageDate>": "2025-11-04T10:00:04Z", "MessageDate<": "2025-11-05"}, [n["n2"]]),
        ({"MessageDate": "2025-11-05", "Log": "0"}, [n["n4"]]),
        ({"MessageDate": "2025-11-07"}, []),
    ]
    for params, expected in cases:
        assert listed(api, url, **params) == expected, params
    for params, named in (
        ({"Log": "2"}, "Log"),
        ({"Log": "error"}, "Log"),
        ({"MessageDate": "2025-02-30"}, "MessageDate"),
        ({"MessageDate>": "soon"}, "MessageDate>"),
    ):
        response = api.get(url, params=params)
        assert response.status_code == 400 and response.json()["code"] == 20422, params
        assert named in response.json()["message"], params


def test_paging_keeps_the_filters(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    n = seeded.notifications
    first = api.get(f"{server.api}/Notifications.json", params={"Log": "1", "PageSize": 1}).json()
    assert [x["sid"] for x in first["notifications"]] == [n["n3"]]
    assert "Log=1" in first["next_page_uri"] and "PageSize=1" in first["next_page_uri"]
    second = api.get(server.base_url + first["next_page_uri"]).json()
    assert [x["sid"] for x in second["notifications"]] == [n["n2"]]
    assert second["next_page_uri"] is None


def test_a_calls_notifications(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    n = seeded.notifications
    url = f"{server.api}/Calls/{seeded.a}/Notifications.json"
    body = api.get(url).json()
    assert [x["sid"] for x in body["notifications"]] == [n["n2"], n["n1"]]
    assert body["notifications"][0]["uri"] == (
        f"/2010-04-01/Accounts/{server.account_sid}/Calls/{seeded.a}/Notifications/{n['n2']}.json"
    )
    assert body["uri"].startswith(f"/2010-04-01/Accounts/{server.account_sid}/Calls/{seeded.a}/")
    assert listed(api, url, Log="1") == [n["n2"]]
    assert listed(api, f"{server.api}/Calls/{seeded.d}/Notifications.json") == [n["n4"]]
    assert listed(api, f"{server.api}/Calls/{seeded.e}/Notifications.json") == []
    one = api.get(f"{server.api}/Calls/{seeded.a}/Notifications/{n['n1']}.json")
    assert one.status_code == 200 and one.json()["sid"] == n["n1"]
    for path in (
        f"/Calls/{seeded.a}/Notifications/{n['n3']}.json",  # not this call's
        f"/Calls/{ids.new_sid(ids.CALL)}/Notifications.json",
        f"/Calls/{seeded.foreign}/Notifications.json",
    ):
        response = api.get(server.api + path)
        assert response.status_code == 404 and response.json()["code"] == 20404, path


def test_xml_restcomm_and_errors(server: ServerProcess, api: httpx.Client, seeded: Seeded) -> None:
    n1 = seeded.notifications["n1"]
    root = ET.fromstring(api.get(f"{server.api}/Notifications", params={"Log": "0"}).content)
    items = root.findall("Notifications/Notification")
    assert [i.findtext("Sid") for i in items] == [seeded.notifications["n4"], n1]
    assert items[1].findtext("ErrorCode") == "11200" and items[1].findtext("Log") == "0"
    assert items[1].findtext("MessageDate") == "Tue, 04 Nov 2025 10:00:03 +0000"
    restcomm = api.get(f"{server.restcomm_api}/Notifications/{n1}")
    rc = ET.fromstring(restcomm.content)
    assert rc.tag == "RestcommResponse" and rc.findtext("Notification/CallSid") == seeded.a
    assert rc.findtext("Notification/Uri") == (
        f"/restcomm/2012-04-24/Accounts/{server.account_sid}/Notifications/{n1}"
    )
    foreign = seeded.notifications["foreign"]
    for sid in (foreign, ids.new_sid(ids.NOTIFICATION)):
        response = api.get(f"{server.api}/Notifications/{sid}.json")
        assert response.status_code == 404 and response.json()["code"] == 20404
    other = f"{server.base_url}/2010-04-01/Accounts/{OTHER_ACCOUNT}/Notifications.json"
    assert api.get(other).status_code == 403
    assert httpx.get(f"{server.api}/Notifications.json").status_code == 401


def test_twilio_library_reads_notifications(server: ServerProcess, seeded: Seeded) -> None:
    n = seeded.notifications
    client = twilio_client(server)
    assert [x.sid for x in client.notifications.list()] == [n["n4"], n["n3"], n["n2"], n["n1"]]
    assert [x.sid for x in client.notifications.list(log=0, page_size=1)] == [n["n4"], n["n1"]]
    on_day = client.notifications.list(message_date=date(2025, 11, 5))
    assert [x.sid for x in on_day] == [n["n4"], n["n3"]]
    after = client.notifications.list(message_date_after=datetime(2025, 11, 5, tzinfo=UTC))
    assert [x.sid for x in after] == [n["n4"], n["n3"]]
    one = client.notifications(n["n1"]).fetch()
    assert (one.sid, one.account_sid, one.call_sid, one.api_version) == (
        n["n1"],
        server.account_sid,
        seeded.a,
        "2010-04-01",
    )
    assert (one.log, one.error_code, one.request_method) == ("0", "11200", "POST")
    assert one.message_date == DAY1 + s(3) and one.date_created == DAY1 + s(5)
    assert one.more_info == f"{server.base_url}/docs/errors/11200"
    assert one.request_url == "http://app.test/voice" and one.response_body is not None
    assert one.request_variables == f"CallSid={seeded.a}&CallStatus=ringing"
    per_call = client.calls(seeded.a).notifications.list(log=1)
    assert [x.sid for x in per_call] == [n["n2"]]
    fetched = client.calls(seeded.a).notifications(n["n2"]).fetch()
    assert fetched.message_text is not None and "voice mapped" in fetched.message_text
