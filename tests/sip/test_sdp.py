"""SDP core: real offers from SIPp, baresip and Linphone; answer rules (SIP-12); garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialtone.sip.sdp import (
    Answer,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    accept_answer,
    build_offer,
    negotiate_answer,
    parse_sdp,
)


def sdp(*lines: str, eol: str = "\r\n") -> bytes:
    """Join SDP lines."""
    return (eol.join(lines) + eol).encode()


# SIPp 3.6 built-in uac scenario body, as sent with -i 127.0.0.1 -mp 6000.
SIPP = sdp(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
)

# baresip 1.0 with its default audio codecs and video enabled.
BARESIP = sdp(
    "v=0",
    "o=- 3917262066 2318467906 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 10000 RTP/AVP 96 9 0 8 101",
    "b=AS:128",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 stereo=1;sprop-stereo=1;maxaveragebitrate=128000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=label:1",
    "a=ssrc:1285946133 cname:2ef9b47e-1b4b-4c5e-b9bb-83cd8a4b8ff3",
    "a=rtcp-rsize",
    "a=ptime:20",
    "m=video 10002 RTP/AVP 100",
    "b=AS:512",
    "a=rtpmap:100 H264/90000",
    "a=fmtp:100 packetization-mode=0;profile-level-id=42e01f",
    "a=sendrecv",
    "a=label:2",
)

# Linphone style: session-level ICE and rtcp-xr, telephone-event at three rates, bare \n.
LINPHONE = sdp(
    "v=0",
    "o=alice 2890 2366 IN IP4 192.168.1.10",
    "s=Talk",
    "c=IN IP4 192.168.1.10",
    "t=0 0",
    "a=ice-pwd:31ec21eb38b2ec6d36e8dc7b",
    "a=ice-ufrag:7b3f4b8f",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "a=record:off",
    "m=audio 7078 RTP/AVP 96 97 98 8 0 18 101 99 100",
    "c=IN IP4 192.168.1.11",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 speex/16000",
    "a=fmtp:97 vbr=on",
    "a=rtpmap:98 speex/8000",
    "a=fmtp:98 vbr=on",
    "a=fmtp:18 annexb=yes",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000",
    "a=rtcp:7079",
    "a=candidate:1 1 UDP 2130706431 192.168.1.10 7078 typ host",
    "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:* ccm tmmbr",
    "m=video 9078 RTP/AVP 96",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:* nack pli",
    eol="\n",
)


def answer(offer: bytes, **kwargs: object) -> Answer:
    """Answer ``offer`` from 127.0.0.1:20000."""
    return negotiate_answer(
        parse_sdp(offer),
        "127.0.0.1",
        20000,
        session_id=42,
        version=1,
        **kwargs,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- parsing


def test_parse_sipp_offer() -> None:
    parsed = parse_sdp(SIPP)
    assert parsed.origin == Origin("user1", "53655765", "2353687637", "IN", "IP4", "127.0.0.1")
    assert parsed.session_name == "-"
    assert parsed.connection == Connection("IN", "IP4", "127.0.0.1")
    assert parsed.timing == [("t", "0 0")]
    (audio,) = parsed.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 6000, "RTP/AVP", [0])
    assert audio.rtpmap == {0: RtpMap("PCMU", 8000, 1)}
    assert audio.direction is Direction.SENDRECV
    assert audio.ptime is None
    assert audio.is_rtp


def test_parse_baresip_offer() -> None:
    parsed = parse_sdp(BARESIP)
    audio, video = parsed.media
    assert audio.formats == [96, 9, 0, 8, 101]
    assert audio.rtpmap[96] == RtpMap("opus", 48000, 2)
    assert audio.fmtp[96] == "stereo=1;sprop-stereo=1;maxaveragebitrate=128000"
    assert audio.fmtp[101] == "0-15"
    assert audio.ptime == 20
    assert audio.lines == [("b", "AS:128")]
    assert audio.attribute("label") == "1"
    assert audio.attribute("rtcp-rsize") == ""
    assert audio.attribute("nope") is None
    assert ("ssrc", "1285946133 cname:2ef9b47e-1b4b-4c5e-b9bb-83cd8a4b8ff3") in audio.attributes
    assert video.media == "video"
    assert video.rtpmap[100].encoding == "H264"


def test_parse_linphone_offer() -> None:
    parsed = parse_sdp(LINPHONE)
    assert parsed.session_name == "Talk"
    assert ("ice-ufrag", "7b3f4b8f") in parsed.attributes
    audio = parsed.media[0]
    assert audio.connection == Connection("IN", "IP4", "192.168.1.11")
    assert audio.codec(18) == RtpMap("G729", 8000)  # static, no rtpmap
    assert audio.codec(0) == RtpMap("PCMU", 8000)
    assert audio.codec(8) == RtpMap("PCMA", 8000)
    assert audio.codec(77) is None
    assert audio.fmtp[18] == "annexb=yes"
    assert audio.attribute("rtcp") == "7079"


def test_parse_ipv6_and_multicast_connection() -> None:
    parsed = parse_sdp(
        sdp(
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::1",
            "s=x",
            "c=IN IP6 2001:db8::2",
            "t=0 0",
            "m=audio 4000 RTP/AVP 8",
            "c=IN IP4 224.2.1.1/127",
            "c=IN IP4 224.2.1.2/127",
        )
    )
    assert parsed.origin.addrtype == "IP6"
    assert parsed.connection is not None
    assert parsed.connection.host == "2001:db8::2"
    audio = parsed.media[0]
    assert audio.connection is not None
    assert audio.connection.host == "224.2.1.1"
    assert audio.lines == [("c", "IN IP4 224.2.1.2/127")]


def test_parse_tolerates_unknown_lines_and_odd_attributes() -> None:
    parsed = parse_sdp(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.1",
            "i=info",
            "u=http://example.com",
            "e=me@example.com",
            "x=unknown-session-line",
            "b=CT:64",
            "t=0 0",
            "r=7d 1h 0 25h",
            "a=tool:test",
            "a=sendonly",
            "m=audio 5004/2 RTP/AVP 0 8",
            "i=audio stream",
            "y=unknown-media-line",
            "a=rtpmap:0 PCMU",  # unreadable: kept as an other attribute
            "a=fmtp:x y",
            "a=ptime:20.0",
            "a=ptime:30",
            "a=maxptime:40",
            "a=rtpmap:8 PCMA/8000/1",
            "a=rtpmap:8 PCMA/16000",  # duplicate: first wins, second kept
            "m=image 0 udptl t38",
            "a=T38FaxVersion:0",
            "",
            "",
        )
    )
    assert parsed.session_name == "-"  # missing s= defaults
    assert parsed.direction is Direction.SENDONLY
    assert [kind for kind, _ in parsed.lines] == ["i", "u", "e", "x", "b"]
    assert parsed.timing == [("t", "0 0"), ("r", "7d 1h 0 25h")]
    audio, image = parsed.media
    assert audio.port == 5004
    assert audio.port_count == 2
    assert audio.direction is Direction.SENDONLY  # from the session level
    assert audio.ptime == 20
    assert audio.rtpmap == {8: RtpMap("PCMA", 8000)}
    assert ("rtpmap", "0 PCMU") in audio.attributes
    assert ("fmtp", "x y") in audio.attributes
    assert ("ptime", "30") in audio.attributes
    assert ("rtpmap", "8 PCMA/16000") in audio.attributes
    assert audio.lines == [("i", "audio stream"), ("y", "unknown-media-line")]
    assert not image.is_rtp
    assert image.formats == []
    assert image.format_tokens == ["t38"]
    assert image.attribute("T38FaxVersion") == "0"


def test_parse_keeps_non_utf8_bytes() -> None:
    data = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=Caf\xe9\r\nt=0 0\r\n"
    assert parse_sdp(data).to_bytes() == data


def test_media_direction_overrides_session_direction() -> None:
    parsed = parse_sdp(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.1",
            "s=-",
            "c=IN IP4 10.0.0.1",
            "t=0 0",
            "a=inactive",
            "m=audio 5004 RTP/AVP 0",
            "a=recvonly",
            "m=audio 5006 RTP/AVP 0",
        )
    )
    assert [m.direction for m in parsed.media] == [Direction.RECVONLY, Direction.INACTIVE]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"hello",
        b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n",
        b"v=0\r\ns=no origin\r\n",
        b"v=0\r\no=- 1 1 IN IP4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        b"v=0\r\nv=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5004/x RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP PCMU\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 128\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio \xb2 RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nnot a line\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n1=digit type\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=a\rb\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=a\x00b\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n\xc4\xb0=dotted capital I\r\n",
    ],
)
def test_parse_rejects_garbage(data: bytes) -> None:
    with pytest.raises(SdpError):
        parse_sdp(data)


def test_parse_rejects_non_bytes() -> None:
    with pytest.raises(SdpError):
        parse_sdp("v=0\r\n")  # type: ignore[arg-type]


@given(st.binary(max_size=400))
def test_parse_never_raises_anything_else_on_bytes(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(data)


_SDP_LINES = [
    "v=0",
    "o=- 1 1 IN IP4 1.2.3.4",
    "s=-",
    "c=IN IP4 1.2.3.4",
    "c=IN IP6 ::1",
    "t=0 0",
    "m=audio 4000 RTP/AVP 0 8 101",
    "m=audio 0 RTP/SAVP 0",
    "m=image 4002 udptl t38",
    "m=audio 4000/2 RTP/AVP",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000/1",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendonly",
    "a=inactive",
    "a=recvonly",
    "b=AS:64",
    "z=x",
    "",
]


@given(
    st.lists(
        st.one_of(
            st.sampled_from(_SDP_LINES),
            st.text(st.sampled_from("vomcat=:/ 0189INP4RTAV-"), max_size=20),
        ),
        max_size=20,
    ),
    st.sampled_from(["\r\n", "\n"]),
)
def test_structured_fuzz(lines: list[str], eol: str) -> None:
    """Near-valid documents: only SdpError, and whatever parses also round-trips."""
    data = eol.join(["v=0", "o=- 1 1 IN IP4 1.2.3.4", *lines]).encode()
    try:
        parsed = parse_sdp(data)
    except SdpError:
        return
    assert parse_sdp(parsed.to_bytes()).to_bytes() == parsed.to_bytes()
    with contextlib.suppress(SdpError):
        negotiate_answer(parsed, "127.0.0.1", 20000, session_id=1, version=1)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("data", [SIPP, BARESIP, LINPHONE])
def test_round_trip(data: bytes) -> None:
    parsed = parse_sdp(data)
    written = parsed.to_bytes()
    assert written.endswith(b"\r\n")
    assert b"\n" not in written.replace(b"\r\n", b"")
    assert parse_sdp(written) == parsed
    assert parse_sdp(written).to_bytes() == written


def test_sipp_body_is_written_back_verbatim() -> None:
    # Only the explicit direction is added.
    assert parse_sdp(SIPP).to_bytes() == SIPP + b"a=sendrecv\r\n"


def test_serialised_line_order() -> None:
    session = SessionDescription(
        origin=Origin("-", "1", "2", "IN", "IP4", "1.2.3.4"),
        connection=Connection("IN", "IP4", "1.2.3.4"),
        lines=[("k", "prompt"), ("b", "AS:64"), ("i", "info")],
        attributes=[("tool", "x"), ("flag", None)],
        media=[
            MediaDescription(
                media="audio",
                port=4000,
                proto="RTP/AVP",
                formats=[8],
                rtpmap={8: RtpMap("PCMA", 8000)},
                connection=Connection("IN", "IP4", "5.6.7.8"),
                lines=[("b", "AS:64"), ("i", "media info")],
            )
        ],
    )
    assert session.to_bytes().decode().split("\r\n") == [
        "v=0",
        "o=- 1 2 IN IP4 1.2.3.4",
        "s=-",
        "i=info",
        "c=IN IP4 1.2.3.4",
        "b=AS:64",
        "t=0 0",
        "k=prompt",
        "a=tool:x",
        "a=flag",
        "m=audio 4000 RTP/AVP 8",
        "i=media info",
        "c=IN IP4 5.6.7.8",
        "b=AS:64",
        "a=rtpmap:8 PCMA/8000",
        "a=sendrecv",
        "",
    ]


# --------------------------------------------------------------------------- answers


def test_answer_sipp() -> None:
    result = answer(SIPP)
    assert result.payload_type == 0
    assert result.codec == RtpMap("PCMU", 8000)
    assert result.telephone_event_pt is None
    assert (result.remote_address, result.remote_port) == ("127.0.0.1", 6000)
    assert result.direction is Direction.SENDRECV
    assert result.media_index == 0
    assert result.sdp.to_bytes().decode().split("\r\n") == [
        "v=0",
        "o=dialtone 42 1 IN IP4 127.0.0.1",
        "s=dialtone",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=audio 20000 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
        "a=sendrecv",
        "",
    ]


def test_answer_baresip_picks_g711_with_telephone_event_and_rejects_video() -> None:
    result = answer(BARESIP)
    assert result.payload_type == 0  # PCMU comes before PCMA in the offer
    assert result.telephone_event_pt == 101
    assert result.ptime == 20
    audio, video = result.sdp.media
    assert audio.formats == [0, 101]
    assert audio.rtpmap == {0: RtpMap("PCMU", 8000), 101: RtpMap("telephone-event", 8000)}
    assert audio.fmtp == {101: "0-15"}
    assert audio.ptime == 20
    assert audio.attributes == []  # nothing of the offer's leaks in (ssrc, label, …)
    # RFC 3264 §6: same number of m-lines; the rejected one has port 0.
    assert (video.media, video.port, video.proto, video.formats) == ("video", 0, "RTP/AVP", [100])
    text = result.sdp.to_bytes().decode()
    assert "m=video 0 RTP/AVP 100\r\n" in text
    assert text.endswith("m=video 0 RTP/AVP 100\r\n")  # no attributes on a rejected stream
    assert parse_sdp(result.sdp.to_bytes()) == result.sdp


def test_answer_linphone_follows_offer_order_and_8khz_telephone_event() -> None:
    result = answer(LINPHONE)
    assert result.payload_type == 8  # PCMA is listed before PCMU
    assert result.codec == RtpMap("PCMA", 8000)
    assert result.telephone_event_pt == 100  # the 8000 Hz one, not 48000/16000
    assert (result.remote_address, result.remote_port) == ("192.168.1.11", 7078)  # media c=
    assert result.sdp.media[0].fmtp == {}  # none offered for pt 100
    assert result.sdp.media[1].port == 0


def test_answer_supported_restricts_codecs() -> None:
    assert answer(BARESIP, supported=("PCMA",)).payload_type == 8
    with pytest.raises(SdpError) as caught:
        answer(SIPP, supported=("PCMA",))
    assert caught.value.no_common_codec


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.SENDONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_answer_mirrors_direction(offered: str, answered: Direction) -> None:
    result = answer(SIPP + f"a={offered}\r\n".encode())
    assert result.direction is answered
    assert f"a={answered}\r\n".encode() in result.sdp.to_bytes()


def test_answer_mirrors_session_level_hold() -> None:
    offer = SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    assert answer(offer).direction is Direction.RECVONLY


def _offer(*media: str, connection: str = "c=IN IP4 10.0.0.2") -> bytes:
    return sdp("v=0", "o=- 1 1 IN IP4 10.0.0.2", "s=-", connection, "t=0 0", *media)


def test_answer_dynamic_payload_type_for_pcmu() -> None:
    result = answer(_offer("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 pcmu/8000"))
    assert result.payload_type == 96
    assert result.sdp.media[0].rtpmap == {96: RtpMap("PCMU", 8000)}


def test_answer_accepts_first_usable_audio_stream_only() -> None:
    result = answer(
        _offer(
            "m=audio 4000 RTP/SAVP 0",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "m=audio 0 RTP/AVP 0",
            "m=audio 4002 RTP/AVP 18",
            "m=audio 4004 RTP/AVPF 8",
            "m=audio 4006 RTP/AVP 0",
            "m=image 4008 udptl t38",
        )
    )
    assert result.media_index == 3
    assert result.remote_port == 4004
    assert result.payload_type == 8
    ports = [(m.proto, m.port) for m in result.sdp.media]
    assert ports == [
        ("RTP/SAVP", 0),
        ("RTP/AVP", 0),
        ("RTP/AVP", 0),
        ("RTP/AVPF", 20000),  # the profile is kept in the answer
        ("RTP/AVP", 0),
        ("udptl", 0),
    ]
    assert "m=image 0 udptl t38\r\n" in result.sdp.to_bytes().decode()


@pytest.mark.parametrize(
    "offer",
    [
        _offer("m=audio 4000 RTP/AVP 18 9", "a=rtpmap:18 G729/8000"),
        _offer("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 PCMU/16000"),
        _offer("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 PCMA/8000/2"),
        _offer("m=audio 4000 RTP/SAVP 0 8"),
        _offer("m=audio 0 RTP/AVP 0 8"),
        _offer("m=video 4000 RTP/AVP 0"),
        _offer(),
    ],
)
def test_no_common_codec(offer: bytes) -> None:
    with pytest.raises(SdpError) as caught:
        answer(offer)
    assert caught.value.no_common_codec


def test_offer_without_connection_is_an_error() -> None:
    with pytest.raises(SdpError) as caught:
        answer(_offer("m=audio 4000 RTP/AVP 0", connection="b=AS:64"))
    assert not caught.value.no_common_codec


def test_answer_ipv6() -> None:
    offer = sdp(
        "v=0",
        "o=- 1 1 IN IP6 ::1",
        "s=-",
        "c=IN IP6 ::1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 8 0",
    )
    result = negotiate_answer(parse_sdp(offer), "::1", 20000, session_id=7, version=3)
    assert result.remote_address == "::1"
    assert result.payload_type == 8
    text = result.sdp.to_bytes().decode()
    assert "o=dialtone 7 3 IN IP6 ::1\r\n" in text
    assert "c=IN IP6 ::1\r\n" in text


def test_answer_to_old_style_hold_keeps_address() -> None:
    # RFC 3264 §8.4: c=0.0.0.0 is the RFC 2543 hold; the media engine sees the address.
    result = answer(_offer("m=audio 4000 RTP/AVP 0", connection="c=IN IP4 0.0.0.0"))
    assert result.remote_address == "0.0.0.0"


# --------------------------------------------------------------------------- offers


def test_build_offer_leg3() -> None:
    offer = build_offer("127.0.0.1", 30000, session_id=9, version=1)
    assert offer.to_bytes().decode().split("\r\n") == [
        "v=0",
        "o=dialtone 9 1 IN IP4 127.0.0.1",
        "s=dialtone",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "",
    ]
    assert parse_sdp(offer.to_bytes()) == offer


def test_build_offer_options() -> None:
    offer = build_offer(
        "2001:db8::5",
        30000,
        session_id=9,
        version=2,
        codecs=("pcma",),
        telephone_event_pt=None,
        ptime=None,
        direction=Direction.SENDONLY,
    )
    text = offer.to_bytes().decode()
    assert "c=IN IP6 2001:db8::5\r\n" in text
    assert "m=audio 30000 RTP/AVP 8\r\n" in text
    assert "telephone-event" not in text
    assert "ptime" not in text
    assert "a=sendonly\r\n" in text
    for bad in ({"codecs": ("G729",)}, {"codecs": ()}, {"telephone_event_pt": 8}):
        with pytest.raises(SdpError):
            build_offer("127.0.0.1", 1, session_id=1, version=1, **bad)


def test_dialtone_answers_its_own_offer() -> None:
    offer = build_offer("127.0.0.1", 30000, session_id=1, version=1)
    result = negotiate_answer(offer, "127.0.0.2", 40000, session_id=2, version=1)
    assert (result.payload_type, result.telephone_event_pt) == (0, 101)
    assert result.sdp.media[0].fmtp == {101: "0-16"}
    choice = accept_answer(parse_sdp(result.sdp.to_bytes()))
    assert (choice.payload_type, choice.telephone_event_pt) == (0, 101)
    assert (choice.remote_address, choice.remote_port) == ("127.0.0.2", 40000)
    assert choice.ptime == 20


def test_accept_answer() -> None:
    reply = _offer("m=video 0 RTP/AVP 96", "m=audio 5000 RTP/AVP 8 101", "a=recvonly")
    reply += b"a=rtpmap:101 telephone-event/8000\r\n"
    choice = accept_answer(parse_sdp(reply))
    assert choice.media_index == 1
    assert choice.payload_type == 8
    assert choice.telephone_event_pt == 101
    assert choice.direction is Direction.SENDONLY  # they only receive: we only send
    assert choice.direction.sends and not choice.direction.receives
    for rejected in (_offer("m=audio 0 RTP/AVP 0"), _offer("m=audio 5000 RTP/AVP 18")):
        with pytest.raises(SdpError) as caught:
            accept_answer(parse_sdp(rejected))
        assert caught.value.no_common_codec


def test_direction_helpers() -> None:
    assert Direction.SENDRECV.sends and Direction.SENDRECV.receives
    assert not Direction.INACTIVE.sends and not Direction.INACTIVE.receives
    assert Direction.RECVONLY.receives and not Direction.RECVONLY.sends
    assert [d.mirrored() for d in Direction] == [
        Direction.SENDRECV,
        Direction.RECVONLY,
        Direction.SENDONLY,
        Direction.INACTIVE,
    ]
    assert str(RtpMap("opus", 48000, 2)) == "opus/48000/2"
    assert str(RtpMap("PCMU", 8000)) == "PCMU/8000"
