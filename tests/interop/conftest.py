"""Fixtures of the interop tests: a real dialtone server and real SIP peers on 127.0.0.1."""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.baresip import BaresipFactory
from tests.support.server import ServerProcess

REQUIRED = ("baresip", "sipsak", "sipp", "sox")


@pytest.fixture(scope="session")
def peer_binaries() -> None:
    """Fail loudly (not skip) when the peers are missing: the test command installs them."""
    missing = [name for name in REQUIRED if shutil.which(name) is None]
    if missing:
        pytest.fail(f"missing {missing}: run `bash scripts/test.sh`, which installs them")


@dataclass
class ClientAccount:
    """A Client created over the REST API for a test."""

    sid: str
    login: str
    password: str


class Api:
    """A small REST helper bound to one server."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = server.client()

    def create_client(self, login: str | None = None, password: str = "secret") -> ClientAccount:
        login = login or "u" + secrets.token_hex(4)
        response = self.http.post(
            f"{self.server.api}/Clients.json", data={"Login": login, "Password": password}
        )
        assert response.status_code == 201, response.text
        return ClientAccount(response.json()["sid"], login, password)

    def client(self, sid: str) -> dict[str, object]:
        response = self.http.get(f"{self.server.api}/Clients/{sid}.json")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def registrations(self, sid: str) -> list[dict[str, object]]:
        regs = self.client(sid)["registrations"]
        assert isinstance(regs, list)
        return regs

    def stats(self) -> dict[str, int]:
        body: dict[str, int] = self.http.get(f"{self.server.base_url}/dialtone/stats.json").json()
        return body


@pytest.fixture(scope="module")
def sip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A dialtone server for the interop tests of one module."""
    proc = ServerProcess(data_dir=tmp_path_factory.mktemp("dialtone-interop")).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@pytest.fixture
def rest(sip_server: ServerProcess) -> Iterator[Api]:
    """REST helper for the module's server."""
    api = Api(sip_server)
    yield api
    api.http.close()


@pytest.fixture
def phones(tmp_path: Path, peer_binaries: None) -> Iterator[BaresipFactory]:
    """Start baresip phones; every one is stopped (by PID) at the end."""
    with BaresipFactory(tmp_path) as factory:
        yield factory


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.1) -> None:
    """Poll ``predicate()`` until true (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
