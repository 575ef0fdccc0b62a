"""Fakes and a harness for driving :class:`~dialtone.calls.dial.DialRun` without a network.

Nothing here sleeps or opens a socket.  :class:`DialTest` builds a DialRun on a
:class:`FakeParent` with recording fakes for every service it touches:

- :class:`FakeSignalling` (the call manager's half): every INVITE, CANCEL, ACK and BYE, in
  order, attributed to its branch (by transaction or Call-ID);
- :class:`FakeRecords` (``CallRecords``): Call rows with their writes, and Notifications;
- :class:`FakeCallbacks` (``CallbackDispatcher``): each ``fire()`` with the SequenceNumber
  the real dispatcher would give (per CallSid and URL, in call order), and whether the
  Dial's result was already set when it fired (CB-9);
- :class:`FakeWebhooks` (``WebhookClient.fetch_rcml``): scripted whisper documents, a
  :class:`Hold` keeps a fetch pending until the test releases it;
- :class:`FakeMedia` (``MediaSession``): the ringback (a ``ToneSource``) plays until it is
  stopped, any other source "plays" at once; ``configure`` (recorded with its direction)
  on a closed session raises ``MediaClosed`` as the local backend does
  (``media/local.py``).

Time: ``loop_time``/``utcnow`` come from a :class:`~dialtone.testing.clock.FakeClock` that
starts 10**6 s *ahead* of the real event-loop clock, so the ``loop.call_at`` that DialRun
arms never fires by itself during a test.  :meth:`DialTest.run_until` fires it instead:
it moves the fake clock to the armed handle's ``when()``, cancels that handle and calls
``DialRun._on_timer()`` (what the loop would have done), until the next deadline is later
than the target time.  :meth:`DialTest.settle` only yields to the loop (``sleep(0)``) so
tasks the Dial started (ringback, whispers, media closes) take their next steps; no time
passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from dialtone.calls.audio import AudioCache
from dialtone.calls.branch import BranchLeg
from dialtone.calls.child import ChildCall
from dialtone.calls.dial import DialRun, DialSettings
from dialtone.calls.records import CallRecords, call_duration
from dialtone.calls.services import CallServices
from dialtone.config import OutboundProxy
from dialtone.media.ports import NoMediaPorts
from dialtone.media.session import Direction, MediaSession, MediaSessionBase, MediaStats
from dialtone.media.sources import Source, ToneSource
from dialtone.media.tts import Speech, SpeechEngine, VoiceChoice
from dialtone.rcml.context import DialResult
from dialtone.rcml.nodes import Dial
from dialtone.registrar.location import Binding
from dialtone.sip.dialog_set import DialogSet
from dialtone.sip.events import Peer
from dialtone.sip.message import Request, Response, make_response
from dialtone.sip.sdp import build_offer
from dialtone.sip.uri import parse_uri
from dialtone.testing.clock import FakeClock
from dialtone.testing.fake_call import rcml
from dialtone.webhooks.client import RcmlResponse, WebhookClient, WebhookError
from dialtone.webhooks.dispatcher import CallbackDispatcher
from dialtone.webhooks.params import CallInfo, format_timestamp

__all__ = [
    "ACCOUNT",
    "CALLER",
    "DOMAIN",
    "PARENT",
    "PROXY",
    "PUBLIC_URL",
    "T0",
    "TOKEN",
    "DialTest",
    "FakeCallbacks",
    "FakeMedia",
    "FakeParent",
    "FakeRecords",
    "FakeSignalling",
    "FakeWebhooks",
    "Fired",
    "Hold",
    "Sent",
]

T0 = datetime(2025, 11, 4, 10, 0, 0, tzinfo=UTC)
"""Wall-clock time of t=0 (the Ex. C-1 date)."""
ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "0123456789abcdef0123456789abcdef"
PARENT = "CA" + "e" * 32
CALLER = "+15557654321"
DOMAIN = "dialtone.test"
PROXY = OutboundProxy("10.0.0.50")
LOCAL_HOST = "10.0.0.1"
PUBLIC_URL = "http://app.test"
_AHEAD = 1_000_000.0  # the fake clock's lead over the real loop clock (timers never fire)


# ------------------------------------------------------------------------------- media


class FakeMedia(MediaSessionBase):
    """A recorded media session (see the module docstring)."""

    def __init__(self, name: str, port: int) -> None:
        super().__init__()
        self.name = name
        self._address = (LOCAL_HOST, port)
        self._peer: FakeMedia | None = None
        self._stats = MediaStats()
        self.events: list[tuple[object, ...]] = []

    @property
    def local_address(self) -> tuple[str, int]:
        return self._address

    @property
    def stats(self) -> MediaStats:
        return self._stats

    @property
    def peer(self) -> FakeMedia | None:
        return self._peer

    def configure(
        self,
        remote_host: str,
        remote_port: int,
        payload_type: int,
        telephone_event_pt: int | None,
        direction: Direction = Direction.SENDRECV,
        *,
        codec: str | None = None,
    ) -> None:
        self._check_open()  # as LocalMediaSession.configure does
        self.events.append(("configure", remote_host, remote_port, codec, direction))

    async def play(self, source: Source, *, interrupt_on_digit: bool = False) -> bool:
        self._check_open()
        self.events.append(("play", type(source).__name__))
        if isinstance(source, ToneSource):  # ringback: until stopped
            return await self._run_playback(source, interrupt_on_digit)
        return True

    async def send_digits(self, digits: str) -> bool:
        self._check_open()
        self.events.append(("send_digits", digits))
        return True

    def bridge(self, other: MediaSession) -> None:
        assert isinstance(other, FakeMedia)
        self.stop_playback()
        other.stop_playback()
        self._peer, other._peer = other, self
        self.events.append(("bridge", other.name))

    def unbridge(self) -> None:
        peer = self._peer
        if peer is not None:
            peer._peer = None
            self._peer = None
            self.events.append(("unbridge", peer.name))

    async def close(self) -> None:
        if not self._closed:
            self.events.append(("close",))
            self._close_base()

    def kinds(self) -> list[object]:
        return [e[0] for e in self.events]


# ------------------------------------------------------------------------------- SIP


@dataclass(frozen=True, slots=True)
class Sent:
    """One SIP action of the Dial: ``INVITE``, ``CANCEL``, ``ACK`` or ``BYE``."""

    kind: str
    branch: int
    request: Request | None
    peer: Peer | None
    transaction: str | None
    time: float


class FakeSignalling:
    """Records what the Dial sends; ``time`` is read from ``now`` (seconds since t=0)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.sent: list[Sent] = []
        self.released: list[int] = []
        self._by_transaction: dict[str, int] = {}
        self._by_call_id: dict[str, int] = {}
        self.dialogs = DialogSet()  # the manager's registry, which branch dialogs join

    def send_invite(self, branch: BranchLeg, invite: Request, dial: DialRun) -> str:
        assert branch.peer is not None, "the branch's peer is set before its INVITE"
        transaction = f"z9hG4bK-t{len(self._by_transaction) + 1}"
        self._by_transaction[transaction] = branch.index
        self._by_call_id[invite.call_id] = branch.index
        self.sent.append(
            Sent("INVITE", branch.index, invite, branch.peer, transaction, self._now())
        )
        return transaction

    def cancel_invite(self, transaction: str) -> None:
        branch = self._by_transaction[transaction]
        self.sent.append(Sent("CANCEL", branch, None, None, transaction, self._now()))

    def send_ack(self, ack: Request, peer: Peer) -> None:
        assert ack.method == "ACK"
        self.sent.append(Sent("ACK", self._by_call_id[ack.call_id], ack, peer, None, self._now()))

    def send_bye(self, bye: Request, peer: Peer) -> None:
        assert bye.method == "BYE"
        self.sent.append(Sent("BYE", self._by_call_id[bye.call_id], bye, peer, None, self._now()))

    def release(self, branch: BranchLeg) -> None:
        self.released.append(branch.index)
        for dialog in list(branch.uac.dialogs.values()) if branch.uac else ():
            dialog.terminate()  # as CallManager.release

    def contact(self, transport: str) -> str:
        return f"sip:dialtone@{LOCAL_HOST}:5060;transport={transport}"

    # -- reading it back --

    def kinds(self, branch: int) -> list[str]:
        """What was sent for ``branch``, in order: ``["INVITE", "CANCEL"]``."""
        return [s.kind for s in self.sent if s.branch == branch]

    def of(self, branch: int, kind: str) -> list[Sent]:
        return [s for s in self.sent if s.branch == branch and s.kind == kind]

    def invites(self, branch: int) -> list[Request]:
        return [s.request for s in self.of(branch, "INVITE") if s.request is not None]


