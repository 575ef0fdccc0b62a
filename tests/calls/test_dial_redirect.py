"""API-25 during a `<Dial>`: redirecting the parent, a bridged branch, a whispering branch.

Parent tests run a real :class:`~dialtone.calls.inbound.InboundCall` whose voice URL
answers a ``<Dial>`` (:class:`~tests.calls.callfakes.CallTest`): a redirect ends the Dial at
once (CANCEL to ringing branches, BYE to a whispering one or the winner), the action URL is
not requested, and the caller runs the new document, which decides answering as usual.

Branch tests drive the Dial alone (``DialTest``) and take an answered branch out of it with
:func:`~tests.calls.callfakes.leave`, as the call manager does: the branch becomes a call of
its own (same CallSid, its dialog and media) running the new RCML, and counts for the Dial
as the callee hanging up (winner) or declining (whisper).  A ringing branch is refused.

Every scenario ends with the invariants of ``test_dial_run``: one ``completed`` per branch,
SequenceNumbers without gaps, every row finished once, every media session closed.  No test
sleeps: time moves with the fake clock only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from dialtone.calls.control import CallControlError
from dialtone.calls.dial import DialRun
from dialtone.rcml.context import DialResult
from dialtone.rcml.nodes import Dial
from dialtone.testing.fake_call import rcml
from tests.calls.callfakes import NUMBER, CallTest, document, leave
from tests.calls.dialfakes import ACCOUNT, CALLER, PARENT, DialTest, Hold, sdp_answer

ALL = 'statusCallback="/cb" statusCallbackEvent="initiated ringing answered completed"'
CLIENTS = {"alice": ["sip:alice@10.0.0.11:5062"], "bob": ["sip:bob@10.0.0.12:5062"]}
ALICE, BOB = 0, 1
AFTER = "http://app.test/after"
BYE_DOC = "<Response><Say>Goodbye</Say><Hangup/></Response>"
HOLD_DOC = "<Response><Say>One moment</Say><Redirect>/hold</Redirect></Response>"

Progress = tuple[int, str, dict[str, str]]


def two_clients(alice: str = "", action: str = ' action="/dial-done"') -> str:
    return (
        f'<Response><Dial{action} timeout="20">'
        f"<Client {ALL}{alice}>alice</Client><Client {ALL}>bob</Client>"
        "</Dial><Say>not reached</Say></Response>"
    )


def initiated() -> Progress:
    return (0, "initiated", {})


def ringing() -> Progress:
    return (1, "ringing", {})


def done(seq: int, status: str, duration: int, code: int | None) -> Progress:
    extra = {"CallDuration": str(duration)}
    if code is not None:
        extra["SipResponseCode"] = str(code)
    return (seq, status, extra)


@pytest.fixture
async def made() -> AsyncIterator[list[DialTest]]:
    tests: list[DialTest] = []
    yield tests
    for test in tests:
        await test.cleanup()


@pytest.fixture
def call_test(made: list[DialTest]) -> Callable[..., CallTest]:
    def factory(**kwargs: object) -> CallTest:
        kwargs.setdefault("clients", CLIENTS)
        test = CallTest(**kwargs)  # type: ignore[arg-type]
        made.append(test)
        return test

    return factory


@pytest.fixture
def dial_test(made: list[DialTest]) -> Callable[..., DialTest]:
    def factory(**kwargs: object) -> DialTest:
        kwargs.setdefault("clients", CLIENTS)
        test = DialTest(**kwargs)  # type: ignore[arg-type]
        made.append(test)
        return test

    return factory


async def ringing_call(h: CallTest, **documents: str | Hold | None) -> None:
    """The caller dials; both branches ring from t=1."""
    await h.start_call(two_clients(), **documents)
    assert h.caller == ["180+sdp"]  # DIAL-30 (the first 180 is the manager's, DOC-1)
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)


def voice_params(h: CallTest, path: str, status: str) -> None:
    """The parent's REQ-1 parameters on the request to ``path`` (no Dial… ones)."""
    assert h.fetch_params(path) == {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": PARENT,
        "CallStatus": status,
        "Called": NUMBER,
        "Caller": CALLER,
        "Direction": "inbound",
        "From": CALLER,
        "To": NUMBER,
    }


