"""Bindings are stored and survive a restart (REG-5); Client deletion drops them (REG-7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.conftest import Api, wait_for
from tests.support import sipsak
from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop


def test_bindings_survive_a_restart(tmp_path: Path, peer_binaries: None) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        rest = Api(server)
        alice = rest.create_client()
        contact = "sip:alice-desk@127.0.0.1:5999"
        result = sipsak.register(
            "127.0.0.1",
            server.sip_port,
            alice.login,
            alice.password,
            expires=600,
            contact=contact,
        )
        assert result.returncode == 0, result.output
        assert [r["contact"] for r in rest.registrations(alice.sid)] == [contact]
        rest.http.close()
    finally:
        assert server.stop() == 0
    again = ServerProcess(
        data_dir=server.data_dir, account_sid=server.account_sid, auth_token=server.auth_token
    ).start()
    try:
        rest = Api(again)
        (registration,) = rest.registrations(alice.sid)
        assert registration["contact"] == contact
        assert 590 <= int(str(registration["expires"])) <= 600
        # Deleting the Client removes its bindings (REG-7).
        assert rest.http.delete(f"{again.api}/Clients/{alice.sid}.json").status_code == 204
        rest.http.close()
    finally:
        assert again.stop() == 0
    third = ServerProcess(
        data_dir=server.data_dir, account_sid=server.account_sid, auth_token=server.auth_token
    ).start()
    try:
        assert "bindings=0" in third.log() or '"bindings": 0' in third.log()
    finally:
        third.stop()


def test_sipsak_wrong_password_and_unknown_user_get_the_same_403(
    sip_server: ServerProcess, rest: Api, peer_binaries: None
) -> None:
    alice = rest.create_client()
    wrong = sipsak.register("127.0.0.1", sip_server.sip_port, alice.login, "nope", expires=120)
    unknown = sipsak.register("127.0.0.1", sip_server.sip_port, "nobody", "nope", expires=120)
    assert wrong.returncode != 0 and unknown.returncode != 0
    assert "SIP/2.0 403 Forbidden" in wrong.output
    assert "SIP/2.0 403 Forbidden" in unknown.output
    wait_for(lambda: rest.client(alice.sid)["online"] is False)
