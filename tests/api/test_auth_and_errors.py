"""Authentication, account checks and the shape of errors (API-4, API-5, API-10)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

from tests.support.server import ServerProcess


def test_missing_or_wrong_credentials_are_401_with_www_authenticate(
    server: ServerProcess,
) -> None:
    for auth in (None, (server.account_sid, "0" * 32), ("AC" + "0" * 32, server.auth_token)):
        response = httpx.get(f"{server.api}/Clients.json", auth=auth)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="dialtone"'
        assert response.json()["code"] == 20003


def test_garbage_authorization_header_is_401(server: ServerProcess) -> None:
    for header in ("Basic !!!", "Bearer x", "Basic " + "YWJj"):
        response = httpx.get(f"{server.api}/Clients.json", headers={"Authorization": header})
        assert response.status_code == 401


def test_another_accounts_sid_is_403(server: ServerProcess, api: httpx.Client) -> None:
    other = "AC" + "1" * 32
    response = api.get(f"{server.base_url}/2010-04-01/Accounts/{other}/Clients.json")
    assert response.status_code == 403
    assert response.json()["code"] == 20403


def test_unknown_resource_404_and_wrong_method_405(
    server: ServerProcess, api: httpx.Client
) -> None:
    missing = api.get(f"{server.api}/Clients/CL{'0' * 32}.json")
    assert missing.status_code == 404 and missing.json()["code"] == 20404
    unknown_path = api.get(f"{server.api}/Nothing.json")
    assert unknown_path.status_code == 404 and unknown_path.json()["code"] == 20404
    wrong = api.patch(f"{server.api}/Clients.json")
    assert wrong.status_code == 405 and wrong.json()["code"] == 20004
    wrong_xml = api.delete(f"{server.api}/Clients")
    assert wrong_xml.status_code == 405
    exc = ET.fromstring(wrong_xml.content).find("RestException")
    assert exc is not None and exc.findtext("Code") == "20004" and exc.findtext("Status") == "405"


def test_more_info_pages_exist(server: ServerProcess, api: httpx.Client) -> None:
    error = api.get(f"{server.api}/Clients/CL{'0' * 32}.json").json()
    page = httpx.get(error["more_info"])
    assert page.status_code == 200 and "20404" in page.text


def test_fetch_own_account_json_and_xml(server: ServerProcess, api: httpx.Client) -> None:
    body = api.get(f"{server.api}.json").json()
    assert body["sid"] == server.account_sid
    assert body["auth_token"] == server.auth_token
    assert (body["status"], body["type"], body["owner_account_sid"]) == (
        "active",
        "Full",
        server.account_sid,
    )
    assert body["subresource_uris"]["clients"].endswith("/Clients.json")
    assert set(body["subresource_uris"]) == {
        "calls",
        "clients",
        "incoming_phone_numbers",
        "notifications",
    }
    xml = ET.fromstring(api.get(server.api).content)
    assert xml.findtext("Account/Sid") == server.account_sid
    assert xml.findtext("Account/SubresourceUris/IncomingPhoneNumbers", "").endswith(
        "/IncomingPhoneNumbers"
    )
    listing = api.get(f"{server.base_url}/2010-04-01/Accounts.json").json()
    assert [a["sid"] for a in listing["accounts"]] == [server.account_sid]


def test_health_needs_no_auth_and_stats_does(server: ServerProcess, api: httpx.Client) -> None:
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.base_url}/dialtone/stats.json").status_code == 401
    assert api.get(f"{server.base_url}/dialtone/stats.json").status_code == 200


def test_openapi_page_is_served(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base_url}/docs").status_code == 200
    schema = httpx.get(f"{server.base_url}/openapi.json").json()
    assert "/2010-04-01/Accounts/{account_sid}/Clients.json" in schema["paths"]


def test_bad_form_bytes_are_a_clear_400(server: ServerProcess, api: httpx.Client) -> None:
    response = api.post(
        f"{server.api}/Clients.json",
        content=b"Login=\xff\xfe&Password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400 and response.json()["code"] == 20422
    assert httpx.get(f"{server.base_url}/health").status_code == 200
