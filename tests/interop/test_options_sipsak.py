"""sipsak's OPTIONS probe is answered (SIP-3)."""

from __future__ import annotations

import pytest

from tests.support import sipsak
from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop


def test_sipsak_options_gets_200_with_allow_and_accept(sip_server: ServerProcess) -> None:
    result = sipsak.options("127.0.0.1", sip_server.sip_port, timeout=5, verbosity=3)
    assert result.returncode == 0, result.output
    assert "SIP/2.0 200" in result.output
    assert "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO" in result.output
    assert "Accept: application/sdp" in result.output
