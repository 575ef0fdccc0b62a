"""Creating and modifying Calls over REST, behind a fake call control (API-20, API-24, API-25).

The REST app runs in-process with :class:`~tests.support.app_server.FakeControl` in place
of the call layer (see :mod:`tests.support.app_server`); nothing here dials.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient
from twilio.twiml.voice_response import VoiceResponse

from dialtone import ids
from dialtone.api.scope import ApiServices
from dialtone.calls.control import CallControlError, ModifyRequest, Notice, OriginateRequest
from dialtone.rcml.nodes import Say
from tests.support.app_server import OTHER_ACCOUNT, AppServer, FakeControl


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(tmp_path_factory.mktemp("calls-write")).start()
    with httpx.Client(auth=(server.account_sid, server.auth_token), timeout=10) as client:
        for _ in range(200):
            try:
                if client.get(server.base_url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            threading.Event().wait(0.02)
        created = client.post(
            f"{server.api}/Clients.json", data={"Login": "alice", "Password": "secret"}
        )
        assert created.status_code == 201, created.text
    yield server
    server.stop()


@pytest.fixture
def api(app_server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(auth=(app_server.account_sid, app_server.auth_token), timeout=10) as c:
        yield c


@pytest.fixture
def control(app_server: AppServer) -> Iterator[FakeControl]:
    assert app_server.control is not None
    fake = app_server.control
    fake.originated.clear()
    fake.modified.clear()
    yield fake
    fake.refusal = None
    fake.move_on_to = None


@pytest.fixture
def services(app_server: AppServer) -> Iterator[ApiServices]:
    assert app_server.services is not None and app_server.control is not None
    yield app_server.services
    app_server.services.call_control = app_server.control
    app_server.services.has_outbound_proxy = True


def twilio_client(server: AppServer) -> TwilioClient:
    client = TwilioClient(server.account_sid, server.auth_token)
    client.api.base_url = server.base_url
    return client


def alice_sid(api: httpx.Client, server: AppServer) -> str:
    sid: str = api.get(f"{server.api}/Clients.json", params={"Login": "alice"}).json()["clients"][
        0
    ]["sid"]
    return sid


def call_count(api: httpx.Client, server: AppServer) -> int:
    return len(api.get(f"{server.api}/Calls.json", params={"PageSize": 1000}).json()["calls"])


MINIMAL = {"To": "client:alice", "From": "+15550001111", "Url": "http://app.test/answer"}


# --- create: success ------------------------------------------------------------------------


def test_create_answers_201_queued_and_hands_over_the_request(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    response = api.post(f"{app_server.api}/Calls.json", data=MINIMAL)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    sid = body["sid"]
    assert ids.is_sid(sid, ids.CALL)
    assert (body["status"], body["direction"], body["api_version"]) == (
        "queued",
        "outbound-api",
        "2010-04-01",
    )
    assert (body["to"], body["from"], body["account_sid"]) == (
        "client:alice",
        "+15550001111",
        app_server.account_sid,
    )
    assert body["uri"] == f"/2010-04-01/Accounts/{app_server.account_sid}/Calls/{sid}.json"
    assert body["duration"] is None and body["end_time"] is None
    assert api.get(f"{app_server.api}/Calls/{sid}.json").json()["status"] == "queued"
    [request] = control.originated
    assert request == OriginateRequest(
        account_sid=app_server.account_sid,
        api_version="2010-04-01",
        to="client:alice",
        to_kind="client",
        client_sid=alice_sid(api, app_server),
        sip_headers=(),
        from_="+15550001111",
        url="http://app.test/answer",
        method="POST",
        fallback_url=None,
        fallback_method="POST",
        twiml=None,
        status_callback=None,
        status_callback_method="POST",
        status_callback_events=frozenset(),
        timeout=60,
        send_digits=None,
    )


def test_create_translates_every_parameter(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    form: dict[str, str | list[str]] = {
        "To": " +1 (555) 000-2222 ",
        "From": "client:alice",
        "Url": "/answer?x=1#rc=2",
        "Method": "get",
        "FallbackUrl": "https://app.test/fallback",
        "FallbackMethod": "Get",
        "StatusCallback": "http://app.test/status",
        "StatusCallbackMethod": "get",
        "StatusCallbackEvent": ["initiated ringing", "Answered,completed", "ringing"],
        "Timeout": "30",
        "SendDigits": "1234w#",
        "Unknown": "ignored",
    }
    response = api.post(f"{app_server.api}/Calls.json", data=form)
    assert response.status_code == 201, response.text
    assert response.json()["to"] == "+15550002222"
    [request] = control.originated
    assert (request.to, request.to_kind, request.client_sid) == ("+15550002222", "number", None)
    assert request.from_ == "client:alice"
    assert (request.url, request.method) == (f"{app_server.base_url}/answer?x=1#rc=2", "GET")
    assert (request.fallback_url, request.fallback_method) == ("https://app.test/fallback", "GET")
    assert (request.status_callback, request.status_callback_method) == (
        "http://app.test/status",
        "GET",
    )
    assert request.status_callback_events == {"initiated", "ringing", "answered", "completed"}
    assert (request.timeout, request.send_digits, request.notices) == (30, "1234w#", ())


def test_status_callback_subscription_follows_cb2(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    url = f"{app_server.api}/Calls.json"
    only_url = {**MINIMAL, "StatusCallback": "http://app.test/status"}
    assert api.post(url, data=only_url).status_code == 201
    empty_list = {**only_url, "StatusCallbackEvent": " , "}
    assert api.post(url, data=empty_list).status_code == 201
    only_events = {**MINIMAL, "StatusCallbackEvent": "ringing"}
    assert api.post(url, data=only_events).status_code == 201
    first, second, third = control.originated
    assert first.status_callback_events == second.status_callback_events == {"completed"}
    assert third.status_callback is None and third.status_callback_events == frozenset()
    assert third.notices == (
        Notice(12200, "StatusCallbackEvent is ignored without StatusCallback"),
    )


def test_sip_destination_keeps_its_headers_apart(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    data = {**MINIMAL, "To": "sip:carol@example.com;transport=tcp?Priority=urgent&X-Acct=7"}
    response = api.post(f"{app_server.api}/Calls.json", data=data)
    assert response.status_code == 201, response.text
    assert response.json()["to"] == "sip:carol@example.com;transport=tcp"
    [request] = control.originated
    assert (request.to, request.to_kind) == ("sip:carol@example.com;transport=tcp", "sip")
    assert request.sip_headers == (("X-Priority", "urgent"), ("X-Acct", "7"))


def test_twiml_is_validated_into_a_document(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    twiml = '<?xml version="1.0"?><Response><Say>Hello</Say><Redirect>/next</Redirect></Response>'
    data = {
        "To": "client:alice",
        "From": "alice",
        "Twiml": twiml,
        "FallbackUrl": "http://app.test/fb",
    }
    assert api.post(f"{app_server.api}/Calls.json", data=data).status_code == 201
    both = {**MINIMAL, "Twiml": twiml}
    assert api.post(f"{app_server.api}/Calls.json", data=both).status_code == 201
    inline, url_wins = control.originated
    assert inline.url is None and inline.fallback_url is None and inline.twiml is not None
    assert inline.twiml.url == app_server.base_url + "/"
    say, redirect = inline.twiml.verbs
    assert isinstance(say, Say) and say.text == "Hello"
    assert getattr(redirect, "url", None) == app_server.base_url + "/next"
    assert url_wins.url == "http://app.test/answer" and url_wins.twiml is None


def test_restcomm_prefix_and_xml(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    response = api.post(f"{app_server.restcomm_api}/Calls", data=MINIMAL)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "RestcommResponse"
    call = root.find("Call")
    assert call is not None
    sid = call.findtext("Sid")
    assert (call.findtext("Status"), call.findtext("ApiVersion")) == ("queued", "2012-04-24")
    assert call.findtext("Direction") == "outbound-api" and call.findtext("To") == "client:alice"
    assert call.findtext("Uri") == (
        f"/restcomm/2012-04-24/Accounts/{app_server.account_sid}/Calls/{sid}"
    )
    assert control.originated[0].api_version == "2012-04-24"
    twilio_xml = api.post(f"{app_server.api}/Calls", data=MINIMAL)
    assert twilio_xml.status_code == 201
    assert ET.fromstring(twilio_xml.content).tag == "TwilioResponse"
    as_json = api.post(
        f"{app_server.restcomm_api}/Calls", data=MINIMAL, headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 201 and as_json.json()["api_version"] == "2012-04-24"


def test_the_201_shows_the_call_as_created(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    for later in ("ringing", "failed"):
        control.move_on_to = later
        response = api.post(f"{app_server.api}/Calls.json", data=MINIMAL)
        assert response.status_code == 201
        body = response.json()
        assert (body["status"], body["end_time"], body["duration"]) == ("queued", None, None)
        assert body["sip_response_code"] is None
        stored = api.get(f"{app_server.api}/Calls/{body['sid']}.json").json()
        assert stored["status"] == later


def test_call_control_refusal_is_answered_as_given(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    control.refusal = CallControlError(503, 20503, "dialtone is shutting down")
    before = call_count(api, app_server)
    response = api.post(f"{app_server.api}/Calls.json", data=MINIMAL)
    assert response.status_code == 503
    assert response.json()["code"] == 20503
    assert response.json()["message"] == "dialtone is shutting down"
    assert call_count(api, app_server) == before


# --- create: every validation error ---------------------------------------------------------

REJECTED: list[tuple[dict[str, Any], int, str]] = [
    ({"To": None}, 21201, "To"),
    ({"To": ""}, 21201, "To"),
    ({"To": "alice"}, 21211, "To"),
    ({"To": "client:"}, 21211, "To"),
    ({"To": "client:nobody"}, 21211, "To 'client:nobody'"),
    ({"To": "client:bad login"}, 21211, "To"),
    ({"To": "sip:"}, 21211, "To"),
    ({"To": "sips:bob@example.com"}, 21211, "To"),
    ({"To": "sip:bob@example.com?Bad Name=1"}, 21211, "To"),
    ({"To": "+1 555 abc"}, 21211, "To"),
    ({"To": "1" * 33}, 21211, "To"),
    ({"From": None}, 21213, "From"),
    ({"From": ""}, 21213, "From"),
    ({"From": "x" * 65}, 21212, "From"),
    ({"From": "bad from"}, 21212, "From"),
    ({"From": "client:bad login"}, 21212, "From"),
    ({"Url": None}, 21205, "Url"),
    ({"Url": ""}, 21205, "Url"),
    ({"Url": "ftp://app.test/x"}, 21205, "Url"),
    ({"Url": "http://app.test/a b"}, 21205, "Url"),
    ({"Url": "http://app.test/x#ct=5"}, 21205, "Url"),
    ({"Url": "http://app.test/x#rp=sometimes"}, 21205, "Url"),
    ({"Url": "http://" + "a" * 4000}, 21205, "Url"),
    ({"FallbackUrl": "mailto:x@app.test"}, 21205, "FallbackUrl"),
    ({"StatusCallback": "nope://x"}, 21205, "StatusCallback"),
    ({"Method": "PUT"}, 21209, "Method"),
    ({"FallbackMethod": "DELETE"}, 21209, "FallbackMethod"),
    ({"StatusCallbackMethod": "FETCH"}, 21209, "StatusCallbackMethod"),
    ({"StatusCallback": "http://app.test/s", "StatusCallbackEvent": "answred"}, 21626, "answred"),
    ({"StatusCallbackEvent": ["initiated", "ringing,bogus"]}, 21626, "bogus"),
    ({"Timeout": "0"}, 21208, "Timeout"),
    ({"Timeout": "601"}, 21208, "Timeout"),
    ({"Timeout": "sixty"}, 21208, "Timeout"),
    ({"Timeout": "60.5"}, 21208, "Timeout"),
    ({"Twiml": "<Response><Bogus/></Response>"}, 12200, "Twiml"),
    ({"Twiml": "<Response><Say>hi</Say>"}, 12100, "Twiml"),
    ({"Twiml": "<Nope/>"}, 12102, "Twiml"),
    ({"Twiml": "<Response><Say></Say></Response>"}, 13520, "Twiml"),
    ({"Twiml": "<Response><Dial timeout='x'>+1555</Dial></Response>"}, 13212, "Twiml"),
    ({"Twiml": '<!DOCTYPE x [<!ENTITY a "b">]><Response/>'}, 12100, "Twiml"),
    ({"Twiml": "<Response><Say>" + "x" * 4000 + "</Say></Response>"}, 11750, "Twiml"),
    ({"SendDigits": "12ab"}, 20422, "SendDigits"),
]


def _form(changes: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL with ``changes`` (None drops a parameter; Twiml replaces Url)."""
    merged: dict[str, Any] = {**MINIMAL, **changes}
    if "Twiml" in changes and "Url" not in changes:
        merged.pop("Url")
    return {name: value for name, value in merged.items() if value is not None}


