"""Each verb on its own (VRB-1..VRB-8), and every Gather rule of VRB-4/VRB-5."""

from __future__ import annotations

import shutil
import struct

import pytest

from dialtone.media.sources import Source
from dialtone.media.tts import SpeechEngine
from dialtone.rcml.context import CallGone, DialResult
from dialtone.rcml.interpreter import run_call
from dialtone.rcml.nodes import Dial, Gather, Hangup, Pause, Play, Redirect, Reject, Say, Verb
from dialtone.rcml.outcome import (
    FAILED,
    NEXT,
    Declined,
    HungUp,
    Outcome,
    Rejected,
    Replace,
)
from dialtone.rcml.verbs import (
    dial,
    gather,
    hangup,
    pause,
    play,
    play_looped,
    redirect,
    reject,
    say,
)
from dialtone.testing.fake_call import FakeCallContext, rcml

APP = "http://app.test"
DONE = "<Response><Hangup/></Response>"


def node(xml: str) -> Verb:
    """The first verb of ``<Response>xml</Response>`` fetched from /voice."""
    return rcml(f"<Response>{xml}</Response>").verbs[0]


def wav(pcm: bytes, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV file."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data"
    body += struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


class SpeechRecorder(FakeCallContext):
    """A fake that also remembers the arguments of every ``speech`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.spoken: list[tuple[str, str, str]] = []

    async def speech(self, text: str, voice: str, language: str) -> Source:
        self.spoken.append((text, voice, language))
        return await super().speech(text, voice, language)


# --- Say -----------------------------------------------------------------------------------


async def test_say_answers_then_speaks_with_voice_and_language() -> None:
    ctx = SpeechRecorder()
    verb = node('<Say voice="woman" language="fr-FR" loop="3">Bonjour</Say>')
    assert isinstance(verb, Say)
    assert await say.run(verb, ctx) == NEXT
    assert ctx.kinds() == ["answer", "play", "play", "play"]
    assert ctx.spoken == [("Bonjour", "woman", "fr-FR")] * 3  # a fresh source per pass


async def test_say_on_an_answered_call_does_not_answer_again() -> None:
    ctx = FakeCallContext(answered=True)
    verb = node("<Say>hi</Say>")
    assert isinstance(verb, Say)
    await say.run(verb, ctx)
    assert ctx.kinds() == ["play"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng")
async def test_say_with_real_speech_and_a_mapped_language() -> None:
    ctx = FakeCallContext(speech=SpeechEngine())
    first = rcml('<Response><Say language="de-DE">Hallo</Say></Response>')
    await run_call(ctx, first)
    assert ctx.codes(log=1) == [13511]
    assert "'de' is used" in ctx.notifications[0].message
    assert 0.2 < ctx.now < 2


# --- Play ----------------------------------------------------------------------------------


async def test_play_loops_the_audio() -> None:
    ctx = FakeCallContext(audio={f"{APP}/a.wav": 2.0})
    verb = node('<Play loop="2">/a.wav</Play>')
    assert isinstance(verb, Play)
    assert await play.run(verb, ctx) == NEXT
    played = ("play", f"play:{APP}/a.wav", True)
    assert ctx.events == [("answer",), played, played]
    assert ctx.now == 4.0


async def test_play_real_wav_bytes() -> None:
    ctx = FakeCallContext(audio={f"{APP}/a.wav": wav(b"\x01\x00" * 8000)})
    verb = node("<Play>/a.wav</Play>")
    assert isinstance(verb, Play)
    await play.run(verb, ctx)
    assert ctx.now == 1.0


@pytest.mark.parametrize(("audio", "code"), [(None, 11200), (b"not a wav", 13420)])
async def test_play_failure_is_skipped_with_the_warning(audio: bytes | None, code: int) -> None:
    ctx = FakeCallContext(audio={f"{APP}/a.wav": audio})
    first = rcml("<Response><Play>/a.wav</Play><Say>next</Say></Response>")
    await run_call(ctx, first)
    assert ctx.codes(log=1) == [code]
    assert [e for e in ctx.events if e[0] == "play"] == [("play", "say:next", True)]


async def test_play_digits_are_sent_once_after_answering() -> None:
    ctx = FakeCallContext()
    verb = node('<Play digits="1w2#" loop="3"/>')
    assert isinstance(verb, Play)
    assert await play.run(verb, ctx) == NEXT
    assert ctx.events == [("answer",), ("send_digits", "1w2#")]
    assert ctx.now == pytest.approx(0.2 + 0.5 + 0.2 + 0.2)


async def test_play_loop_0_repeats_until_the_call_goes() -> None:
    ctx = FakeCallContext(gone_at=10.5)
    verb = node('<Play loop="0">/a.wav</Play>')
    assert isinstance(verb, Play)
    with pytest.raises(CallGone):
        await play.run(verb, ctx)
    assert [e[2] for e in ctx.events if e[0] == "play"] == [True] * 10 + [False]


async def test_play_loop_0_of_empty_audio_does_not_spin() -> None:
    ctx = FakeCallContext(audio={f"{APP}/empty.wav": wav(b"")})
    verb = node('<Play loop="0">/empty.wav</Play>')
    assert isinstance(verb, Play)
    assert await play.run(verb, ctx) == NEXT
    assert [e for e in ctx.events if e[0] == "play"] == [("play", f"play:{APP}/empty.wav", True)]


async def test_play_looped_without_a_source() -> None:
    ctx = FakeCallContext()

    async def nothing() -> Source | None:
        return None

    assert await play_looped(ctx, nothing, 0) is None


# --- Pause ---------------------------------------------------------------------------------


async def test_pause_does_not_answer() -> None:
    ctx = FakeCallContext()
    verb = node('<Pause length="7"/>')
    assert isinstance(verb, Pause)
    assert await pause.run(verb, ctx) == NEXT
    assert ctx.events == [("pause", 7)]
    assert ctx.now == 7
    assert not ctx.answered


# --- Gather --------------------------------------------------------------------------------


async def run_gather(
    xml: str, digits: list[tuple[float, str]], *, response: str | None = DONE
) -> tuple[Outcome, FakeCallContext]:
    """Run one Gather whose action is /g, with ``digits`` scripted."""
    ctx = FakeCallContext(documents={f"{APP}/g": response}, digits=digits)
    verb = node(xml.replace("<Gather", '<Gather action="/g"', 1))
    assert isinstance(verb, Gather)
    return await gather.run(verb, ctx), ctx


def submitted(ctx: FakeCallContext) -> list[dict[str, str]]:
    """The parameters of every request to the action."""
    return [e[3] for e in ctx.events if e[0] == "fetch"]  # type: ignore[misc]


async def test_gather_submits_at_num_digits() -> None:
    outcome, ctx = await run_gather('<Gather numDigits="2"/>', [(1, "1"), (2, "2"), (3, "3")])
    assert isinstance(outcome, Replace)
    assert outcome.document.url == f"{APP}/g"
    assert submitted(ctx) == [{"Digits": "12"}]
    assert ctx.now == 2  # at once, without waiting for the timer


async def test_gather_finish_on_key_is_not_included() -> None:
    _, ctx = await run_gather("<Gather/>", [(1, "1"), (1.5, "2"), (2, "#")])
    assert submitted(ctx) == [{"Digits": "12"}]
    assert ctx.now == 2


async def test_gather_custom_finish_on_key() -> None:
    _, ctx = await run_gather('<Gather finishOnKey="*"/>', [(1, "#"), (2, "*")])
    assert submitted(ctx) == [{"Digits": "#"}]


async def test_gather_empty_finish_on_key_means_no_key() -> None:
    _, ctx = await run_gather('<Gather finishOnKey=""/>', [(1, "1"), (2, "#")])
    assert submitted(ctx) == [{"Digits": "1#"}]
    assert ctx.now == 7  # the timer, 5 s after the last digit


async def test_gather_timer_restarts_after_each_digit() -> None:
    _, ctx = await run_gather('<Gather timeout="5"/>', [(4, "1"), (8, "2"), (12, "3"), (18, "4")])
    assert submitted(ctx) == [{"Digits": "123"}]
    assert ctx.now == 17


async def test_gather_timer_starts_when_the_prompts_end() -> None:
    _, ctx = await run_gather('<Gather><Pause length="10"/></Gather>', [(14, "9")])
    assert ("play", "silence", True) in ctx.events
    assert submitted(ctx) == [{"Digits": "9"}]


async def test_gather_first_digit_stops_the_prompts_and_counts() -> None:
    outcome, ctx = await run_gather(
        '<Gather numDigits="2"><Say>first prompt</Say><Play>/b.wav</Play><Pause/></Gather>',
        [(0.2, "4"), (0.4, "2")],
    )
    assert isinstance(outcome, Replace)
    assert [e for e in ctx.events if e[0] == "play"] == [("play", "say:first prompt", False)]
    assert submitted(ctx) == [{"Digits": "42"}]


async def test_gather_pause_and_play_prompts_are_interruptible() -> None:
    _, ctx = await run_gather(
        '<Gather numDigits="1"><Say>a</Say><Pause length="3"/><Play>/b.wav</Play></Gather>',
        [(1.0, "7")],
    )
    assert [e for e in ctx.events if e[0] == "play"] == [
        ("play", "say:a", True),
        ("play", "silence", False),
    ]
    assert ctx.now == 1.0


async def test_gather_forgets_digits_pressed_before_it() -> None:
    ctx = FakeCallContext(digits=[(0.5, "1")])
    first = rcml('<Response><Pause/><Gather timeout="1"/></Response>')
    await run_call(ctx, first)
    assert not any(e[0] == "fetch" for e in ctx.events)


async def test_gather_without_digits_runs_the_next_verb() -> None:
    outcome, ctx = await run_gather("<Gather/>", [])
    assert outcome == NEXT
    assert submitted(ctx) == []
    assert ctx.events == [("answer",), ("timeout", 5)]


async def test_gather_finish_on_key_alone_is_no_input() -> None:
    outcome, ctx = await run_gather("<Gather/>", [(1, "#")])
    assert outcome == NEXT
    assert ctx.now == 1


@pytest.mark.parametrize("digits", [[], [(1.0, "#")]])
async def test_gather_action_on_empty_result(digits: list[tuple[float, str]]) -> None:
    outcome, ctx = await run_gather('<Gather actionOnEmptyResult="true"/>', digits)
    assert isinstance(outcome, Replace)
    assert submitted(ctx) == [{}]  # without Digits


async def test_gather_method_get() -> None:
    _, ctx = await run_gather('<Gather method="GET" numDigits="1"/>', [(1, "5")])
    assert [e[2] for e in ctx.events if e[0] == "fetch"] == ["GET"]


async def test_gather_failed_action_fails() -> None:
    outcome, ctx = await run_gather('<Gather numDigits="1"/>', [(1, "5")], response=None)
    assert outcome == FAILED
    assert ctx.codes() == [11200]


async def test_gather_digits_during_an_unanswered_call_are_after_answering() -> None:
    _, ctx = await run_gather('<Gather numDigits="1"><Say>x</Say></Gather>', [(0.01, "3")])
    assert ctx.kinds()[:2] == ["answer", "play"]


# --- Hangup, Reject ----------------------------------------------------------------------------


async def test_hangup() -> None:
    verb = node("<Hangup/>")
    assert isinstance(verb, Hangup)
    ctx = FakeCallContext(answered=True)
    assert await hangup.run(verb, ctx) == HungUp()
    assert ctx.events == [("hangup",)]
    ctx = FakeCallContext(answered=True, whisper=True)
    assert await hangup.run(verb, ctx) == Declined("Hangup")
    assert ctx.events == []


@pytest.mark.parametrize("reason", ["rejected", "busy"])
async def test_reject_an_unanswered_call(reason: str) -> None:
    verb = node(f'<Reject reason="{reason}"/>')
    assert isinstance(verb, Reject)
    ctx = FakeCallContext()
    assert await reject.run(verb, ctx) == Rejected(reason)  # type: ignore[arg-type]
    assert ctx.events == [("reject", reason)]


async def test_reject_on_an_answered_call_is_hangup_with_warning() -> None:
    verb = node('<Reject reason="busy"/>')
    assert isinstance(verb, Reject)
    ctx = FakeCallContext(answered=True)
    assert await reject.run(verb, ctx) == HungUp()
    assert ctx.events == [("warn", 12200), ("hangup",)]
    assert ctx.notifications[0].element == "Response/Reject[1]"


async def test_reject_in_a_whisper_declines() -> None:
    verb = node("<Reject/>")
    assert isinstance(verb, Reject)
    ctx = FakeCallContext(answered=True, whisper=True)
    assert await reject.run(verb, ctx) == Declined("Reject")
    assert ctx.events == []


# --- Redirect, Dial ----------------------------------------------------------------------------


async def test_redirect_fetches_with_its_method_and_does_not_answer() -> None:
    verb = node('<Redirect method="GET">/next?x=1</Redirect>')
    assert isinstance(verb, Redirect)
    ctx = FakeCallContext(documents={f"{APP}/next?x=1": DONE})
    outcome = await redirect.run(verb, ctx)
    assert isinstance(outcome, Replace)
    assert ctx.events == [("fetch", f"{APP}/next?x=1", "GET", {})]


async def test_redirect_failure_has_no_fallback() -> None:
    verb = node("<Redirect>/gone</Redirect>")
    assert isinstance(verb, Redirect)
    ctx = FakeCallContext()
    assert await redirect.run(verb, ctx) == FAILED
    assert ctx.kinds() == ["fetch", "error"]


def _dialled(status: str, *, bridged: bool = False, gone: bool = False) -> DialResult:
    return DialResult(status, "CA" + "b" * 32, 60 if bridged else 0, 4, bridged, gone)  # type: ignore[arg-type]


async def test_dial_without_action_goes_on_with_the_next_verb() -> None:
    verb = node("<Dial><Number>+15551230000</Number><Client>bob</Client></Dial>")
    assert isinstance(verb, Dial)
    ctx = FakeCallContext(dial=lambda n: _dialled("no-answer"))
    assert await dial.run(verb, ctx) == NEXT
    assert ctx.events == [("dial", 2)]


async def test_dial_action_replaces_the_document_with_the_dial_parameters() -> None:
    verb = node('<Dial action="/done" method="GET"><Client>bob</Client></Dial>')
    assert isinstance(verb, Dial)
    ctx = FakeCallContext(
        documents={f"{APP}/done": DONE}, dial=lambda n: _dialled("completed", bridged=True)
    )
    outcome = await dial.run(verb, ctx)
    assert isinstance(outcome, Replace)
    params = {
        "DialCallStatus": "completed",
        "DialCallSid": "CA" + "b" * 32,
        "DialCallDuration": "60",
        "DialRingDuration": "4",
        "DialBridged": "true",
    }
    assert ctx.events == [("dial", 1), ("fetch", f"{APP}/done", "GET", params)]


async def test_dial_action_is_requested_but_discarded_when_the_caller_is_gone() -> None:
    verb = node('<Dial action="/done"><Client>bob</Client></Dial>')
    assert isinstance(verb, Dial)
    ctx = FakeCallContext(
        documents={f"{APP}/done": DONE}, dial=lambda n: _dialled("canceled", gone=True)
    )
    assert isinstance(await dial.run(verb, ctx), HungUp)  # DIAL-43
    assert [e[0] for e in ctx.events] == ["dial", "fetch"]


async def test_dial_action_failure_is_an_rcml_error() -> None:
    verb = node('<Dial action="/missing"><Client>bob</Client></Dial>')
    assert isinstance(verb, Dial)
    ctx = FakeCallContext(dial=lambda n: _dialled("busy"))
    assert await dial.run(verb, ctx) == FAILED


async def test_dial_record_is_not_supported_yet() -> None:
    verb = node('<Dial record="true"><Client>bob</Client></Dial>')
    assert isinstance(verb, Dial)
    ctx = FakeCallContext()
    assert await dial.run(verb, ctx) == NEXT
    assert ctx.codes(log=1) == [12200]  # DIAL-38 interim
