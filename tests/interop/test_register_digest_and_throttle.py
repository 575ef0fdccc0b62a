"""SHA-256 digest when enabled (REG-1) and failure throttling per source address."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.conftest import Api
from tests.support import sipsak
from tests.support.server import ServerProcess
from tests.support.sipclient import UdpRegistrar

pytestmark = pytest.mark.interop


def test_sha256_is_offered_first_when_enabled_and_accepted(tmp_path: Path) -> None:
    server = ServerProcess(
        data_dir=tmp_path / "data", extra_args=["--digest-algorithms", "sha-256,md5"]
    ).start()
    try:
        rest = Api(server)
        alice = rest.create_client()
        ua = UdpRegistrar(("127.0.0.1", server.sip_port), alice.login, alice.password)
        challenge = ua.request()
        values = challenge.headers.get_all("WWW-Authenticate")
        assert ["algorithm=SHA-256" in values[0], "algorithm=MD5" in values[1]] == [True, True]
        ok = ua.register()
        assert ok.status == 200
        assert len(rest.registrations(alice.sid)) == 1
        ua.close()
        rest.http.close()
    finally:
        server.stop()


def test_repeated_failures_block_one_source_not_others(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        rest = Api(server)
        alice = rest.create_client()
        noisy = UdpRegistrar(
            ("127.0.0.1", server.sip_port), alice.login, alice.password, source="127.0.0.2"
        )
        statuses = [noisy.register(password="wrong").status for _ in range(21)]
        assert set(statuses) == {403}
        # Now even the right password is refused from 127.0.0.2 ...
        assert noisy.register().status == 403
        # ... while 127.0.0.1 registers normally.
        good = sipsak.register("127.0.0.1", server.sip_port, alice.login, alice.password)
        assert good.returncode == 0, good.output
        noisy.close()
        rest.http.close()
        assert "hunter" not in server.log() and alice.password not in server.log()
    finally:
        server.stop()
