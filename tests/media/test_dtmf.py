"""RFC 4733 telephone-events: payloads, the detector (each press once), the sender."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialtone.media.dtmf import (
    DIGITS,
    DtmfDetector,
    DtmfError,
    DtmfEvent,
    DtmfPacket,
    DtmfSender,
    build_event,
    digit_to_event,
    event_to_digit,
    parse_event,
)
from dialtone.media.rtp import RtpSender, parse_rtp

Packet = tuple[int, bool, bytes]  # (RTP timestamp, marker, payload) as the detector takes them


def test_digit_codes() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12 and digit_to_event("d") == 15
    assert [event_to_digit(e) for e in range(16)] == list(DIGITS)
    assert event_to_digit(16) is None  # flash
    for bad in ("E", "w", "", "12", " "):
        with pytest.raises(DtmfError, match="not a DTMF digit"):
            digit_to_event(bad)


def test_parse_event() -> None:
    assert parse_event(bytes.fromhex("058a0320")) == DtmfEvent(5, True, 10, 800)
    assert parse_event(bytes.fromhex("0b4a00a0")) == DtmfEvent(11, False, 10, 160)  # R ignored
    assert parse_event(bytes.fromhex("0a3fffff" + "00")).digit == "*"
    with pytest.raises(DtmfError, match="3 bytes"):
        parse_event(b"\x01\x02\x03")


def test_build_event() -> None:
    assert build_event(5, 800, end=True) == bytes.fromhex("058a0320")
    assert build_event(16, 0, volume=0) == bytes.fromhex("10000000")
    for event, duration, volume in ((256, 0, 10), (1, 0, 64), (1, 1 << 16, 10), (1, -1, 10)):
        with pytest.raises(ValueError, match="bad telephone-event"):
            build_event(event, duration, volume=volume)


# --- sender -----------------------------------------------------------------------------


def ticks(sender: DtmfSender) -> list[DtmfPacket | None]:
    out = []
    while not sender.done:
        out.append(sender.next_tick())
    assert sender.next_tick() is None
    return out


def test_one_digit_is_five_updates_and_three_ends() -> None:
    sent = ticks(DtmfSender("5"))
    assert len(sent) == 8 and all(p is not None for p in sent)
    events = [parse_event(p.payload) for p in sent if p]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800, 800]
    assert [e.end for e in events] == [False] * 5 + [True] * 3
    assert {e.event for e in events} == {5} and {e.volume for e in events} == {10}
    assert [p.marker for p in sent if p] == [True] + [False] * 7
    assert {p.offset for p in sent if p} == {0}
    assert {p.digit for p in sent if p} == {"5"}


def test_digits_and_pauses_are_laid_out_in_ticks() -> None:
    sender = DtmfSender("1#wBW")
    sent = ticks(sender)
    assert sender.ticks == len(sent) == 8 + 8 + 25 + 8 + 50
    starts = [(i, p.digit, p.offset) for i, p in enumerate(sent) if p and p.marker]
    assert starts == [(0, "1", 0), (8, "#", 8 * 160), (41, "B", 41 * 160)]
    assert sent[16:41] == [None] * 25 and sent[49:] == [None] * 50


def test_empty_and_invalid_strings() -> None:
    assert DtmfSender("").done
    with pytest.raises(DtmfError):
        DtmfSender("12x")


def rtp_stream(digits: str) -> list[Packet]:
    """Send ``digits`` as a session would: event packets in one RTP stream with audio."""
    rtp = RtpSender(ssrc=1, sequence=0, timestamp=123456)
    dtmf = DtmfSender(digits)
    base = rtp.timestamp
    out: list[Packet] = []
    while not dtmf.done:
        pkt = dtmf.next_tick()
        if pkt is None:
            rtp.packet(b"\xff" * 160, 0)  # audio on this tick
            continue
        wire = parse_rtp(
            rtp.packet(pkt.payload, 101, marker=pkt.marker, timestamp=base + pkt.offset)
        )
        out.append((wire.timestamp, wire.marker, wire.payload))
    return out


def detect(packets: list[Packet], detector: DtmfDetector | None = None) -> str:
    detector = detector or DtmfDetector()
    return "".join(detector.feed(ts, m, p) for ts, m, p in packets)


# --- detector ---------------------------------------------------------------------------


def test_each_press_counts_once() -> None:
    assert detect(rtp_stream("123*#")) == "123*#"
    assert detect(rtp_stream("55w5")) == "555"


def test_loss_of_first_packets_still_counts() -> None:
    stream = rtp_stream("7")
    assert detect(stream[3:]) == "7"  # the marker packet and two updates lost
    assert detect(stream[-1:]) == "7"  # only one end packet arrived


def test_loss_of_end_packets_does_not_hide_the_next_press() -> None:
    first, second = rtp_stream("9"), rtp_stream("9")
    second = [(ts + 1280, m, p) for ts, m, p in second]
    assert detect(first[:2] + second) == "99"
    assert detect(first[:2] + second[4:]) == "99"  # and no marker on the second either


def test_duplicates_and_reordering_within_an_event() -> None:
    s = rtp_stream("4")
    assert detect([s[1], s[0], s[0], s[2], s[5], s[5], s[3], s[7], s[6]]) == "4"


def test_late_packets_of_a_previous_event_are_stale() -> None:
    s = rtp_stream("12")
    one, two = s[:8], s[8:]
    assert detect(one[:4] + two[:2] + one[4:] + two[2:]) == "12"
    detector = DtmfDetector()
    assert detect(two, detector) == "2"
    assert detect(one[:1], detector) == ""  # first seen after "2" began: stale, dropped


def test_a_far_timestamp_is_a_new_timeline() -> None:
    detector = DtmfDetector()
    assert detect(rtp_stream("1"), detector) == "1"
    restarted = [(ts - 5_000_000, m, p) for ts, m, p in rtp_stream("1")]
    assert detect(restarted, detector) == "1"


def test_long_press_segments_are_one_press() -> None:
    """RFC 4733 §2.5.1.3: past 0xFFFF samples the event goes on under a new timestamp."""
    ts = 1000
    held = [(ts, True, build_event(3, 160))]
    held += [(ts, False, build_event(3, d)) for d in range(320, 0xFFFF, 160)]
    held += [(ts, False, build_event(3, 0xFFFF))]
    nxt = ts + 0xFFFF
    held += [(nxt, False, build_event(3, d)) for d in (160, 320)]
    held += [(nxt, False, build_event(3, 480, end=True))] * 3
    assert detect(held) == "3"
    # The same timestamps after a *short* event: a new press, not a continuation.
    short = [(ts, True, build_event(3, 160)), (ts + 800, False, build_event(3, 160))]
    assert detect(short) == "33"


def test_other_events_and_malformed_payloads() -> None:
    detector = DtmfDetector()
    assert detector.feed(0, True, build_event(16, 160)) == ""  # flash: not a digit
    assert detector.feed(0, False, build_event(16, 320, end=True)) == ""
    assert detector.feed(800, True, b"\x01") == ""
    assert detector.malformed == 1
    assert detector.feed(800, True, build_event(1, 160)) == "1"
    detector.reset()
    assert detector.feed(800, False, build_event(1, 320)) == "1"


def test_packed_reports_are_events_of_their_own() -> None:
    """§2.5.1.5: short events packed in one packet, each starting where the last ended."""
    detector = DtmfDetector()
    packed = build_event(1, 400, end=True) + build_event(2, 400, end=True) + build_event(3, 160)
    assert detector.feed(8000, True, packed) == "123"
    assert detector.feed(8800, False, build_event(3, 320)) == ""  # event 3 goes on alone
    assert detector.feed(8800, False, build_event(3, 480, end=True)) == ""
    assert detector.feed(8000, True, packed) == ""  # a duplicate


# --- properties -------------------------------------------------------------------------


@given(st.binary(max_size=16))
def test_parse_event_never_raises_anything_else(payload: bytes) -> None:
    try:
        event = parse_event(payload)
    except DtmfError:
        return
    assert 0 <= event.volume <= 63 and 0 <= event.duration <= 0xFFFF


@given(st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), st.booleans(), st.binary(max_size=8))))
def test_detector_never_raises(packets: list[Packet]) -> None:
    detector = DtmfDetector()
    for packet in packets:
        digits = detector.feed(*packet)
        assert len(digits) <= len(packet[2]) // 4 and set(digits) <= set(DIGITS)


@given(st.text(alphabet="0123456789*#ABCDwW", max_size=12), st.data())
def test_any_loss_that_leaves_a_packet_per_press_is_exact(digits: str, data: st.DataObject) -> None:
    stream = rtp_stream(digits)
    groups: dict[int, list[Packet]] = {}
    for packet in stream:
        groups.setdefault(packet[0], []).append(packet)
    received: list[Packet] = []
    for group in groups.values():
        kept = data.draw(st.lists(st.sampled_from(group), min_size=1, max_size=10))
        received += sorted(kept, key=group.index)
    assert detect(received) == digits.replace("w", "").replace("W", "")
