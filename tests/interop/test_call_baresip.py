"""baresip calls a number: Gather by RFC 4733, the action plays a WAV, the phone hears it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialtone.testing.webhook_app import Route, WebhookApp, serve_in_thread
from tests.interop.conftest import Api, wait_for
from tests.interop.test_call_sipp import create_number
from tests.support.baresip import BaresipFactory, audio_rms
from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop


@pytest.fixture
def webhook(sip_server: ServerProcess) -> Iterator[tuple[WebhookApp, str]]:
    app = WebhookApp(auth_token=sip_server.auth_token)
    with serve_in_thread(app) as running:
        yield app, running.base_url


def speech_wav(tmp_path: Path, text: str) -> bytes:
    out = tmp_path / "prompt.wav"
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True, timeout=30)
    return out.read_bytes()


def test_gather_digits_then_play_reaches_the_phone(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    phones: BaresipFactory,
    tmp_path: Path,
) -> None:
    app, base = webhook
    app.route(
        "/voice",
        Route(
            body='<Response><Gather numDigits="3" action="/digits">'
            "<Say>Please enter three digits.</Say></Gather>"
            "<Say>We did not get your digits.</Say></Response>"
        ),
    )
    app.route(
        "/digits",
        Route(body=f"<Response><Play>{base}/thanks.wav</Play><Hangup/></Response>"),
    )
    app.route(
        "/thanks.wav",
        Route(body=speech_wav(tmp_path, "Thank you, goodbye."), content_type="audio/wav"),
    )
    number = create_number(rest, f"{base}/voice")
    phone = phones("caller")
    phone.dial(f"sip:{number}@127.0.0.1:{sip_server.sip_port}")
    phone.wait_event("CALL_ESTABLISHED", timeout=15)
    phone.send_dtmf("123")
    wait_for(lambda: len(app.requests_to("/digits")) == 1, timeout=15)
    digits = app.requests_to("/digits")[0]
    assert digits.params["Digits"] == "123"
    assert digits.params["CallStatus"] == "in-progress"
    assert digits.signature_valid is True
    phone.wait_event("CALL_CLOSED", timeout=20)  # dialtone hangs up after the Play
    assert any(line.startswith("BYE ") for line in phone.sip_start_lines("received"))
    dump = phone.wait_audio_dump("dec", timeout=10)
    assert audio_rms(dump) > 0.01, "the phone heard only silence"
    assert len(app.requests_to("/thanks.wav")) == 1
    wait_for(lambda: rest.stats()["calls"] == 0 and rest.stats()["media_ports"] == 0)


def test_a_registered_client_is_challenged_407_and_calls_as_client(
    sip_server: ServerProcess,
    rest: Api,
    webhook: tuple[WebhookApp, str],
    phones: BaresipFactory,
) -> None:
    app, base = webhook
    app.route("/hello", Route(body="<Response><Say>Hello client.</Say></Response>"))
    number = create_number(rest, f"{base}/hello")
    alice = rest.create_client()
    phone = phones(
        alice.login, password=alice.password, registrar=f"127.0.0.1:{sip_server.sip_port}"
    )
    phone.wait_registered()
    phone.dial(f"sip:{number}@127.0.0.1:{sip_server.sip_port}")
    phone.wait_event("CALL_CLOSED", timeout=20)  # end of document → BYE from dialtone
    received = phone.sip_start_lines("received")
    assert any(line.startswith("SIP/2.0 407") for line in received), received
    (hello,) = app.requests_to("/hello")
    assert hello.params["From"] == f"client:{alice.login}"
    assert hello.params["Caller"] == f"client:{alice.login}"
    assert hello.params["To"] == number
