"""The RTP port pool (SIP-13), the RTP socket wrapper and symmetric-RTP latching."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dialtone.errors import DialtoneError
from dialtone.media.ports import LATCH_PACKETS, NoMediaPorts, PortPool, RemoteAddress
from dialtone.media.session import MediaError

HOST = "127.0.0.1"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_range(pairs: int) -> tuple[int, int]:
    """A range of ``pairs`` even/odd port pairs in 40000-40999 whose even ports are free."""
    for first in range(40000, 41000 - 2 * pairs, 2 * pairs):
        if all(_bindable(first + 2 * k) for k in range(pairs)):
            return first, first + 2 * pairs - 1
    pytest.skip("no free port range in 40000-40999")


def test_allocates_even_bound_ports_until_exhausted() -> None:
    first, last = free_range(3)
    pool = PortPool(first, last)
    assert pool.capacity == 3
    allocated = [pool.allocate(HOST) for _ in range(3)]
    try:
        ports = [port for _, port in allocated]
        assert sorted(ports) == [first, first + 2, first + 4]
        assert all(sock.getsockname() == (HOST, port) for sock, port in allocated)
        assert pool.in_use() == 3 and ports[0] in pool
        with pytest.raises(NoMediaPorts, match=f"{first}-{last}"):
            pool.allocate(HOST)
        assert pool.exhausted == 1 and pool.allocated == 3
    finally:
        for sock, port in allocated:
            sock.close()
            pool.release(port)
    assert pool.in_use() == 0


def test_release_twice_is_harmless_and_the_port_is_reused() -> None:
    first, last = free_range(1)
    pool = PortPool(first, last)
    sock, port = pool.allocate(HOST)
    sock.close()
    pool.release(port)
    pool.release(port)
    pool.release(12345)  # never allocated: ignored
    assert pool.in_use() == 0
    sock, again = pool.allocate(HOST)
    sock.close()
    pool.release(again)
    assert again == port


def test_a_released_port_is_the_last_to_come_back() -> None:
    first, last = free_range(2)
    pool = PortPool(first, last)
    got = []
    for _ in range(3):
        sock, port = pool.allocate(HOST)
        sock.close()
        pool.release(port)
        got.append(port)
    assert got == [first, first + 2, first]


def test_ports_bound_by_someone_else_are_skipped() -> None:
    first, last = free_range(2)
    pool = PortPool(first, last)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as foreign:
        foreign.bind((HOST, first))
        sock, port = pool.allocate(HOST)
        sock.close()
        assert port == first + 2
        with pytest.raises(NoMediaPorts):
            pool.allocate(HOST)  # first + 2 is ours, first is foreign
    pool.release(port)


def test_range_rules() -> None:
    assert PortPool(40001, 40006).capacity == 2  # 40002, 40004; 40006 has no 40007
    assert PortPool(40000, 40001).capacity == 1
    assert PortPool.parse("40000-40009").capacity == 5
    for first, last in [(0, 10), (20, 10), (10, 70000), (40000, 40000), (40001, 40002)]:
        with pytest.raises(ValueError, match="RTP port range"):
            PortPool(first, last)
    for text in ["40000", "a-b", "40000-", "-1-5"]:
        with pytest.raises(ValueError, match="RTP port range"):
            PortPool.parse(text)


def test_other_bind_errors_are_not_exhaustion() -> None:
    pool = PortPool(*free_range(1))
    with pytest.raises(OSError, match="assign") as info:
        pool.allocate("192.0.2.1")  # TEST-NET-1: not an address of this machine
    assert not isinstance(info.value, NoMediaPorts)
    assert pool.in_use() == 0


def test_no_media_ports_is_a_media_error() -> None:
    assert issubclass(NoMediaPorts, MediaError)
    assert issubclass(NoMediaPorts, DialtoneError)


async def test_rtp_socket_reads_sends_and_releases_once() -> None:
    pool = PortPool(*free_range(2))
    a, b = pool.open(HOST), pool.open(HOST)
    got: list[tuple[bytes, object]] = []
    arrived = asyncio.Event()

    def on_datagram(data: bytes, addr: object) -> None:
        got.append((data, addr))
        arrived.set()

    b.start(on_datagram)
    a.send(b"hello", b.address)
    async with asyncio.timeout(1):
        await arrived.wait()
    assert got == [(b"hello", a.address)]
    a.close()
    b.close()
    b.close()
    a.send(b"closed", b.address)  # on a closed socket: counted, not raised
    assert a.send_errors == 1
    assert pool.in_use() == 0


def test_latch_to_the_sdp_address_at_once() -> None:
    remote = RemoteAddress()
    assert not remote.accept(("10.0.0.1", 4000)) and remote.dest is None  # not configured
    remote.configure("10.0.0.1", 4000)
    assert remote.dest == ("10.0.0.1", 4000)
    assert remote.accept(("10.0.0.1", 4000))
    assert remote.latched == ("10.0.0.1", 4000)
    assert not remote.accept(("10.0.0.9", 4000))
    assert not remote.accept(("10.0.0.1", 4002))


def test_latch_to_another_source_after_consecutive_packets() -> None:
    remote = RemoteAddress()
    remote.configure("192.168.1.20", 4000)  # private address in SDP, behind NAT
    nat = ("203.0.113.7", 31000)
    for _ in range(LATCH_PACKETS - 1):
        assert not remote.accept(nat)
    assert not remote.accept(("198.51.100.1", 5000))  # another source resets the count
    assert [remote.accept(nat) for _ in range(LATCH_PACKETS)] == [False] * 2 + [True]
    assert remote.dest == nat and remote.latched == nat
    assert not remote.accept(("192.168.1.20", 4000))  # latched: the SDP address too
    remote.configure("192.168.1.20", 4000)  # same address again (re-INVITE): latch kept
    assert remote.dest == nat
    remote.configure("192.168.1.21", 4000)  # a new address: latch reset
    assert remote.dest == ("192.168.1.21", 4000) and remote.latched is None


def test_without_symmetric_rtp_the_sdp_host_is_trusted() -> None:
    remote = RemoteAddress(symmetric=False)
    remote.configure("10.0.0.1", 4000)
    assert remote.accept(("10.0.0.1", 4002))  # any port of the SDP host
    assert not remote.accept(("10.0.0.2", 4000))
    assert remote.dest == ("10.0.0.1", 4000) and remote.latched is None


def test_hold_and_names() -> None:
    remote = RemoteAddress()
    remote.configure("0.0.0.0", 4000)
    assert remote.dest is None
    remote.configure("10.0.0.1", 0)
    assert remote.dest is None
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        remote.configure("pbx.example.com", 4000)