# ------------------------------------------------------------------- the parent (caller)


async def test_redirect_of_the_ringing_parent_cancels_every_branch(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    await ringing_call(h, after=BYE_DOC, dial_done="<Response><Say>no</Say></Response>")
    h.at(3)
    await h.redirect(AFTER, method="GET")
    # at once: CANCEL to both (DIAL-23), ringback stopped, the new document fetched with GET
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"] and h.sip.kinds(BOB) == ["INVITE", "CANCEL"]
    assert h.dial._ringback is None and h.parent_media._playback is None
    assert h.fetched() == [("/voice", "POST"), ("/after", "GET")]  # never /dial-done
    voice_params(h, "/after", "ringing")
    # the caller was never answered: the new document's <Say> answers it (DOC-7), <Hangup> BYE
    assert h.caller == ["180+sdp", "200", "BYE"]
    assert h.speech.spoken == ["Goodbye"]
    assert not h.task.done()  # the cancelled branches end at their 487 (DIAL-23)
    assert not h.call_task.done()  # ... and the caller's call waits for them
    h.at(3.2)
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    result = await h.result()
    assert result.status == "canceled" and not result.bridged
    await h.call_ended()
    for branch in (ALICE, BOB):
        assert h.progress(branch) == [initiated(), ringing(), done(2, "canceled", 0, 487)]
        assert h.row(branch)["status"] == "canceled"
    assert h.times(ALICE)[-1] == 3.2
    assert h.fetched() == [("/voice", "POST"), ("/after", "GET")]
    assert [e for e in h.parent_media.events if e[0] == "play"] == [
        ("play", "ToneSource"),
        ("play", "CountingSource"),
    ]
    h.check_call("completed")
    h.check_invariants()


async def test_redirect_before_any_provisional_marks_the_branches_at_once(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    await h.start_call(two_clients(), after=BYE_DOC)
    h.at(1)
    await h.redirect(AFTER)
    result = await h.result()  # DIAL-23: no response yet: marked canceled at once
    assert result.status == "canceled"
    assert h.sip.kinds(ALICE) == ["INVITE"] and h.sip.kinds(BOB) == ["INVITE"]
    for branch in (ALICE, BOB):
        assert h.progress(branch) == [initiated(), done(1, "canceled", 0, None)]
    await h.respond(ALICE, 180)  # rule 6: the deferred CANCEL goes with the first 1xx
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"]
    await h.call_ended()
    assert h.caller == ["180+sdp", "200", "BYE"]
    h.check_call("completed")
    h.check_invariants()


async def test_redirect_of_the_bridged_parent_sends_the_winner_bye(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    await ringing_call(h, dial_done="<Response><Say>no</Say></Response>")
    h.at(4)
    await h.respond(BOB, 200)
    await h.respond(ALICE, 487)
    assert h.caller == ["180+sdp", "200"] and h.parent_media.peer is h.media(BOB)
    h.at(10)
    await h.redirect(BYE_DOC)
    # at once: BYE to the winner (completed), the bridge is gone, the new document plays
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    assert h.progress(BOB)[-1] == done(3, "completed", 6, 200)
    assert h.parent_media.peer is None
    events = h.parent_media.events
    assert events.index(("unbridge", h.media(BOB).name)) < events.index(("play", "CountingSource"))
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 6, 4, True, True)  # read by nobody
    await h.call_ended()
    assert h.fetched() == [("/voice", "POST")]  # Twiml: nothing fetched; no action request
    assert h.caller == ["180+sdp", "200", "BYE"]
    assert h.speech.spoken == ["Goodbye"]
    assert h.progress(ALICE) == [initiated(), ringing(), done(2, "canceled", 0, 487)]
    h.check_call("completed")
    h.check_invariants()


async def test_redirect_of_the_parent_stops_a_whisper_with_bye(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    h.webhooks.documents["http://app.test/screen"] = Hold("<Response/>")
    await h.start_call(two_clients(alice=' url="/screen"'), after=BYE_DOC)
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(2)
    await h.respond(ALICE, 200)  # the whisper request is pending
    whisper = h.branch(ALICE).whisper_task
    assert whisper is not None and not whisper.done()
    h.at(5)
    await h.redirect(AFTER)
    assert whisper.done()  # WSP-9: the whisper stops at once
    assert h.sip.kinds(ALICE) == ["INVITE", "ACK", "BYE"]
    assert h.sip.kinds(BOB) == ["INVITE", "CANCEL"]
    assert h.progress(ALICE)[-1] == done(3, "completed", 3, 200)
    await h.respond(BOB, 487)
    await h.result()
    await h.call_ended()
    assert h.progress(BOB) == [initiated(), ringing(), done(2, "canceled", 0, 487)]
    assert h.caller == ["180+sdp", "200", "BYE"]
    assert h.parent_media.peer is None  # the whisper never reached the caller
    h.check_call("completed")
    h.check_invariants()


async def test_race_redirect_then_the_winners_200_crossing_the_cancel(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    await ringing_call(h, after=BYE_DOC)
    h.at(4)
    await h.redirect(AFTER, settle=False)
    h.dial.on_response(h.branch(BOB), h.response(BOB, 200))  # processed after the redirect
    await h.settle()
    assert h.sip.kinds(BOB) == ["INVITE", "CANCEL", "ACK", "BYE"]  # DIAL-24
    assert not any(e[0] == "bridge" for e in h.parent_media.events)
    assert h.caller == ["180+sdp", "200", "BYE"]  # answered by the new document's Say only
    await h.respond(ALICE, 487)
    await h.result()
    await h.call_ended()
    assert h.progress(BOB) == [initiated(), ringing(), done(2, "canceled", 0, 200)]
    h.check_call("completed")
    h.check_invariants()


async def test_race_the_winners_200_then_the_redirect(call_test: Callable[..., CallTest]) -> None:
    h = call_test()
    await ringing_call(h, after=BYE_DOC)
    h.at(4)
    h.dial.on_response(h.branch(BOB), h.response(BOB, 200))
    await h.redirect(AFTER)  # the same loop step: the bridge was made, now it ends
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"]
    assert h.caller[:2] == ["180+sdp", "200"]  # the Dial answered the caller (DIAL-33)
    await h.respond(ALICE, 487)
    await h.result()
    await h.call_ended()
    assert h.caller == ["180+sdp", "200", "BYE"]  # answered once
    assert h.progress(BOB)[-2:] == [(2, "in-progress", {}), done(3, "completed", 0, 200)]
    h.check_call("completed")
    h.check_invariants()


async def test_redirect_twice_the_last_one_wins(call_test: Callable[..., CallTest]) -> None:
    h = call_test()
    await ringing_call(h, first="<Response><Say>first</Say></Response>")
    h.at(3)
    await h.redirect("http://app.test/first", settle=False)
    await h.redirect(BYE_DOC)  # before the interpreter restarted
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"] and h.sip.kinds(BOB) == ["INVITE", "CANCEL"]
    assert h.fetched() == [("/voice", "POST")]
    assert h.speech.spoken == ["Goodbye"]
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    await h.call_ended()
    h.check_call("completed")
    h.check_invariants()


async def test_a_second_redirect_replaces_the_document_the_first_started(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    h.webhooks.documents["http://app.test/hold"] = Hold("<Response><Say>held</Say></Response>")
    await ringing_call(h)
    h.at(3)
    await h.redirect(HOLD_DOC)
    assert h.fetched()[-1] == ("/hold", "POST")
    await h.redirect(BYE_DOC)
    assert h.speech.spoken == ["One moment", "Goodbye"]
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"]  # one CANCEL each
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    await h.call_ended()
    h.check_call("completed")
    h.check_invariants()


async def test_redirect_after_the_dial_ended_replaces_the_action_document(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    action = Hold("<Response><Say>not played</Say></Response>")
    await ringing_call(h, dial_done=action)
    h.at(4)
    await h.respond(BOB, 200)
    await h.respond(ALICE, 487)
    h.at(10)
    await h.callee_bye(BOB)
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 6, 4, True, False)
    assert h.fetched()[-1] == ("/dial-done", "POST")  # DIAL-41, pending
    assert h.fetch_params("/dial-done")["DialCallStatus"] == "completed"
    h.at(11)
    await h.redirect(BYE_DOC)
    action.release()
    await h.call_ended()
    assert h.speech.spoken == ["Goodbye"]  # the action's RCML never ran
    assert h.caller == ["180+sdp", "200", "BYE"]
    h.check_call("completed")
    h.check_invariants()


async def test_redirect_of_an_unanswered_parent_to_reject_gives_486(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    await ringing_call(h)
    await h.redirect('<Response><Reject reason="busy"/></Response>')
    assert h.caller == ["180+sdp", "486"]  # never answered: the first verb decides (DOC-7)
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    await h.call_ended()
    h.check_call("busy")
    h.check_invariants()


async def test_the_caller_hangs_up_while_the_left_dial_waits_for_its_487s(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test()
    h.webhooks.documents["http://app.test/hold"] = Hold()
    await ringing_call(h)
    h.at(3)
    await h.redirect("<Response><Redirect>/hold</Redirect></Response>")
    h.at(3.5)
    h.call.caller_cancelled()  # the caller, still unanswered, CANCELs: 487
    await h.settle()
    assert h.caller == ["180+sdp", "487"]
    assert not h.call_task.done()  # waiting for the left Dial's branches
    assert h.records.rows[PARENT]["status"] == "canceled"
    h.at(4)
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    await h.call_ended()
    assert h.sip.kinds(ALICE) == ["INVITE", "CANCEL"]  # nothing more for the branches
    h.check_call("canceled")
    h.check_invariants()


async def test_a_second_dial_after_the_redirect_runs_on_its_own(
    call_test: Callable[..., CallTest],
) -> None:
    h = call_test(clients={**CLIENTS, "carol": ["sip:carol@10.0.0.13:5062"]})
    await ringing_call(h)
    first = h.dial
    h.at(3)
    await h.redirect(f"<Response><Dial><Client {ALL}>carol</Client></Dial></Response>")
    second = h.dial
    assert second is not first and first.left
    assert h.caller == ["180+sdp", "180+sdp"]  # DIAL-30 again, still unanswered
    carol = second.branches[0]
    h.at(4)
    await h.respond(0, 200)  # carol answers the new Dial
    assert h.caller[-1] == "200" and h.parent_media.peer is carol.media
    # the first Dial's 487s arrive late: they touch nothing of the caller's media
    h.dial = first
    await h.respond(ALICE, 487)
    await h.respond(BOB, 487)
    h.dial = second
    assert h.parent_media.peer is carol.media
    h.at(9)
    await h.callee_bye(0)
    await h.call_ended()
    h.check_call("completed")
    for branch in [*first.branches, *second.branches]:
        completed = [f for f in h.callbacks.fired if f.call_sid == branch.sid and f.last]
        assert len(completed) == 1, branch.sid
        assert h.records.ops(branch.sid).count("finish") == 1
    assert [f.params["CallStatus"] for f in h.callbacks.fired if f.last] == [
        "canceled",
        "canceled",
        "completed",
    ]
    assert all(media.closed for media in h.opened)


# ------------------------------------------------------------------- a branch (child call)


def child_params(h: DialTest, index: int, path: str) -> None:
    """REQ-1 of a child call's request: still the branch (CallSid, ParentCallSid, To)."""
    (fetch,) = [f for f in h.webhooks.fetches if f.url == "http://app.test" + path]
    to = ["client:alice", "client:bob"][index]
    assert fetch.params == {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": h.sid(index),
        "CallStatus": "in-progress",
        "Called": to,
        "Caller": CALLER,
        "Direction": "outbound-dial",
        "From": CALLER,
        "ParentCallSid": PARENT,
        "To": to,
    }


async def bridged_bob(h: DialTest) -> None:
    """Both ring from t=1; bob answers at t=4 and is bridged; alice's 487 comes."""
    await h.start(two_clients())
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(4)
    await h.respond(BOB, 200)
    await h.respond(ALICE, 487)
    assert h.parent_media.peer is h.media(BOB)


async def test_redirect_of_the_bridged_winner_takes_it_out_of_the_dial(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    hold = Hold()
    h.webhooks.documents["http://app.test/hold"] = hold
    await bridged_bob(h)
    h.at(10)
    child = await leave(h, BOB, HOLD_DOC)
    # the Dial ends at once as if bob had hung up (DIAL-44): its action/next verb may run
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 6, 4, True, False)
    assert h.parent_media.peer is None and h.media(BOB).peer is None
    assert h.sip.kinds(BOB) == ["INVITE", "ACK"]  # no BYE: bob stays on the line
    assert len(h.fired(BOB)) == 3  # its completed is the child call's, when it ends
    assert h.row(BOB)["end_time"] is None and h.row(BOB)["status"] == "in-progress"
    assert not h.media(BOB).closed
    # bob now runs the new RCML on his own leg, as the same call
    assert child.sid == h.sid(BOB) and child.answered and not child.whisper
    assert h.speech.spoken == ["One moment"]
    assert h.media(BOB).events[-1] == ("play", "CountingSource")
    child_params(h, BOB, "/hold")
    # ... until he hangs up at t=30
    h.at(30)
    child.callee_bye()
    await h.settle()
    assert h.sip.kinds(BOB) == ["INVITE", "ACK"]
    assert h.progress(BOB) == [
        initiated(),
        ringing(),
        (2, "in-progress", {}),
        done(3, "completed", 26, 200),
    ]
    assert h.times(BOB)[-1] == 30
    assert h.row(BOB)["status"] == "completed" and h.row(BOB)["duration"] == 26
    assert h.media(BOB).closed
    h.check_invariants()


async def test_the_child_hangs_up_itself_and_can_be_ended_over_the_api(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    await bridged_bob(h)
    h.at(10)
    child = await leave(h, BOB, BYE_DOC)
    assert h.speech.spoken == ["Goodbye"]
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]  # <Hangup/>: BYE from the child
    assert child.ended and h.progress(BOB)[-1] == done(3, "completed", 6, 200)
    child.end_by_api("completed")  # already over: nothing more
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    await h.result()
    h.check_invariants()


async def test_status_on_a_child_canceled_is_ignored_completed_hangs_up(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    h.webhooks.documents["http://app.test/hold"] = Hold()
    await bridged_bob(h)
    child = await leave(h, BOB, HOLD_DOC)
    child.end_by_api("canceled")  # API-24: an answered call is left alone
    await h.settle()
    assert not child.ended and h.sip.kinds(BOB) == ["INVITE", "ACK"]
    h.at(12)
    child.end_by_api("completed")
    await h.settle()
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    assert h.progress(BOB)[-1] == done(3, "completed", 8, 200)
    await h.result()
    h.check_invariants()


async def test_the_child_can_be_redirected_again(dial_test: Callable[..., DialTest]) -> None:
    h = dial_test()
    h.webhooks.documents["http://app.test/hold"] = Hold()
    h.webhooks.documents["http://app.test/first"] = "<Response><Say>first</Say></Response>"
    await bridged_bob(h)
    child = await leave(h, BOB, "http://app.test/first", settle=False)
    child.redirect(document(HOLD_DOC))  # before it ran: the last one wins
    await h.settle()
    assert [f.url for f in h.webhooks.fetches] == ["http://app.test/hold"]
    child.redirect(document(BYE_DOC))  # while it waits for /hold
    await h.settle()
    assert h.speech.spoken == ["One moment", "Goodbye"]
    assert child.ended and h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    await h.result()
    h.check_invariants()


async def test_a_retransmitted_200_is_acked_by_the_child(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    h.webhooks.documents["http://app.test/hold"] = Hold()
    await bridged_bob(h)
    child = await leave(h, BOB, HOLD_DOC)
    first_ack = h.sip.of(BOB, "ACK")[0].request
    child.on_response(h.response(BOB, 200))  # our ACK was lost: the 200 comes again
    acks = h.sip.of(BOB, "ACK")
    assert len(acks) == 2 and acks[1].request is not None and first_ack is not None
    assert acks[1].request.cseq == first_ack.cseq
    assert h.sip.kinds(BOB) == ["INVITE", "ACK", "ACK"]  # no BYE: the dialog is kept
    child.shutdown()
    await h.settle()
    assert h.sip.kinds(BOB)[-1] == "BYE"
    await h.result()
    h.check_invariants()


async def test_redirect_of_a_whispering_branch_is_its_decline(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    h.webhooks.documents["http://app.test/screen"] = Hold("<Response/>")
    await h.start(two_clients(alice=' url="/screen"'))
    h.at(1)
    await h.respond(ALICE, 180)
    await h.respond(BOB, 180)
    h.at(2)
    await h.respond(ALICE, 200)
    whisper = h.branch(ALICE).whisper_task
    assert whisper is not None and not whisper.done()
    h.at(5)
    child = await leave(h, ALICE, BYE_DOC)
    assert whisper.done()  # the whisper stopped at once; the new RCML is no whisper
    assert h.speech.spoken == ["Goodbye"]
    assert h.sip.kinds(ALICE) == ["INVITE", "ACK", "BYE"]  # the child's <Hangup/>
    assert child.ended and h.progress(ALICE)[-1] == done(3, "completed", 3, 200)
    # WSP-6: for the Dial a decline; bob rings on and wins; the caller never heard alice
    assert not h.task.done() and h.sip.kinds(BOB) == ["INVITE"]
    assert h.parent.events == ["180"] and h.parent_media.peer is None
    h.at(8)
    await h.respond(BOB, 200)
    assert h.parent.events == ["180", "200"] and h.parent_media.peer is h.media(BOB)
    h.at(20)
    await h.callee_bye(BOB)
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 12, 8, True, False)
    h.check_invariants()


async def test_redirect_of_the_only_whispering_branch_ends_the_dial_without_winner(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    h.webhooks.documents["http://app.test/screen"] = Hold("<Response/>")
    h.webhooks.documents["http://app.test/hold"] = Hold()
    await h.start(f'<Response><Dial><Client url="/screen" {ALL}>bob</Client></Dial></Response>')
    h.at(2)
    await h.respond(0, 200)
    h.at(5)
    child = await leave(h, 0, HOLD_DOC)
    result = await h.result()  # Ex. W-2's outcome: no winner remains
    assert result == DialResult("no-answer", h.sid(0), 0, 5, False, False)
    assert h.sip.kinds(0) == ["INVITE", "ACK"] and not child.ended
    h.at(9)
    child.callee_bye()
    await h.settle()
    assert h.progress(0) == [initiated(), (1, "in-progress", {}), done(2, "completed", 7, 200)]
    h.check_invariants()


async def test_redirect_of_a_ringing_branch_is_refused_and_changes_nothing(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    await h.start(two_clients())
    h.at(1)
    await h.respond(BOB, 180)
    with pytest.raises(CallControlError) as refused:
        await leave(h, BOB, BYE_DOC)
    assert (refused.value.status, refused.value.code) == (400, 21220)
    assert "is not in progress" in refused.value.message and h.sid(BOB) in refused.value.message
    assert "has not answered" in refused.value.message
    assert h.sip.kinds(BOB) == ["INVITE"] and len(h.fired(BOB)) == 2
    assert not h.branch(BOB).detached and h.children == []
    h.at(3)
    await h.respond(BOB, 200)  # it still rings and wins as usual
    assert h.parent_media.peer is h.media(BOB)
    await h.callee_bye(BOB)
    await h.result()
    h.check_invariants()


async def test_race_the_200_then_the_redirect_of_the_branch(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    await h.start(two_clients())
    h.at(1)
    await h.respond(BOB, 180)
    h.at(4)
    h.dial.on_response(h.branch(BOB), h.response(BOB, 200))  # the same loop step
    child = await leave(h, BOB, BYE_DOC)
    assert child.ended and h.sip.kinds(BOB) == ["INVITE", "ACK", "BYE"]
    result = await h.result()
    assert result == DialResult("completed", h.sid(BOB), 0, 4, True, False)
    assert h.progress(BOB) == [
        initiated(),
        ringing(),
        (2, "in-progress", {}),
        done(3, "completed", 0, 200),
    ]
    assert h.progress(ALICE) == [initiated(), done(1, "canceled", 0, None)]
    h.check_invariants()


async def test_race_the_redirect_of_the_branch_then_its_200(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    await h.start(two_clients())
    h.at(1)
    await h.respond(BOB, 180)
    h.at(4)
    with pytest.raises(CallControlError):
        await leave(h, BOB, BYE_DOC, settle=False)
    await h.respond(BOB, 200)  # arrives just after the refusal: bob wins normally
    assert h.parent_media.peer is h.media(BOB) and h.children == []
    await h.callee_bye(BOB)
    await h.result()
    h.check_invariants()


async def test_redirect_of_a_branch_being_cancelled_is_refused(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    await bridged_bob(h)  # alice was cancelled and has ended; bob wins
    with pytest.raises(CallControlError) as ended:
        await leave(h, ALICE, BYE_DOC)
    assert "has ended" in ended.value.message
    await h.callee_bye(BOB)
    await h.result()
    with pytest.raises(CallControlError) as after:  # after the Dial ended
        await leave(h, BOB, BYE_DOC)
    assert after.value.code == 21220 and "has ended" in after.value.message
    assert h.children == []
    h.check_invariants()


async def test_redirect_of_a_branch_twice_the_second_is_refused(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    h.webhooks.documents["http://app.test/hold"] = Hold()
    await bridged_bob(h)
    child = await leave(h, BOB, HOLD_DOC)
    with pytest.raises(CallControlError) as again:  # the manager finds the child call
        await leave(h, BOB, BYE_DOC)  # first and redirects that instead
    assert "left its Dial" in again.value.message
    assert h.children == [child]
    child.callee_bye()
    await h.settle()
    await h.result()
    h.check_invariants()


async def test_the_parent_leaving_during_early_media_gets_neither_relay_nor_ringback(
    dial_test: Callable[..., DialTest],
) -> None:
    """DIAL-31's relay stops at once; the CANCEL does not bring the ringback back."""
    h = dial_test()
    await h.start(f"<Response><Dial><Number {ALL}>+15550100</Number></Dial></Response>")
    h.at(1)
    await h.respond(0, 183, sdp=sdp_answer("10.0.1.1", 40000))
    assert h.parent_media.peer is h.media(0)  # the caller hears the branch's early media
    plays = h.parent_media.kinds().count("play")
    h.at(2)
    h.dial.parent_left()
    await h.settle()
    assert h.sip.kinds(0) == ["INVITE", "CANCEL"]
    assert h.parent_media.peer is None and h.dial._ringback is None
    assert h.parent_media.kinds().count("play") == plays  # no ringback again
    h.dial.parent_left()  # twice: nothing more
    await h.respond(0, 487)
    result = await h.result()
    assert result.status == "canceled" and result.caller_gone
    assert h.parent_media.kinds().count("play") == plays
    h.check_invariants()


async def test_the_parent_leaving_before_the_branches_are_dialled_dials_nothing(
    dial_test: Callable[..., DialTest],
) -> None:
    h = dial_test()
    node = rcml(two_clients(), "http://app.test/voice").verbs[0]
    assert isinstance(node, Dial)
    run = DialRun(h.parent, node, h.services, h.sip, h.settings, h._open_media)
    run.parent_left()  # e.g. while host names resolve
    result = await run.run()
    assert result.status == "canceled" and h.sip.sent == [] and h.records.rows == {}