# ------------------------------------------------------------------------------- the parent


class FakeParent:
    """The caller's leg (DialParent): ``events`` holds ``"180"`` (early media) and
    ``"200"`` (answer) in order."""

    def __init__(
        self,
        media: FakeMedia,
        *,
        answered: bool = False,
        display_name: str | None = "Jane Doe",
        from_: str = CALLER,
    ) -> None:
        self._media = media
        self._answered = answered
        self._display_name = display_name
        self._from = from_
        self.events: list[str] = []

    @property
    def call_sid(self) -> str:
        return PARENT

    @property
    def answered(self) -> bool:
        return self._answered

    @property
    def info(self) -> CallInfo:
        return CallInfo(
            call_sid=PARENT,
            account_sid=ACCOUNT,
            from_=self._from,
            to="+15550001111",
            status="in-progress" if self._answered else "ringing",
            direction="inbound",
        )

    @property
    def media(self) -> FakeMedia:
        return self._media

    @property
    def display_name(self) -> str | None:
        return self._display_name

    def early_media(self) -> None:
        self.events.append("180")

    def answer_now(self) -> None:
        self.events.append("200")
        self._answered = True


# ------------------------------------------------------------------------------- services


class FakeRecords:
    """Call rows as CallRecords would leave them (duration per CB-6) and every write."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.notifications: list[dict[str, Any]] = []

    def backlog(self) -> int:
        return 0

    def create(self, call_sid: str, **fields: Any) -> None:
        assert call_sid not in self.rows, f"{call_sid} created twice"
        self.rows[call_sid] = dict(fields, sid=call_sid, answer_time=None, end_time=None)
        self.writes.append(("create", call_sid, fields))

    def update(self, call_sid: str, **fields: Any) -> None:
        assert call_sid in self.rows, f"update of unknown {call_sid}"
        assert self.rows[call_sid]["end_time"] is None, f"update of {call_sid} after finish"
        self.rows[call_sid].update(fields)
        self.writes.append(("update", call_sid, fields))

    def finish(
        self, call_sid: str, status: str, end_time: datetime, sip_response_code: int | None = None
    ) -> None:
        row = self.rows[call_sid]
        assert row["end_time"] is None, f"{call_sid} finished twice"
        row.update(status=status, end_time=end_time)
        row["duration"] = call_duration(row["answer_time"], end_time)
        if sip_response_code is not None:
            row["sip_response_code"] = sip_response_code
        self.writes.append(
            ("finish", call_sid, {"status": status, "sip_response_code": sip_response_code})
        )

    def notify(
        self, account_sid: str, call_sid: str | None, *, log: int, error_code: int, **rest: Any
    ) -> str:
        self.notifications.append(
            dict(rest, account_sid=account_sid, call_sid=call_sid, log=log, error_code=error_code)
        )
        return "NO" + f"{len(self.notifications):032x}"

    def ops(self, call_sid: str) -> list[str]:
        return [op for op, sid, _ in self.writes if sid == call_sid]

    def codes(self, call_sid: str | None = None) -> list[tuple[int, int]]:
        """``(log, error_code)`` of the Notifications (of one call)."""
        return [
            (n["log"], n["error_code"])
            for n in self.notifications
            if call_sid is None or n["call_sid"] == call_sid
        ]


@dataclass(frozen=True, slots=True)
class Fired:
    """One status callback as the dispatcher was given it."""

    call_sid: str
    url: str
    method: str
    params: dict[str, str]
    sequence_number: int
    timestamp: datetime
    last: bool
    after_result: bool  # the Dial's result was already set: CB-9 broken


class FakeCallbacks:
    """``CallbackDispatcher.fire``: numbers per (CallSid, URL) as the real one (CB-7)."""

    def __init__(self) -> None:
        self.fired: list[Fired] = []
        self._numbers: dict[tuple[str, str], int] = {}
        self.dial: DialRun | None = None

    def fire(
        self,
        call_sid: str,
        url: str,
        method: str,
        params: Iterable[tuple[str, str]],
        *,
        auth_token: str,
        timestamp: datetime,
        last: bool = False,
        ready: object = None,
    ) -> int:
        assert auth_token == TOKEN
        key = (call_sid, url.split("#", 1)[0])
        number = self._numbers.get(key, 0)
        self._numbers[key] = number + 1
        values = dict(params)
        assert "SequenceNumber" not in values and "Timestamp" not in values
        values["SequenceNumber"] = str(number)
        values["Timestamp"] = format_timestamp(timestamp)
        after = self.dial is not None and self.dial._done.done()
        self.fired.append(Fired(call_sid, url, method, values, number, timestamp, last, after))
        return number


@dataclass(slots=True)
class Hold:
    """A whisper fetch that stays pending until :meth:`release` (then answers ``then``)."""

    then: str | None = None
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self, then: str | None = None) -> None:
        if then is not None:
            self.then = then
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(frozen=True, slots=True)
class Fetch:
    url: str
    method: str
    params: dict[str, str]


class FakeWebhooks:
    """``WebhookClient.fetch_rcml`` answering from ``documents`` (url → RCML text, a
    :class:`Hold`, or None / missing for an HTTP 404, code 11200)."""

    def __init__(self) -> None:
        self.documents: dict[str, str | Hold | None] = {}
        self.fetches: list[Fetch] = []

    async def fetch_rcml(
        self,
        url: str,
        method: str,
        params: Iterable[tuple[str, str]],
        *,
        auth_token: str,
        kind: object = None,
    ) -> RcmlResponse:
        pairs = list(params)
        self.fetches.append(Fetch(url, method, dict(pairs)))
        scripted = self.documents.get(url)
        if isinstance(scripted, Hold):
            await scripted.wait()
            scripted = scripted.then
        if scripted is None:
            raise WebhookError(11200, f"HTTP 404 from {url}", url, method, pairs, status=404)
        return RcmlResponse(url, 200, "text/xml", scripted.encode())


class FakeSpeech:
    """``SpeechEngine.render``: 20 ms of silence for any text, exact voice (no 13511)."""

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def render(self, text: str, voice: str = "man", language: str = "en-US") -> Speech:
        self.spoken.append(text)
        return Speech(bytes(320), VoiceChoice("en-us"))


# ------------------------------------------------------------------------------- the harness


def sdp_answer(host: str, port: int, direction: Direction = Direction.SENDRECV) -> bytes:
    """An SDP answer of a called party (PCMU, PCMA, telephone-event)."""
    return build_offer(host, port, session_id=7, version=1, direction=direction).to_bytes()


class DialTest:
    """One DialRun under test (module docstring).

    ``clients`` maps a login to its registered contacts (an empty list: offline; a login
    not in it: no such Client).  Branch numbers are indexes in document order after
    expansion (DIAL-10).
    """

    def __init__(
        self,
        *,
        clients: Mapping[str, list[str]] | None = None,
        proxy: OutboundProxy | None = PROXY,
        parent_answered: bool = False,
        display_name: str | None = "Jane Doe",
        whisper_timeout: float = 60.0,
        free_ports: int | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + _AHEAD
        self.clock = FakeClock(start=self.t0, utc=T0)
        self.sip = FakeSignalling(self.now)
        self.records = FakeRecords()
        self.callbacks = FakeCallbacks()
        self.webhooks = FakeWebhooks()
        self.speech = FakeSpeech()
        self.parent_media = FakeMedia("parent", 20000)
        self.parent = FakeParent(
            self.parent_media, answered=parent_answered, display_name=display_name
        )
        self.opened: list[FakeMedia] = []
        self._free_ports = free_ports
        self.clients = dict(clients or {})
        self.settings = DialSettings(
            domain=DOMAIN,
            proxy=proxy,
            whisper_timeout=whisper_timeout,
            client_sid=self._client_sid,
            bindings=self._bindings,
        )
        self.services = CallServices(
            account_sid=ACCOUNT,
            auth_token=TOKEN,
            public_url=PUBLIC_URL,
            records=cast(CallRecords, self.records),
            webhooks=cast(WebhookClient, self.webhooks),
            callbacks=cast(CallbackDispatcher, self.callbacks),
            speech=cast(SpeechEngine, self.speech),
            audio=cast(AudioCache, None),
            respond=self._unexpected,
            send_request=self._unexpected,
            loop_time=self.clock.monotonic,
            utcnow=self.clock.utcnow,
            dialog_changed=lambda: None,
            forget=lambda call: None,
        )
        self.dial: DialRun
        self.task: asyncio.Task[DialResult]
        # API-25: branches that left the Dial (tests.calls.callfakes.leave)
        self.children: list[ChildCall] = []
        self.child_tasks: list[asyncio.Task[None]] = []
        self.children_ended: list[ChildCall] = []

    # -- wiring --

    def _unexpected(self, *args: Any) -> Any:
        raise AssertionError(f"DialRun must use its Signalling, not the services: {args}")

    def _client_sid(self, login: str) -> str | None:
        return "CL" + login.encode().hex().ljust(32, "0")[:32] if login in self.clients else None

    def _bindings(self, sid: str) -> list[Binding]:
        for login, contacts in self.clients.items():
            if self._client_sid(login) == sid:
                return [_binding(sid, contact, n) for n, contact in enumerate(contacts)]
        return []

    def _open_media(self) -> MediaSession:
        if self._free_ports is not None:
            if self._free_ports <= 0:
                raise NoMediaPorts("no RTP port is free")
            self._free_ports -= 1
        media = FakeMedia(f"branch{len(self.opened)}", 30000 + 2 * len(self.opened))
        self.opened.append(media)
        return media

    # -- running --

    def now(self) -> float:
        """Seconds since t=0."""
        return self.clock.monotonic() - self.t0

    def at(self, t: float) -> None:
        """Move the clock to t (no timer runs: see :meth:`run_until`)."""
        self.clock.advance_to(self.t0 + t)

    async def start(self, xml: str, *, url: str = PUBLIC_URL + "/voice") -> DialRun:
        """Parse ``xml`` (its first verb is the Dial), start the DialRun at t=0."""
        node = rcml(xml, url).verbs[0]
        assert isinstance(node, Dial)
        self.node = node
        self.dial = DialRun(
            self.parent,
            node,
            self.services,
            self.sip,
            self.settings,
            self._open_media,
        )
        self.callbacks.dial = self.dial
        self.task = asyncio.get_running_loop().create_task(self.dial.run())
        await self.settle()
        return self.dial

    async def settle(self) -> None:
        """Let the loop run the ready tasks (no time passes)."""
        for _ in range(30):
            await asyncio.sleep(0)

    def timer_at(self) -> float | None:
        """When the Dial's armed timer is due, in seconds since t=0."""
        handle = self.dial._timer
        return None if handle is None else handle.when() - self.t0

    async def run_until(self, t: float) -> None:
        """Fire every Dial timer due by t, in order, moving the clock to each; then to t."""
        target = self.t0 + t
        while (handle := self.dial._timer) is not None and handle.when() <= target:
            self.clock.advance_to(handle.when())
            handle.cancel()  # the loop would have run it now
            self.dial._on_timer()
            await self.settle()
        self.clock.advance_to(target)

    async def result(self) -> DialResult:
        """The Dial's outcome (the run must have ended)."""
        await self.settle()
        assert self.task.done(), "the Dial has not ended"
        return self.task.result()

    async def cleanup(self) -> None:
        for child in self.children:
            child.shutdown()
        if self.child_tasks:
            await self.settle()
            for child_task in self.child_tasks:
                child_task.cancel()
            await asyncio.gather(*self.child_tasks, return_exceptions=True)
        task = getattr(self, "task", None)
        if task is not None and not task.done():
            self.caller_gone_quietly()
            await self.settle()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def caller_gone_quietly(self) -> None:
        with contextlib.suppress(Exception):  # a broken Dial under test: cleanup only
            self.dial.caller_gone()

    # -- the far ends --

    def branch(self, index: int) -> BranchLeg:
        return self.dial.branches[index]

    def media(self, index: int) -> FakeMedia:
        """The media session the branch's INVITE offered."""
        media = self.branch(index).media
        assert isinstance(media, FakeMedia), f"branch {index} opened no media"
        return media

    def sid(self, index: int) -> str:
        return self.dial.branches[index].sid

    def invite(self, index: int) -> Request:
        """The branch's current INVITE (after a LEG-5 retry: the authenticated one)."""
        uac = self.branch(index).uac
        assert uac is not None, f"branch {index} sent no INVITE"
        return uac.invite

    def response(
        self,
        index: int,
        status: int,
        *,
        tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        sdp: bytes | None = None,
    ) -> Response:
        """A response of the called party to the branch's INVITE (To tag ``b<index>``;
        a 2xx carries a Contact and, unless ``sdp`` is given, a usable SDP answer; a
        provisional carries ``sdp`` when given: early media, DIAL-31)."""
        invite = self.invite(index)
        extra = list(headers)
        answer = 200 <= status < 300
        if answer or (status < 200 and sdp is not None):
            extra.append(("Contact", f"<sip:callee@10.0.1.{index + 1}:5060>"))
            extra.append(("Content-Type", "application/sdp"))
        tag = tag if tag is not None else f"b{index}"
        response = make_response(
            invite, status, to_tag=None if status == 100 else tag, headers=extra
        )
        if answer:
            response.body = sdp if sdp is not None else sdp_answer(f"10.0.1.{index + 1}", 40000)
        elif status < 200 and sdp is not None:
            response.body = sdp
        return response

    async def respond(self, index: int, status: int, **kwargs: Any) -> Response:
        """Feed a response of branch ``index`` to the Dial, let the loop settle."""
        response = self.response(index, status, **kwargs)
        self.dial.on_response(self.branch(index), response)
        await self.settle()
        return response

    async def callee_bye(self, index: int) -> None:
        self.dial.callee_bye(self.branch(index))
        await self.settle()

    async def caller_gone(self) -> None:
        self.dial.caller_gone()
        await self.settle()

    # -- reading it back --

    def fired(self, index: int) -> list[Fired]:
        sid = self.sid(index)
        return [f for f in self.callbacks.fired if f.call_sid == sid]

    def progress(self, index: int) -> list[tuple[int, str, dict[str, str]]]:
        """The branch's callbacks as the spec's tables list them: (SequenceNumber,
        CallStatus, {CallDuration, SipResponseCode when present})."""
        out = []
        for f in self.fired(index):
            keys = ("CallDuration", "SipResponseCode")
            extra: dict[str, str] = {k: f.params[k] for k in keys if k in f.params}
            out.append((f.sequence_number, f.params["CallStatus"], extra))
        return out

    def times(self, index: int) -> list[float]:
        """When each of the branch's callbacks occurred (Timestamp), seconds since t=0."""
        return [(f.timestamp - T0) / timedelta(seconds=1) for f in self.fired(index)]

    def row(self, index: int) -> dict[str, Any]:
        return self.records.rows[self.sid(index)]

    def check_invariants(self) -> None:
        """CB-7, CB-8, CB-9 and the Call rows, for every branch of the Dial.

        A branch that left the Dial (API-25) is a call of its own: it must have ended too,
        its ``completed`` comes after the Dial's result (CB-9 is the Dial's, not its) and
        the Dial releases nothing of it.
        """
        assert self.task.done(), "the Dial has not ended"
        for child in self.children:
            assert child.ended, f"{child.sid}: the child call has not ended"
            assert self.children_ended.count(child) == 1, f"{child.sid}: on_end not once"
        for index, branch in enumerate(self.dial.branches):
            noun = branch.target.noun
            fired = self.fired(index)
            row = self.records.rows[branch.sid]
            assert row["end_time"] is not None, f"branch {index}: Call row never finished"
            assert self.records.ops(branch.sid).count("finish") == 1
            if noun.status_callback is None:
                assert fired == []
                continue
            numbers = [f.sequence_number for f in fired]
            assert numbers == list(range(len(fired))), f"branch {index}: SequenceNumbers"
            completed = [f for f in fired if f.last]
            assert len(completed) == 1, f"branch {index}: {len(completed)} completed callbacks"
            assert fired[-1].last, f"branch {index}: a callback after completed"
            if not branch.detached:
                assert not any(f.after_result for f in fired), f"branch {index}: after result"
            final = completed[0].params
            assert final["CallStatus"] == row["status"]
            assert final["CallDuration"] == str(row["duration"])
            assert all(f.method == noun.status_callback_method for f in fired)
        kept = [i for i, b in enumerate(self.dial.branches) if not b.detached]
        assert sorted(self.sip.released) == kept
        assert all(m.closed for m in self.opened), "a branch's media was left open"


def _binding(sid: str, contact: str, n: int) -> Binding:
    uri = parse_uri(contact)
    return Binding(
        client_sid=sid,
        contact=contact,
        call_id=f"reg-{n}",
        cseq=1,
        expires_at=10**9,
        updated_at=0.0,
        transport=(uri.transport or "udp").lower(),
        source_host=uri.host,
        source_port=uri.port or 5060,
    )
