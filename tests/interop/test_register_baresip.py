"""baresip registers as a Client with its own digest implementation (issue 4, REG-1..REG-5)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.interop.conftest import Api, wait_for
from tests.support.baresip import BaresipFactory
from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop


def registrar_of(server: ServerProcess) -> str:
    return f"127.0.0.1:{server.sip_port}"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_registers_and_shows_online_then_offline_after_quit(
    sip_server: ServerProcess, rest: Api, phones: BaresipFactory, transport: str
) -> None:
    alice = rest.create_client()
    phone = phones(
        alice.login,
        password=alice.password,
        registrar=registrar_of(sip_server),
        transport=transport,
    )
    phone.wait_registered(timeout=10)
    wait_for(lambda: rest.client(alice.sid)["online"] is True)
    (registration,) = rest.registrations(alice.sid)
    assert registration["transport"] == transport
    assert str(registration["source"]).startswith("127.0.0.1:")
    assert 3500 <= int(str(registration["expires"])) <= 3600
    assert "baresip" in str(registration["user_agent"]).lower()
    lines = phone.sip_start_lines("received")
    assert any(line.startswith("SIP/2.0 401") for line in lines), lines
    assert any(line.startswith("SIP/2.0 200") for line in lines), lines
    phone.stop()  # baresip un-REGISTERs (Expires: 0) on quit
    wait_for(lambda: rest.client(alice.sid)["online"] is False)


def test_wrong_password_is_refused_with_403(
    sip_server: ServerProcess, rest: Api, phones: BaresipFactory
) -> None:
    alice = rest.create_client()
    phone = phones(alice.login, password="not-it", registrar=registrar_of(sip_server))
    wait_for(lambda: any(s.startswith("SIP/2.0 403") for s in phone.sip_start_lines("received")))
    assert not phone.is_registered()
    assert rest.client(alice.sid)["online"] is False


def test_dialtone_clients_prints_the_registration(
    sip_server: ServerProcess, rest: Api, phones: BaresipFactory
) -> None:
    alice = rest.create_client()
    phone = phones(alice.login, password=alice.password, registrar=registrar_of(sip_server))
    phone.wait_registered()

    # Bindings reach the database within about a second (batched writes).
    def listed() -> bool:
        out = subprocess.run(
            [sys.executable, "-m", "dialtone", "clients", "--data-dir", str(sip_server.data_dir)],
            capture_output=True,
            text=True,
            env=sip_server.env(),
            check=True,
        ).stdout
        row = next((line for line in out.splitlines() if alice.login in line), "")
        return "yes" in row and "udp" in row

    wait_for(listed, timeout=10)


@pytest.mark.slow
def test_baresip_stays_registered_across_a_refresh(
    sip_server: ServerProcess, rest: Api, phones: BaresipFactory
) -> None:
    alice = rest.create_client()
    phone = phones(
        alice.login, password=alice.password, registrar=registrar_of(sip_server), regint=60
    )
    phone.wait_registered()

    def refreshed() -> bool:
        oks = [s for s in phone.sip_start_lines("received") if s.startswith("SIP/2.0 200")]
        return len(oks) >= 2

    wait_for(refreshed, timeout=70, interval=0.5)
    assert phone.is_registered()
    assert rest.client(alice.sid)["online"] is True