@pytest.mark.parametrize(("changes", "code", "named"), REJECTED)
def test_create_rejects_with_the_code_naming_the_field(
    app_server: AppServer,
    api: httpx.Client,
    control: FakeControl,
    changes: dict[str, Any],
    code: int,
    named: str,
) -> None:
    response = api.post(f"{app_server.api}/Calls.json", data=_form(changes))
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["code"], body["status"]) == (code, 400), body
    assert named in body["message"], body
    assert body["more_info"] == f"{app_server.base_url}/docs/errors/{code}"
    assert control.originated == []


def test_rejections_in_xml_and_under_restcomm(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    for base, root_tag in (
        (app_server.api, "TwilioResponse"),
        (app_server.restcomm_api, "RestcommResponse"),
    ):
        response = api.post(f"{base}/Calls", data={"From": "+15550001111", "Url": "http://a.test"})
        assert response.status_code == 400
        root = ET.fromstring(response.content)
        assert root.tag == root_tag
        assert root.findtext("RestException/Code") == "21201"
        assert root.findtext("RestException/Status") == "400"
        assert "To" in (root.findtext("RestException/Message") or "")
    assert control.originated == []


def test_a_number_needs_an_outbound_proxy(
    app_server: AppServer, api: httpx.Client, control: FakeControl, services: ApiServices
) -> None:
    services.has_outbound_proxy = False
    data = {**MINIMAL, "To": "+15550003333"}
    response = api.post(f"{app_server.api}/Calls.json", data=data)
    assert response.status_code == 400
    assert response.json()["code"] == 21214 and "To" in response.json()["message"]
    for other in ("client:alice", "sip:carol@example.com"):
        assert api.post(f"{app_server.api}/Calls.json", data={**MINIMAL, "To": other}).is_success
    assert [r.to_kind for r in control.originated] == ["client", "sip"]


def test_without_call_control_503(
    app_server: AppServer, api: httpx.Client, control: FakeControl, services: ApiServices
) -> None:
    sid = app_server.call_soon(control.seed(app_server.account_sid, "in-progress"))
    services.call_control = None
    response = api.post(f"{app_server.api}/Calls.json", data=MINIMAL)
    assert response.status_code == 503 and response.json()["code"] == 20503
    xml = api.post(f"{app_server.restcomm_api}/Calls", data=MINIMAL)
    assert xml.status_code == 503
    assert ET.fromstring(xml.content).findtext("RestException/Code") == "20503"
    modify = api.post(f"{app_server.api}/Calls/{sid}.json", data={"Status": "completed"})
    assert modify.status_code == 503 and modify.json()["code"] == 20503
    assert control.originated == [] and control.modified == []


def test_authentication_comes_first(app_server: AppServer, control: FakeControl) -> None:
    anonymous = httpx.post(f"{app_server.api}/Calls.json", data=MINIMAL)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 20003
    other = f"{app_server.base_url}/2010-04-01/Accounts/{OTHER_ACCOUNT}/Calls.json"
    foreign = httpx.post(other, data=MINIMAL, auth=(app_server.account_sid, app_server.auth_token))
    assert foreign.status_code == 403 and foreign.json()["code"] == 20403
    assert control.originated == []


def test_error_pages_describe_the_new_codes(app_server: AppServer) -> None:
    for code in (20503, 21201, 21205, 21208, 21209, 21211, 21212, 21213, 21214, 21220, 21626):
        page = httpx.get(f"{app_server.base_url}/docs/errors/{code}")
        assert page.status_code == 200 and str(code) in page.text, code


# --- modify ---------------------------------------------------------------------------------


def test_modify_status_ends_the_call(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    for status, code in (("completed", 200), ("canceled", 487)):
        sid = app_server.call_soon(control.seed(app_server.account_sid, "ringing"))
        response = api.post(f"{app_server.api}/Calls/{sid}.json", data={"Status": status})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["sid"], body["status"], body["sip_response_code"]) == (sid, status, code)
        assert body["uri"] == f"/2010-04-01/Accounts/{app_server.account_sid}/Calls/{sid}.json"
    first, second = control.modified
    assert (first.status, first.url, first.twiml) == ("completed", None, None)
    assert second.status == "canceled" and second.account_sid == app_server.account_sid


def test_modify_with_url_or_twiml_redirects(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    sid = app_server.call_soon(control.seed(app_server.account_sid, "in-progress"))
    url = f"{app_server.api}/Calls/{sid}.json"
    data = {"Url": "/transfer", "Method": "GET", "FallbackUrl": "http://app.test/fb"}
    response = api.post(url, data=data)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "in-progress"
    twiml = api.post(url, data={"Twiml": "<Response><Hangup/></Response>"})
    assert twiml.status_code == 200
    redirect, inline = control.modified
    assert redirect == ModifyRequest(
        account_sid=app_server.account_sid,
        call_sid=sid,
        status=None,
        url=f"{app_server.base_url}/transfer",
        method="GET",
        fallback_url="http://app.test/fb",
        fallback_method="POST",
        twiml=None,
    )
    assert inline.url is None and inline.twiml is not None and len(inline.twiml.verbs) == 1


def test_modify_under_restcomm_and_in_xml(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    sid = app_server.call_soon(control.seed(app_server.account_sid, "in-progress"))
    response = api.post(f"{app_server.restcomm_api}/Calls/{sid}", data={"Url": "http://a.test/x"})
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "RestcommResponse" and root.findtext("Call/Sid") == sid
    assert root.findtext("Call/Uri") == (
        f"/restcomm/2012-04-24/Accounts/{app_server.account_sid}/Calls/{sid}"
    )
    ended = api.post(f"{app_server.api}/Calls/{sid}", data={"Status": "completed"})
    assert ET.fromstring(ended.content).findtext("Call/Status") == "completed"


MODIFY_REJECTED: list[tuple[dict[str, str], int, str]] = [
    ({}, 20422, "Status"),
    ({"Method": "GET"}, 20422, "Url"),
    ({"Status": "busy"}, 20422, "Status"),
    ({"Status": "in-progress"}, 20422, "Status"),
    ({"Status": "completed", "Url": "http://app.test/x"}, 20422, "Status"),
    ({"Status": "canceled", "Twiml": "<Response/>"}, 20422, "Twiml"),
    ({"Url": "ftp://app.test/x"}, 21205, "Url"),
    ({"Url": "http://app.test/x", "FallbackUrl": "x y"}, 21205, "FallbackUrl"),
    ({"Url": "http://app.test/x", "Method": "PUT"}, 21209, "Method"),
    ({"Url": "http://app.test/x", "FallbackMethod": "PATCH"}, 21209, "FallbackMethod"),
    ({"Twiml": "<Response><Dial><Client>bad login</Client></Dial></Response>"}, 12200, "Twiml"),
    ({"Twiml": "<Response><Say>x" + "y" * 4000 + "</Say></Response>"}, 11750, "Twiml"),
]


@pytest.mark.parametrize(("data", "code", "named"), MODIFY_REJECTED)
def test_modify_rejects_with_the_code_naming_the_field(
    app_server: AppServer,
    api: httpx.Client,
    control: FakeControl,
    data: dict[str, str],
    code: int,
    named: str,
) -> None:
    sid = app_server.call_soon(control.seed(app_server.account_sid, "in-progress"))
    response = api.post(f"{app_server.api}/Calls/{sid}.json", data=data)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == code and named in body["message"], body
    assert control.modified == []
    assert api.get(f"{app_server.api}/Calls/{sid}.json").json()["status"] == "in-progress"


def test_modify_an_ended_call_is_21220(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    sid = app_server.call_soon(control.seed(app_server.account_sid, "completed"))
    for data in ({"Status": "completed"}, {"Status": "canceled"}, {"Url": "http://app.test/x"}):
        response = api.post(f"{app_server.api}/Calls/{sid}.json", data=data)
        assert response.status_code == 400
        assert response.json()["code"] == 21220 and sid in response.json()["message"]
    assert control.modified == []


def test_call_control_refusal_of_a_modify(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    sid = app_server.call_soon(control.seed(app_server.account_sid, "ringing"))
    control.refusal = CallControlError(400, 21220, f"Call {sid} is a branch that has not answered")
    response = api.post(f"{app_server.api}/Calls/{sid}.json", data={"Url": "http://app.test/x"})
    assert response.status_code == 400
    assert response.json() == {
        "code": 21220,
        "message": f"Call {sid} is a branch that has not answered",
        "more_info": f"{app_server.base_url}/docs/errors/21220",
        "status": 400,
    }


async def _seed_branch(control: FakeControl, account_sid: str, status: str) -> str:
    """A Dial branch (outbound-dial) of a fresh parent, in ``status``."""
    parent = await control.seed(account_sid, "in-progress")
    sid = ids.new_sid(ids.CALL)
    created = control.records.create(
        sid,
        account_sid=account_sid,
        direction="outbound-dial",
        from_="+15557654321",
        to="client:alice",
        status="ringing",
        api_version="2010-04-01",
        start_time=control.clock.utcnow(),
        parent_call_sid=parent,
    )
    assert await created
    if status == "in-progress":
        assert await control.records.update(sid, status=status, answer_time=control.clock.utcnow())
    return sid


def test_new_rcml_for_a_ringing_branch_is_21220_and_reaches_nobody(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    """API-25: a branch that has not answered cannot run RCML (its row says so)."""
    sid = app_server.call_soon(_seed_branch(control, app_server.account_sid, "ringing"))
    url = f"{app_server.api}/Calls/{sid}.json"
    for data in ({"Url": "http://app.test/x"}, {"Twiml": "<Response><Hangup/></Response>"}):
        response = api.post(url, data=data)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == 21220 and body["status"] == 400
        assert body["message"] == (
            f"Call {sid} is not in progress: it is a Dial branch that has not answered "
            "(ringing); only Status can change it"
        )
        assert body["more_info"] == f"{app_server.base_url}/docs/errors/21220"
    xml = api.post(f"{app_server.api}/Calls/{sid}", data={"Url": "http://app.test/x"})
    assert ET.fromstring(xml.content).findtext("RestException/Code") == "21220"
    assert control.modified == []
    assert api.get(url).json()["status"] == "ringing"
    # Status still works on it (API-24: a ringing branch is cancelled)
    assert api.post(url, data={"Status": "canceled"}).status_code == 200
    assert [m.status for m in control.modified] == ["canceled"]


def test_new_rcml_for_an_answered_branch_or_a_parent_reaches_call_control(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    """API-25 on a bridged or whispering branch, or on a parent in a Dial: handed over."""
    branch = app_server.call_soon(_seed_branch(control, app_server.account_sid, "in-progress"))
    ringing_parent = app_server.call_soon(control.seed(app_server.account_sid, "ringing"))
    for sid in (branch, ringing_parent):
        response = api.post(f"{app_server.api}/Calls/{sid}.json", data={"Url": "/transfer"})
        assert response.status_code == 200, response.text
        assert response.json()["sid"] == sid
    assert [m.call_sid for m in control.modified] == [branch, ringing_parent]
    assert control.modified[0].url == f"{app_server.base_url}/transfer"
    branch_row = api.get(f"{app_server.api}/Calls/{branch}.json").json()
    assert branch_row["direction"] == "outbound-dial" and branch_row["parent_call_sid"]


def test_call_control_refusal_of_a_branch_that_stopped_ringing_meanwhile(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    """The row said in-progress, the live branch disagrees (e.g. it is being hung up)."""
    sid = app_server.call_soon(_seed_branch(control, app_server.account_sid, "in-progress"))
    message = f"Call {sid} is not in progress: it is being hung up"
    control.refusal = CallControlError(400, 21220, message)
    response = api.post(f"{app_server.api}/Calls/{sid}.json", data={"Twiml": "<Response/>"})
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["message"]) == (21220, message)


def test_modify_unknown_or_foreign_call_is_404(
    app_server: AppServer, api: httpx.Client, control: FakeControl
) -> None:
    foreign = app_server.call_soon(control.seed(OTHER_ACCOUNT, "in-progress"))
    for sid in (ids.new_sid(ids.CALL), foreign, "nonsense"):
        response = api.post(f"{app_server.api}/Calls/{sid}.json", data={"Status": "completed"})
        assert response.status_code == 404 and response.json()["code"] == 20404, sid
        xml = api.post(f"{app_server.api}/Calls/{sid}", data={"Status": "completed"})
        assert ET.fromstring(xml.content).findtext("RestException/Code") == "20404"
    assert control.modified == []


# --- the official twilio helper library (API-8) ---------------------------------------------


def test_twilio_library_creates_a_call(app_server: AppServer, control: FakeControl) -> None:
    client = twilio_client(app_server)
    call = client.calls.create(
        to="client:alice",
        from_="+15550001111",
        url="http://app.test/answer",
        status_callback="http://app.test/status",
        status_callback_event=["initiated", "answered"],
        timeout=20,
    )
    assert call.sid is not None and ids.is_sid(call.sid, ids.CALL)
    assert (call.account_sid, call.status, call.direction) == (
        app_server.account_sid,
        "queued",
        "outbound-api",
    )
    assert (call.to, call.to_formatted, call._from, call.from_formatted) == (
        "client:alice",
        "client:alice",
        "+15550001111",
        "+15550001111",
    )
    assert call.date_created is not None and call.date_created.tzinfo is not None
    assert call.date_updated == call.date_created
    assert call.start_time is not None and call.end_time is None
    assert (call.duration, call.price, call.price_unit, call.answered_by) == (
        None,
        None,
        "USD",
        None,
    )
    assert (call.api_version, call.parent_call_sid, call.phone_number_sid) == (
        "2010-04-01",
        None,
        None,
    )
    assert (call.forwarded_from, call.caller_name, call.group_sid, call.queue_time) == (
        None,
        None,
        None,
        "0",
    )
    assert (call.trunk_sid, call.stir_verstat) == (None, None)
    assert call.uri == f"/2010-04-01/Accounts/{app_server.account_sid}/Calls/{call.sid}.json"
    assert call.subresource_uris is not None and "notifications" in call.subresource_uris
    [request] = control.originated
    assert request.status_callback_events == {"initiated", "answered"}
    assert request.timeout == 20
    fetched = client.calls(call.sid).fetch()
    assert fetched.sid == call.sid and fetched.status == "queued"


def test_twilio_library_updates_a_call(app_server: AppServer, control: FakeControl) -> None:
    client = twilio_client(app_server)
    call = client.calls.create(to="client:alice", from_="alice", url="http://app.test/answer")
    assert call.sid is not None
    redirected = client.calls(call.sid).update(url="http://app.test/transfer", method="GET")
    assert redirected.sid == call.sid and redirected.status == "queued"
    response = VoiceResponse()
    response.say("Goodbye")
    inline = client.calls(call.sid).update(twiml=response)
    assert inline.sid == call.sid
    ended = client.calls(call.sid).update(status="completed")
    assert ended.status == "completed"
    assert ended.end_time is not None and ended.duration == "0"
    by_url, by_twiml, by_status = control.modified
    assert (by_url.url, by_url.method) == ("http://app.test/transfer", "GET")
    assert by_twiml.twiml is not None and isinstance(by_twiml.twiml.verbs[0], Say)
    assert by_status.status == "completed"
    with pytest.raises(TwilioRestException) as again:
        client.calls(call.sid).update(status="completed")
    assert (again.value.status, again.value.code) == (400, 21220)


def test_twilio_library_reads_our_errors(app_server: AppServer, control: FakeControl) -> None:
    client = twilio_client(app_server)
    with pytest.raises(TwilioRestException) as missing:
        client.calls.create(to="client:alice", from_="+15550001111")
    assert (missing.value.status, missing.value.code) == (400, 21205)
    assert "Url" in missing.value.msg
    with pytest.raises(TwilioRestException) as unknown:
        client.calls(ids.new_sid(ids.CALL)).update(status="canceled")
    assert (unknown.value.status, unknown.value.code) == (404, 20404)
    assert control.originated == [] and control.modified == []
