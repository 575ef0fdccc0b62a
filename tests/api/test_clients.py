"""Clients over the real server: JSON and XML, both prefixes, paging, errors (API-30..32)."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import httpx

from tests.support.server import ServerProcess


def unique(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def create(api: httpx.Client, server: ServerProcess, **fields: str) -> httpx.Response:
    return api.post(f"{server.api}/Clients.json", data=fields)


def test_create_answers_201_with_a_cl_sid_and_lists_it(
    server: ServerProcess, api: httpx.Client
) -> None:
    login = unique("alice")
    response = create(api, server, Login=login, Password="secret")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sid"].startswith("CL") and len(body["sid"]) == 34
    assert body["login"] == login
    assert body["friendly_name"] == login
    assert body["account_sid"] == server.account_sid
    assert body["api_version"] == "2010-04-01"
    assert body["voice_method"] == "POST" and body["voice_url"] is None
    assert body["online"] is False and body["registrations"] == []
    assert body["date_created"].endswith(" +0000")
    assert body["uri"] == f"/2010-04-01/Accounts/{server.account_sid}/Clients/{body['sid']}.json"
    assert "password" not in response.text.lower().replace('"login"', "")
    listed = api.get(f"{server.api}/Clients.json", params={"Login": login}).json()
    assert [c["sid"] for c in listed["clients"]] == [body["sid"]]


def test_password_and_hashes_are_never_returned(server: ServerProcess, api: httpx.Client) -> None:
    response = create(api, server, Login=unique(), Password="hunter2-secret")
    assert "hunter2" not in response.text
    assert "ha1" not in response.text.lower()
    assert "hunter2" not in server.log()


def test_duplicate_login_is_400_20422_naming_it(server: ServerProcess, api: httpx.Client) -> None:
    login = unique()
    assert create(api, server, Login=login, Password="a").status_code == 201
    again = create(api, server, Login=login, Password="b")
    assert again.status_code == 400
    assert again.json() == {
        "code": 20422,
        "message": f"Login '{login}' already exists",
        "more_info": f"{server.base_url}/docs/errors/20422",
        "status": 400,
    }


def test_missing_and_malformed_fields(server: ServerProcess, api: httpx.Client) -> None:
    cases = [
        ({"Password": "x"}, 20422, "Login"),
        ({"Login": unique()}, 20422, "Password"),
        ({"Login": "has space", "Password": "x"}, 20422, "Login"),
        ({"Login": "x" * 65, "Password": "x"}, 20422, "Login"),
        ({"Login": unique(), "Password": "x", "VoiceUrl": "ftp://x/y"}, 21402, "VoiceUrl"),
        ({"Login": unique(), "Password": "x", "VoiceUrl": "http://a b/"}, 21402, "VoiceUrl"),
        ({"Login": unique(), "Password": "x", "VoiceMethod": "PUT"}, 21403, "VoiceMethod"),
        ({"Login": unique(), "Password": "x", "FriendlyName": "n" * 65}, 20422, "FriendlyName"),
    ]
    before = api.get(f"{server.api}/Clients.json", params={"PageSize": 1000}).json()["clients"]
    for fields, code, named in cases:
        response = create(api, server, **fields)
        assert response.status_code == 400, (fields, response.text)
        assert response.json()["code"] == code, fields
        assert named in response.json()["message"], fields
    after = api.get(f"{server.api}/Clients.json", params={"PageSize": 1000}).json()["clients"]
    assert len(after) == len(before), "a failed request wrote something"


def test_relative_voice_url_is_accepted(server: ServerProcess, api: httpx.Client) -> None:
    response = create(api, server, Login=unique(), Password="x", VoiceUrl="/voice")
    assert response.status_code == 201
    assert response.json()["voice_url"] == "/voice"


def test_fetch_update_delete(server: ServerProcess, api: httpx.Client) -> None:
    sid = create(api, server, Login=unique(), Password="x").json()["sid"]
    url = f"{server.api}/Clients/{sid}.json"
    assert api.get(url).json()["sid"] == sid
    updated = api.post(
        url,
        data={"FriendlyName": "Alice A.", "VoiceUrl": "http://app.test/v", "VoiceMethod": "get"},
    )
    assert updated.status_code == 200
    body = updated.json()
    assert (body["friendly_name"], body["voice_url"], body["voice_method"]) == (
        "Alice A.",
        "http://app.test/v",
        "GET",
    )
    put = api.put(url, data={"VoiceUrl": ""})
    assert put.status_code == 200 and put.json()["voice_url"] is None
    assert api.post(url, data={"Login": "other"}).status_code == 400
    assert api.post(url, data={"Password": "new-password"}).status_code == 200
    assert api.delete(url).status_code == 204
    gone = api.get(url)
    assert gone.status_code == 404 and gone.json()["code"] == 20404
    assert api.delete(url).status_code == 404


def test_xml_representation(server: ServerProcess, api: httpx.Client) -> None:
    login = unique()
    sid = create(api, server, Login=login, Password="x").json()["sid"]
    response = api.get(f"{server.api}/Clients/{sid}")
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "TwilioResponse"
    client = root.find("Client")
    assert client is not None
    assert client.findtext("Sid") == sid
    assert client.findtext("Login") == login
    assert client.findtext("DateCreated", "").endswith("+0000")
    assert client.findtext("Online") == "false"
    listing = ET.fromstring(api.get(f"{server.api}/Clients", params={"Login": login}).content)
    clients = listing.find("Clients")
    assert clients is not None and clients.get("page") == "0" and clients.get("pagesize") == "50"
    assert [c.findtext("Sid") for c in clients.findall("Client")] == [sid]


def test_restcomm_prefix_and_api_version(server: ServerProcess, api: httpx.Client) -> None:
    response = api.post(
        f"{server.restcomm_api}/Clients.json", data={"Login": unique(), "Password": "x"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["api_version"] == "2012-04-24"
    assert body["uri"].startswith(f"/restcomm/2012-04-24/Accounts/{server.account_sid}/Clients/")
    xml = api.get(f"{server.restcomm_api}/Clients/{body['sid']}")
    assert ET.fromstring(xml.content).tag == "RestcommResponse"
    as_json = api.get(
        f"{server.restcomm_api}/Clients/{body['sid']}", headers={"Accept": "application/json"}
    )
    assert as_json.json()["sid"] == body["sid"]


def test_paging_newest_first_with_next_page_uri(server: ServerProcess, api: httpx.Client) -> None:
    name = unique("pager")
    sids = [
        create(api, server, Login=unique(), Password="x", FriendlyName=name).json()["sid"]
        for _ in range(5)
    ]
    page0 = api.get(f"{server.api}/Clients.json", params={"FriendlyName": name, "PageSize": 2})
    body = page0.json()
    assert [c["sid"] for c in body["clients"]] == sids[::-1][:2]
    assert set(body) - {
        "page",
        "page_size",
        "start",
        "end",
        "uri",
        "first_page_uri",
        "previous_page_uri",
        "next_page_uri",
    } == {"clients"}
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 2, 0, 1)
    assert body["previous_page_uri"] is None
    seen = [c["sid"] for c in body["clients"]]
    next_uri = body["next_page_uri"]
    while next_uri:
        assert f"FriendlyName={name}" in next_uri and "PageSize=2" in next_uri
        body = api.get(server.base_url + next_uri).json()
        seen += [c["sid"] for c in body["clients"]]
        next_uri = body["next_page_uri"]
    assert seen == sids[::-1]
    past = api.get(
        f"{server.api}/Clients.json", params={"FriendlyName": name, "PageSize": 2, "Page": 9}
    )
    assert past.status_code == 200 and past.json()["clients"] == []


def test_page_size_limits(server: ServerProcess, api: httpx.Client) -> None:
    for bad in ("0", "1001", "x"):
        response = api.get(f"{server.api}/Clients.json", params={"PageSize": bad})
        assert response.status_code == 400 and response.json()["code"] == 20007
