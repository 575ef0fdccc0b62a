"""Media cores: RTP packets, G.711, RFC 4733 DTMF and 20 ms audio sources.

Everything in this package is a pure core (design.md §2): no asyncio, no sockets, no
clock reads.  Times and sequence numbers come in as arguments; the asyncio socket layer
(``media.local``) and :class:`~dialtone.media.session.MediaSession` pace these cores
every 20 ms.

- :mod:`~dialtone.media.rtp` — RFC 3550 packets, the sending state machine
  (sequence, timestamp, marker) and receive statistics.
- :mod:`~dialtone.media.codecs` — G.711 μ-law/A-law behind the two-method
  :class:`~dialtone.media.codecs.Codec` interface, and PCMU↔PCMA transcoding.
- :mod:`~dialtone.media.dtmf` — RFC 4733 telephone-events: parse/build, a detector
  that counts each key press once, and a sender for ``digits``/``sendDigits``.
- :mod:`~dialtone.media.sources` — audio pulled in 20 ms frames of 160 PCM16 samples:
  silence, ringback tone, PCM (looped) and the WAV loader.

Errors, each raised only by its own module (all are :class:`ValueError`)::

    ValueError
    ├── RtpError      bytes that are not an RTP packet (rtp.parse_rtp)
    ├── DtmfError     a telephone-event payload or digit string that cannot be used
    └── AudioError    a WAV file dialtone cannot play (later: Notification 13420)
"""
