"""RTP packets (RFC 3550 §5.1), RTCP demultiplexing, the sender and receive statistics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialtone.media.rtp import (
    RtpError,
    RtpExtension,
    RtpPacket,
    RtpReceiver,
    RtpSender,
    is_rtcp,
    parse_rtp,
)

# V=2, PT 0, seq 1, ts 160, SSRC 0xDEADBEEF, then a payload.
SIMPLE = bytes.fromhex("80000001000000a0deadbeef") + b"\xff" * 160


def test_parse_simple() -> None:
    pkt = parse_rtp(SIMPLE)
    assert pkt == RtpPacket(0, 1, 160, 0xDEADBEEF, b"\xff" * 160)
    assert not pkt.marker and pkt.csrcs == () and pkt.extension is None and pkt.padding == 0
    assert pkt.to_bytes() == SIMPLE


def test_marker_and_payload_type() -> None:
    pkt = parse_rtp(bytes.fromhex("80e5ffff ffffffff 00000001 0a0a0320"))
    assert (pkt.marker, pkt.payload_type, pkt.sequence, pkt.timestamp) == (
        True,
        101,
        65535,
        0xFFFFFFFF,
    )
    assert pkt.payload == bytes.fromhex("0a0a0320")


def test_csrcs_extension_and_padding_are_skipped_correctly() -> None:
    data = (
        bytes.fromhex("b2080007 00001f40 11223344")  # V=2 P=1 X=1 CC=2, PT 8
        + bytes.fromhex("00000001 00000002")  # two CSRCs
        + bytes.fromhex("bede0002 10ff0000 20aabb00")  # RFC 8285 one-byte ext, 2 words
        + b"\xd5" * 5
        + b"\x00\x00\x03"  # 3 padding octets, the last one counting them
    )
    pkt = parse_rtp(data)
    assert pkt.csrcs == (1, 2)
    assert pkt.extension == RtpExtension(0xBEDE, bytes.fromhex("10ff000020aabb00"))
    assert pkt.payload == b"\xd5" * 5
    assert pkt.padding == 3
    assert pkt.to_bytes() == data


def test_extension_without_data_and_padding_only() -> None:
    data = bytes.fromhex("b0000001 00000000 00000001 12340000") + b"\x04" * 4
    pkt = parse_rtp(data)
    assert pkt.extension == RtpExtension(0x1234, b"")
    assert pkt.payload == b"" and pkt.padding == 4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (SIMPLE[:11], "too short"),
        (b"\x40" + SIMPLE[1:], "version 1"),
        (b"\x00" + SIMPLE[1:], "version 0"),
        (b"\xc0" + SIMPLE[1:], "version 3"),
        (bytes.fromhex("8f000001000000a0deadbeef") + b"\x00" * 56, "15 CSRCs"),
        (bytes.fromhex("90000001000000a0deadbeef") + b"\xbe", "header extension"),
        (bytes.fromhex("90000001000000a0deadbeef bede0003 00000000"), "runs past"),
        (bytes.fromhex("a0000001000000a0deadbeef 000000"), "padding count 0"),
        (bytes.fromhex("a0000001000000a0deadbeef 000005"), "padding count 5"),
        (bytes.fromhex("a0000001000000a0deadbeef"), "padding count 239"),
    ],
)
def test_garbage_is_a_clear_rtp_error(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_rtp(data)


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(128, 0, 0, 0, b""),
        RtpPacket(0, 65536, 0, 0, b""),
        RtpPacket(0, 0, 1 << 32, 0, b""),
        RtpPacket(0, 0, 0, -1, b""),
        RtpPacket(0, 0, 0, 0, b"", csrcs=tuple(range(16))),
        RtpPacket(0, 0, 0, 0, b"", extension=RtpExtension(1, b"abc")),
        RtpPacket(0, 0, 0, 0, b"", padding=256),
    ],
)
def test_to_bytes_rejects_out_of_range_fields(packet: RtpPacket) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        packet.to_bytes()


# --- RTCP demultiplexing (RFC 5761 §4) --------------------------------------------------


@pytest.mark.parametrize("packet_type", [200, 201, 202, 203, 204, 205, 206, 207])
def test_rtcp_packet_types_are_rtcp(packet_type: int) -> None:
    assert is_rtcp(bytes([0x81, packet_type, 0x00, 0x07]) + bytes(28))


@pytest.mark.parametrize("second", [0x00, 0x08, 0x65, 0xE5, 0x80, 0x88])  # PT 0/8/101 ± M
def test_rtp_is_not_rtcp(second: int) -> None:
    assert not is_rtcp(bytes([0x80, second]) + bytes(10))


def test_rtcp_needs_two_octets_and_version_2() -> None:
    assert not is_rtcp(b"") and not is_rtcp(b"\x81")
    assert not is_rtcp(b"\x41\xc9\x00\x01")


# --- sender -----------------------------------------------------------------------------


def test_sender_paces_sequence_timestamp_and_marker() -> None:
    sender = RtpSender(ssrc=0x1234, sequence=10, timestamp=1000)
    packets = [parse_rtp(sender.packet(b"\xff" * 160, 0)) for _ in range(3)]
    assert [p.sequence for p in packets] == [10, 11, 12]
    assert [p.timestamp for p in packets] == [1000, 1160, 1320]
    assert [p.marker for p in packets] == [True, False, False]  # RFC 3551 §4.1
    assert {p.ssrc for p in packets} == {0x1234}
    assert (sender.packets_sent, sender.octets_sent) == (3, 480)
    assert (sender.sequence, sender.timestamp) == (13, 1480)


def test_sender_wraps() -> None:
    sender = RtpSender(ssrc=1, sequence=65535, timestamp=0xFFFFFF00)
    first, second = parse_rtp(sender.packet(b"", 8, 256)), parse_rtp(sender.packet(b"", 8))
    assert (first.sequence, second.sequence) == (65535, 0)
    assert (first.timestamp, second.timestamp) == (0xFFFFFF00, 0)


def test_skip_starts_a_talkspurt() -> None:
    sender = RtpSender(ssrc=1, sequence=0, timestamp=0)
    sender.packet(b"x", 0)
    sender.skip(800)  # 100 ms not sent
    pkt = parse_rtp(sender.packet(b"x", 0))
    assert pkt.marker and pkt.timestamp == 960


def test_explicit_marker_and_timestamp_for_events() -> None:
    """RFC 4733 packets carry the event start; the stream clock still runs."""
    sender = RtpSender(ssrc=1, sequence=0, timestamp=5000)
    start = sender.timestamp
    event = [parse_rtp(sender.packet(b"ev", 101, marker=k == 0, timestamp=start)) for k in range(3)]
    assert [p.timestamp for p in event] == [start] * 3
    assert [p.marker for p in event] == [True, False, False]
    assert sender.timestamp == start + 480
    audio = parse_rtp(sender.packet(b"au", 0))
    assert audio.marker and audio.timestamp == start + 480  # talkspurt still pending


def test_sender_rejects_a_payload_type_that_would_hit_the_marker() -> None:
    with pytest.raises(ValueError, match="payload type 128"):
        RtpSender(1, 0, 0).packet(b"", 128)


def test_sender_draws_random_initial_values() -> None:
    senders = [RtpSender() for _ in range(8)]
    assert len({s.ssrc for s in senders}) > 1
    for s in senders:
        assert 0 <= s.ssrc < 1 << 32 and 0 <= s.sequence < 1 << 16 and 0 <= s.timestamp < 1 << 32


# --- receiver ---------------------------------------------------------------------------


def feed(receiver: RtpReceiver, *sequences: int, ssrc: int = 7) -> list[bool]:
    return [receiver.receive(RtpPacket(0, seq, 0, ssrc, b"")) for seq in sequences]


def test_receiver_counts_in_order_and_loss() -> None:
    rx = RtpReceiver()
    assert (rx.expected, rx.lost, rx.ssrc) == (0, 0, None)
    assert feed(rx, 100, 101, 102, 105, 106) == [True] * 5
    assert (rx.ssrc, rx.received, rx.expected, rx.lost, rx.out_of_order) == (7, 5, 7, 2, 0)


def test_receiver_late_and_duplicate_packets() -> None:
    rx = RtpReceiver()
    assert feed(rx, 1, 3, 2, 3, 4) == [True, True, False, False, True]
    assert (rx.received, rx.expected, rx.lost, rx.out_of_order, rx.duplicates) == (5, 4, 0, 1, 1)


def test_receiver_sequence_wraps() -> None:
    rx = RtpReceiver()
    assert feed(rx, 65534, 65535, 0, 1) == [True] * 4
    assert (rx.expected, rx.lost) == (4, 0)


def test_receiver_restart_needs_two_sequential_packets() -> None:
    rx = RtpReceiver()
    feed(rx, 10, 11)
    assert feed(rx, 40000) == [False]  # a stray: not counted
    assert (rx.received, rx.expected) == (2, 2)
    assert feed(rx, 40001, 40002) == [True, True]  # RFC 3550 A.1: the sender restarted
    assert (rx.received, rx.expected, rx.lost) == (2, 2, 0)


def test_receiver_resets_on_new_ssrc() -> None:
    rx = RtpReceiver()
    feed(rx, 1, 2, 9)
    assert feed(rx, 500, ssrc=8) == [True]
    assert (rx.ssrc, rx.ssrc_changes, rx.received, rx.expected, rx.lost) == (8, 1, 1, 1, 0)


# --- properties -------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_parse_rtp_never_raises_anything_else(data: bytes) -> None:
    try:
        pkt = parse_rtp(data)
    except RtpError:
        return
    assert parse_rtp(pkt.to_bytes()) == pkt


@given(st.binary(min_size=12, max_size=120).map(lambda b: bytes([0x80 | b[0] & 0x3F]) + b[1:]))
def test_parse_rtp_version_2_garbage(data: bytes) -> None:
    """Version-2 starts reach the CSRC, extension and padding checks."""
    try:
        pkt = parse_rtp(data)
    except RtpError:
        return
    assert parse_rtp(pkt.to_bytes()) == pkt


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(RtpExtension, st.integers(0, 0xFFFF), st.binary(max_size=8).map(lambda b: b * 4)),
    padding=st.integers(0, 255),
)


@given(packets)
def test_build_parse_round_trip(packet: RtpPacket) -> None:
    assert parse_rtp(packet.to_bytes()) == packet
