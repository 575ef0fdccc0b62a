"""The interpreter loop: the examples of verbs.md, DOC-6..DOC-13, whispers (WSP-5, WSP-6).

Every test runs on :class:`~dialtone.testing.fake_call.FakeCallContext`: virtual time, no
sleeping, everything the call did recorded as events.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from structlog.testing import capture_logs

from dialtone.rcml import interpreter
from dialtone.rcml.context import CallContext
from dialtone.rcml.interpreter import MAX_SILENT_DOCUMENTS, run_call
from dialtone.rcml.nodes import Say
from dialtone.rcml.outcome import Ending, EndingKind, Outcome
from dialtone.testing.fake_call import FakeCallContext, Response, rcml

APP = "http://app.test"
MENU = (
    '<Response><Gather numDigits="1" action="/menu"><Say>Press 1 for sales.</Say></Gather>'
    "<Say>Goodbye.</Say></Response>"
)


# --- the examples of verbs.md ---------------------------------------------------------------


async def test_v1_menu_press_1_during_the_say() -> None:
    ctx = FakeCallContext(
        documents={f"{APP}/menu": "<Response><Say>Sales.</Say></Response>"}, digits=[(0.3, "1")]
    )
    ending = await run_call(ctx, rcml(MENU))
    assert ending == Ending(EndingKind.COMPLETED)
    assert ctx.events == [
        ("answer",),
        ("play", "say:Press 1 for sales.", False),
        ("fetch", f"{APP}/menu", "POST", {"Digits": "1"}),
        ("play", "say:Sales.", True),
        ("hangup",),
    ]
    assert ctx.now == pytest.approx(0.3 + len("Sales.") * 0.05)


async def test_v1_menu_nothing_for_5_seconds() -> None:
    ctx = FakeCallContext()
    ending = await run_call(ctx, rcml(MENU))
    assert ending.kind is EndingKind.COMPLETED
    assert ctx.events == [
        ("answer",),
        ("play", "say:Press 1 for sales.", True),
        ("timeout", 5),
        ("play", "say:Goodbye.", True),
        ("hangup",),
    ]
    prompt = len("Press 1 for sales.") * 0.05
    assert ctx.now == pytest.approx(prompt + 5 + len("Goodbye.") * 0.05)


async def test_v2_reject_busy_as_first_document() -> None:
    ctx = FakeCallContext()
    ending = await run_call(ctx, rcml('<Response><Reject reason="busy"/></Response>'))
    assert ending == Ending(EndingKind.REJECTED, reason="busy")
    assert ctx.events == [("reject", "busy")]  # never answered
    assert ctx.status == "busy"


# --- documents ------------------------------------------------------------------------------


async def test_doc6_redirect_replaces_the_rest_of_the_document() -> None:
    ctx = FakeCallContext(documents={f"{APP}/next": "<Response><Say>two</Say></Response>"})
    first = rcml("<Response><Say>one</Say><Redirect>/next</Redirect><Say>never</Say></Response>")
    await run_call(ctx, first)
    assert [e[1] for e in ctx.events if e[0] == "play"] == ["say:one", "say:two"]
    assert ("fetch", f"{APP}/next", "POST", {}) in ctx.events


async def test_doc6_gather_action_replaces_the_rest() -> None:
    ctx = FakeCallContext(
        documents={f"{APP}/voice": "<Response><Hangup/></Response>"}, digits=[(0.1, "42#")]
    )
    await run_call(ctx, rcml("<Response><Gather/><Say>not reached</Say></Response>"))
    assert ("fetch", f"{APP}/voice", "POST", {"Digits": "42"}) in ctx.events  # action default
    assert ctx.kinds()[-1] == "hangup"
    assert not any(e[0] == "play" for e in ctx.events)


@pytest.mark.parametrize(
    ("xml", "answered"),
    [
        ("<Say>hi</Say>", True),
        ("<Play>/a.wav</Play>", True),
        ('<Play digits="12"/>', True),
        ("<Gather><Say>hi</Say></Gather>", True),
        ('<Gather timeout="1"/>', True),
        ("<Pause/>", False),
        ("<Redirect>/empty</Redirect>", False),
        ("<Hangup/>", False),
        ("<Reject/>", False),
        ("<Dial>+15551230000</Dial>", False),
    ],
)
async def test_doc7_which_verbs_answer(xml: str, answered: bool) -> None:
    ctx = FakeCallContext(documents={f"{APP}/empty": "<Response/>"})
    await run_call(ctx, rcml(f"<Response>{xml}</Response>"))
    assert (("answer",) in ctx.events) is answered


async def test_doc7_answer_comes_before_the_first_sound() -> None:
    ctx = FakeCallContext()
    await run_call(ctx, rcml("<Response><Pause/><Say>hi</Say></Response>"))
    assert ctx.kinds() == ["pause", "answer", "play", "hangup"]


async def test_end_of_document_hangs_up_answered_and_unanswered_calls() -> None:
    for answered in (True, False):
        ctx = FakeCallContext(answered=answered)
        assert (await run_call(ctx, rcml("<Response/>"))).kind is EndingKind.COMPLETED
        assert ctx.events == [("hangup",)]
        assert ctx.status == ("completed" if answered else "no-answer")


def _self_redirect(url: str) -> dict[str, Response]:
    return {url: f"<Response><Redirect>{url}</Redirect></Response>"}


async def test_doc8_twenty_documents_without_media_is_82020() -> None:
    url = f"{APP}/loop"
    ctx = FakeCallContext(documents=_self_redirect(url))
    ending = await run_call(ctx, rcml(f"<Response><Redirect>{url}</Redirect></Response>"))
    assert ending == Ending(EndingKind.FAILED, code=82020)
    fetches = [e for e in ctx.events if e[0] == "fetch"]
    assert len(fetches) == MAX_SILENT_DOCUMENTS  # documents 1..20 ran, the 21st does not
    assert ctx.events[-2:] == [("error", 82020), ("fail", 82020)]
    assert "redirect loop" in ctx.notifications[-1].message


async def test_doc8_a_say_resets_the_count() -> None:
    count = 0

    def chain(url: str, method: str, extra: Mapping[str, str]) -> Response:
        nonlocal count
        count += 1
        if count == 15:
            return f"<Response><Say>breath</Say><Redirect>{url}</Redirect></Response>"
        if count == 30:
            return "<Response><Hangup/></Response>"
        return f"<Response><Redirect>{url}</Redirect></Response>"

    ctx = FakeCallContext(documents={f"{APP}/loop": chain})
    ending = await run_call(ctx, rcml(f"<Response><Redirect>{APP}/loop</Redirect></Response>"))
    assert ending.kind is EndingKind.COMPLETED
    assert count == 30


async def test_doc8_pause_counts_as_media() -> None:
    url = f"{APP}/loop"
    ctx = FakeCallContext(
        documents={url: f"<Response><Pause/><Redirect>{url}</Redirect></Response>"}, gone_at=60
    )
    ending = await run_call(ctx, rcml(f"<Response><Redirect>{url}</Redirect></Response>"))
    assert ending.kind is EndingKind.GONE  # 60 pauses later, not 82020
    assert 82020 not in ctx.codes()


async def test_failed_fetch_ends_the_call_as_rcml_error() -> None:
    ctx = FakeCallContext(answered=True)
    ending = await run_call(ctx, rcml("<Response><Redirect>/missing</Redirect></Response>"))
    assert ending == Ending(EndingKind.FAILED)
    assert ctx.events[-2:] == [("error", 11200), ("fail", 11200)]  # quotes the fetch's error


async def test_invalid_fetched_document_ends_the_call() -> None:
    ctx = FakeCallContext(documents={f"{APP}/bad": "<Response><Dail/></Response>"})
    ending = await run_call(ctx, rcml("<Response><Redirect>/bad</Redirect></Response>"))
    assert ending.kind is EndingKind.FAILED
    assert ctx.events[-1] == ("fail", 12200)
    assert ctx.status == "failed"  # unanswered: 500 + Warning


async def test_warnings_of_fetched_documents_are_recorded_by_the_context() -> None:
    ctx = FakeCallContext(
        documents={f"{APP}/w": '<Response><Gather hints="x" timeout="1"/></Response>'}
    )
    await run_call(ctx, rcml("<Response><Redirect>/w</Redirect></Response>"))
    assert ctx.codes(log=1) == [12200]


# --- DOC-13, CallGone ----------------------------------------------------------------------


async def _broken(node: Say, ctx: CallContext) -> Outcome:
    raise KeyError("bug")


async def test_doc13_a_verb_raising_is_12400_and_a_clean_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(interpreter.VERBS, Say, _broken)
    ctx = FakeCallContext(call_sid="CAbroken")
    with capture_logs() as logs:
        ending = await run_call(ctx, rcml("<Response><Pause/><Say>hi</Say><Pause/></Response>"))
    assert [(e["event"], e["call_sid"], e["log_level"]) for e in logs] == [
        ("rcml.internal_error", "CAbroken", "error")
    ]
    assert ending == Ending(EndingKind.FAILED, code=12400)
    assert ctx.events == [("pause", 1), ("error", 12400), ("fail", 12400)]
    error = ctx.notifications[0]
    assert (error.element, error.line) == ("Response/Say[1]", 1)
    assert "KeyError" in error.message


async def test_doc13_even_when_fail_itself_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(interpreter.VERBS, Say, _broken)

    async def broken_fail(code: int | None = None, message: str | None = None) -> None:
        raise RuntimeError("also broken")

    ctx = FakeCallContext()
    monkeypatch.setattr(ctx, "fail", broken_fail)
    with capture_logs() as logs:
        ending = await run_call(ctx, rcml("<Response><Say>hi</Say></Response>"))
    assert ending == Ending(EndingKind.FAILED, code=12400)
    assert [e["event"] for e in logs] == ["rcml.internal_error", "rcml.fail_failed"]


async def test_doc13_a_verb_returning_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    async def confused(node: Say, ctx: CallContext) -> Outcome:
        return "next"  # type: ignore[return-value]

    monkeypatch.setitem(interpreter.VERBS, Say, confused)
    ctx = FakeCallContext()
    with capture_logs():
        ending = await run_call(ctx, rcml("<Response><Say>hi</Say></Response>"))
    assert ending == Ending(EndingKind.FAILED, code=12400)


async def test_call_gone_mid_verb_ends_quietly() -> None:
    ctx = FakeCallContext(gone_at=2.5)
    ending = await run_call(
        ctx, rcml('<Response><Pause length="2"/><Pause/><Say>x</Say></Response>')
    )
    assert ending == Ending(EndingKind.GONE)
    assert ctx.events == [("pause", 2), ("pause", 1), ("gone",)]
    assert ctx.notifications == []


async def test_say_loop_0_ends_when_the_call_goes() -> None:
    ctx = FakeCallContext(gone_at=30)
    ending = await run_call(ctx, rcml('<Response><Say loop="0">Hold on.</Say></Response>'))
    assert ending.kind is EndingKind.GONE
    plays = [e for e in ctx.events if e[0] == "play"]
    assert len(plays) == 30 // (len("Hold on.") * 0.05) + 1
    assert plays[-1] == ("play", "say:Hold on.", False)
    assert ctx.now == 30


async def test_dial_without_action_runs_the_next_verb() -> None:
    ctx = FakeCallContext()  # nobody answers (DIAL-42)
    ending = await run_call(
        ctx, rcml("<Response><Dial><Client>bob</Client></Dial><Say>Sorry.</Say></Response>")
    )
    assert ending.kind is EndingKind.COMPLETED
    assert ctx.kinds() == ["dial", "answer", "play", "hangup"]
    assert ctx.notifications == []


# --- whispers (WSP-5, WSP-6, WSP-10) ----------------------------------------------------------

SCREEN = (
    '<Response><Gather numDigits="1" timeout="5" action="/screen-result">'
    "<Say>Call for you. Press 1 to take it.</Say></Gather><Hangup/></Response>"
)


def _screen_result(url: str, method: str, extra: Mapping[str, str]) -> Response:
    return "<Response/>" if extra.get("Digits") == "1" else "<Response><Hangup/></Response>"


def _whisper(
    *,
    digits: list[tuple[float, str]] | None = None,
    gone_at: float | None = None,
    documents: Mapping[str, Response] | None = None,
) -> FakeCallContext:
    """A branch that answered and runs a whisper, with /screen-result scripted."""
    return FakeCallContext(
        answered=True,
        whisper=True,
        documents={f"{APP}/screen-result": _screen_result, **(documents or {})},
        digits=digits or [],
        gone_at=gone_at,
    )


async def test_wsp5_running_out_of_verbs_accepts() -> None:
    ctx = _whisper()
    doc = rcml("<Response><Say>Customer Jane Doe, premium plan.</Say></Response>", whisper=True)
    assert await run_call(ctx, doc) == Ending(EndingKind.ACCEPTED)
    assert ctx.kinds() == ["play"]  # no hangup: the Dial bridges the branch


async def test_wsp5_empty_response_accepts_at_once() -> None:
    ctx = _whisper()
    assert (await run_call(ctx, rcml("<Response/>", whisper=True))).whisper_accepted
    assert ctx.events == []


async def test_wsp5_screening_press_1_accepts() -> None:
    ctx = _whisper(digits=[(1.0, "1")])
    ending = await run_call(ctx, rcml(SCREEN, f"{APP}/screen", whisper=True))
    assert ending.kind is EndingKind.ACCEPTED
    assert ("fetch", f"{APP}/screen-result", "POST", {"Digits": "1"}) in ctx.events


@pytest.mark.parametrize("digits", [[(1.0, "2")], []])
async def test_wsp6_screening_other_key_or_silence_declines(
    digits: list[tuple[float, str]],
) -> None:
    ctx = _whisper(digits=digits)
    ending = await run_call(ctx, rcml(SCREEN, f"{APP}/screen", whisper=True))
    assert ending == Ending(EndingKind.DECLINED)
    assert ("hangup",) not in ctx.events  # the Dial ends the branch


@pytest.mark.parametrize("reason", ["rejected", "busy"])
async def test_wsp6_reject_in_a_whisper_declines(reason: str) -> None:
    ctx = _whisper()
    doc = rcml(f'<Response><Reject reason="{reason}"/></Response>', whisper=True)
    assert (await run_call(ctx, doc)).kind is EndingKind.DECLINED
    assert ctx.events == []


async def test_wsp6_called_party_hangs_up_during_the_whisper() -> None:
    ctx = _whisper(gone_at=0.5)
    ending = await run_call(ctx, rcml(SCREEN, f"{APP}/screen", whisper=True))
    assert ending.kind is EndingKind.GONE


async def test_whisper_failure_is_reported_not_acted_upon() -> None:
    ctx = _whisper(documents={f"{APP}/x": "<Response><Dial>+1555</Dial></Response>"})
    doc = rcml("<Response><Redirect>/x</Redirect></Response>", f"{APP}/screen", whisper=True)
    ending = await run_call(ctx, doc)
    assert ending == Ending(EndingKind.FAILED)
    assert ctx.codes() == [13201]
    assert not any(e[0] == "fail" for e in ctx.events)  # WSP-7: the Dial BYEs with "failed"


async def test_whisper_flag_defaults_to_the_context() -> None:
    ctx = _whisper()
    assert (await run_call(ctx, rcml("<Response/>"), whisper=None)).kind is EndingKind.ACCEPTED
    ctx = FakeCallContext(answered=True)
    assert (await run_call(ctx, rcml("<Response/>"), whisper=True)).kind is EndingKind.ACCEPTED
