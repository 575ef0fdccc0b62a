"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real dialtone server (subprocess) shared by the tests of one module."""
    proc = ServerProcess(data_dir=tmp_path_factory.mktemp("dialtone")).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real dialtone server of this test alone."""
    proc = ServerProcess(data_dir=tmp_path / "data").start()
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """An authenticated HTTP client for the module's server."""
    with server.client() as client:
        yield client
