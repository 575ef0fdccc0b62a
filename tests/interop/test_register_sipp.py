"""SIPp against the registrar over UDP and TCP (issue 4; REG-1..REG-5, Ex. S-1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.conftest import Api
from tests.support.ports import free_udp_tcp_port
from tests.support.server import ServerProcess
from tests.support.sipp import run_scenario

pytestmark = pytest.mark.interop
TRANSPORTS = ["udp", "tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_register_ok(
    sip_server: ServerProcess, rest: Api, tmp_path: Path, transport: str, peer_binaries: None
) -> None:
    alice = rest.create_client()
    result = run_scenario(
        "register_ok",
        sip_server.sip_port,
        tmp_path,
        transport=transport,
        login=alice.login,
        password=alice.password,
    )
    assert result.returncode == 0, result.describe()
    assert "algorithm=MD5" in result.messages and "SHA-256" not in result.messages
    (registration,) = rest.registrations(alice.sid)
    assert registration["transport"] == transport


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_password_unknown_user_and_foreign_username_get_403(
    sip_server: ServerProcess, rest: Api, tmp_path: Path, transport: str, peer_binaries: None
) -> None:
    alice, bob = rest.create_client(), rest.create_client(password="bobs")
    cases = [
        ("register_wrong_password", alice.login, "not-the-password", None),
        ("register_unknown_user", "nobody" + alice.login, "x", None),
        ("register_wrong_password", alice.login, bob.password, bob.login),
    ]
    for scenario, login, password, auth_user in cases:
        result = run_scenario(
            scenario,
            sip_server.sip_port,
            tmp_path / f"{scenario}-{login}-{auth_user}",
            transport=transport,
            login=login,
            password=password,
            auth_user=auth_user,
        )
        assert result.returncode == 0, result.describe()
        assert "SIP/2.0 403 Forbidden" in result.messages
    assert rest.client(alice.sid)["online"] is False


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unregister(
    sip_server: ServerProcess, rest: Api, tmp_path: Path, transport: str, peer_binaries: None
) -> None:
    alice = rest.create_client()
    result = run_scenario(
        "unregister",
        sip_server.sip_port,
        tmp_path,
        transport=transport,
        login=alice.login,
        password=alice.password,
    )
    assert result.returncode == 0, result.describe()
    assert rest.client(alice.sid)["online"] is False


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_expiry_too_short_gets_423(
    sip_server: ServerProcess, rest: Api, tmp_path: Path, transport: str, peer_binaries: None
) -> None:
    alice = rest.create_client()
    result = run_scenario(
        "register_too_brief",
        sip_server.sip_port,
        tmp_path,
        transport=transport,
        login=alice.login,
        password=alice.password,
    )
    assert result.returncode == 0, result.describe()
    assert "Min-Expires: 60" in result.messages


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_contacts_for_one_client(
    sip_server: ServerProcess, rest: Api, tmp_path: Path, transport: str, peer_binaries: None
) -> None:
    alice = rest.create_client()
    result = run_scenario(
        "register_two_contacts",
        sip_server.sip_port,
        tmp_path,
        transport=transport,
        login=alice.login,
        password=alice.password,
        keys={"port2": str(free_udp_tcp_port())},
    )
    assert result.returncode == 0, result.describe()
    assert len(rest.registrations(alice.sid)) == 2


def test_two_devices_udp_and_tcp_are_two_bindings(
    sip_server: ServerProcess, rest: Api, tmp_path: Path, peer_binaries: None
) -> None:
    alice = rest.create_client()
    for transport in TRANSPORTS:
        result = run_scenario(
            "register_ok",
            sip_server.sip_port,
            tmp_path / transport,
            transport=transport,
            login=alice.login,
            password=alice.password,
        )
        assert result.returncode == 0, result.describe()
    assert sorted(str(r["transport"]) for r in rest.registrations(alice.sid)) == ["tcp", "udp"]
