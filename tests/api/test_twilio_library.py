"""The official twilio helper library, pointed at dialtone, works unmodified (API-8)."""

from __future__ import annotations

import secrets

from twilio.rest import Client as TwilioClient

from tests.support.server import ServerProcess


def twilio_client(server: ServerProcess) -> TwilioClient:
    client = TwilioClient(server.account_sid, server.auth_token)
    client.api.base_url = server.base_url
    return client


def test_fetch_account(server: ServerProcess) -> None:
    account = twilio_client(server).api.v2010.accounts(server.account_sid).fetch()
    assert account.sid == server.account_sid
    assert account.status == "active"
    assert account.date_created is not None


def test_create_and_list_incoming_phone_numbers(server: ServerProcess) -> None:
    client = twilio_client(server)
    phone = "+1555" + str(secrets.randbelow(10**7)).zfill(7)
    created = client.incoming_phone_numbers.create(
        phone_number=phone, voice_url="http://app.test/voice", voice_method="GET"
    )
    assert created.sid.startswith("PN")
    assert created.phone_number == phone
    assert created.voice_method == "GET"
    assert created.date_created is not None and created.date_created.tzinfo is not None
    listed = client.incoming_phone_numbers.list(phone_number=phone)
    assert [n.sid for n in listed] == [created.sid]
    fetched = client.incoming_phone_numbers(created.sid).fetch()
    assert fetched.voice_url == "http://app.test/voice"


def test_paging_through_the_library(server: ServerProcess) -> None:
    client = twilio_client(server)
    name = "lib" + secrets.token_hex(3)
    sids = {
        client.incoming_phone_numbers.create(
            phone_number="+1556" + str(secrets.randbelow(10**7)).zfill(7), friendly_name=name
        ).sid
        for _ in range(3)
    }
    listed = client.incoming_phone_numbers.list(friendly_name=name, page_size=1)
    assert {n.sid for n in listed} == sids
