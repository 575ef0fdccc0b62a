"""Fixtures of the harness self-tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.baresip import BaresipFactory

REQUIRED = ("baresip", "sipsak", "sox")


@pytest.fixture(scope="session")
def peer_binaries() -> None:
    """Fail loudly (not skip) when the peers are missing: see shared/recipes/sip-peers.md."""
    missing = [name for name in REQUIRED if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"missing {missing}: apt-get install -y --no-install-recommends "
            "baresip-core sipsak sox (or deselect with -m 'not interop')"
        )


@pytest.fixture
def phones(tmp_path: Path, peer_binaries: None) -> Iterator[BaresipFactory]:
    """Start phones with ``phones("alice", ...)``; every one is stopped (by PID) at the end."""
    with BaresipFactory(tmp_path) as factory:
        yield factory
    for phone in factory:
        assert phone.returncode is not None, f"{phone} still running"
