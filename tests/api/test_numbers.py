"""IncomingPhoneNumbers over the real server (API-40, API-41)."""

from __future__ import annotations

import secrets

import httpx

from tests.support.server import ServerProcess


def number() -> str:
    return "+1555" + str(secrets.randbelow(10**7)).zfill(7)


def create(api: httpx.Client, server: ServerProcess, **fields: str) -> httpx.Response:
    return api.post(f"{server.api}/IncomingPhoneNumbers.json", data=fields)


def test_create_fetch_list_update_delete(server: ServerProcess, api: httpx.Client) -> None:
    phone = number()
    response = create(api, server, PhoneNumber=phone, VoiceUrl="http://app.test/voice")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sid"].startswith("PN") and len(body["sid"]) == 34
    assert body["phone_number"] == phone and body["friendly_name"] == phone
    assert body["capabilities"] == {"voice": True, "sms": False, "mms": False, "fax": False}
    assert body["voice_method"] == "POST" and body["status_callback_method"] == "POST"
    url = f"{server.api}/IncomingPhoneNumbers/{body['sid']}.json"
    assert api.get(url).json()["voice_url"] == "http://app.test/voice"
    listed = api.get(f"{server.api}/IncomingPhoneNumbers.json", params={"PhoneNumber": phone})
    assert [n["sid"] for n in listed.json()["incoming_phone_numbers"]] == [body["sid"]]
    without_plus = api.get(
        f"{server.api}/IncomingPhoneNumbers.json", params={"PhoneNumber": phone[1:]}
    )
    assert [n["sid"] for n in without_plus.json()["incoming_phone_numbers"]] == [body["sid"]]
    updated = api.post(
        url, data={"StatusCallback": "http://app.test/ended", "StatusCallbackMethod": "GET"}
    )
    assert updated.json()["status_callback"] == "http://app.test/ended"
    assert updated.json()["status_callback_method"] == "GET"
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_separators_are_removed(server: ServerProcess, api: httpx.Client) -> None:
    digits = str(secrets.randbelow(10**7)).zfill(7)
    response = create(api, server, PhoneNumber=f"+1 (555) {digits[:3]}-{digits[3:]}")
    assert response.status_code == 201
    assert response.json()["phone_number"] == f"+1555{digits}"


def test_errors(server: ServerProcess, api: httpx.Client) -> None:
    taken = number()
    assert create(api, server, PhoneNumber=taken).status_code == 201
    api.post(f"{server.api}/Clients.json", data={"Login": "1" + taken[2:], "Password": "x"})
    cases = [
        ({}, 21421),
        ({"PhoneNumber": "abc"}, 21421),
        ({"PhoneNumber": "+1"}, 21421),
        ({"PhoneNumber": "1" * 21}, 21421),
        ({"PhoneNumber": taken}, 21422),
        ({"PhoneNumber": taken.lstrip("+")}, 21422),
        ({"PhoneNumber": "+" + "1" + taken[2:]}, 21422),
        ({"PhoneNumber": number(), "VoiceUrl": "not a url"}, 21402),
        ({"PhoneNumber": number(), "VoiceMethod": "DELETE"}, 21403),
        ({"PhoneNumber": number(), "StatusCallbackMethod": "x"}, 21403),
        ({"PhoneNumber": number(), "VoiceFallbackUrl": "http://app.test/f"}, 21405),
    ]
    for fields, code in cases:
        response = create(api, server, **fields)
        assert response.status_code == 400, (fields, response.text)
        assert response.json()["code"] == code, (fields, response.json())


def test_client_login_equal_to_a_number_is_refused(
    server: ServerProcess, api: httpx.Client
) -> None:
    phone = number()
    assert create(api, server, PhoneNumber=phone).status_code == 201
    response = api.post(f"{server.api}/Clients.json", data={"Login": phone[1:], "Password": "x"})
    assert response.status_code == 400 and "PhoneNumber" in response.json()["message"]
