"""Every transition of the four SIP transaction machines, in one table (h11 ``_state.py`` style).

:data:`TRANSITIONS` maps ``(kind, state, input)`` to ``Transition(next_state, actions)``
for the INVITE/non-INVITE client/server transactions of RFC 3261 §17 as updated by
RFC 6026; :mod:`dialtone.sip.transaction` holds the classes that interpret the actions.
The rules the table follows:

1. Requests and responses are retransmitted only over unreliable transports: Timers A,
   E and G are never started on TCP (§17.1.1.2, §17.1.2.2, §17.2.1).  Timers D, I, J and
   K, which only wait out retransmissions, last zero on TCP: the machine moves on at
   once.  B, F, H, L and M last 64*T1 everywhere (:data:`DURATIONS`).
2. A 2xx ends an INVITE transaction in **Accepted** (RFC 6026 §7.1, §7.2), not in
   Terminated: the IST absorbs INVITE retransmissions and passes ACKs to the TU until
   Timer L; the ICT passes every 2xx (retransmissions, forked answers) to the TU until
   Timer M.  The TU, not the transaction, retransmits a 2xx and ACKs one.
3. Inputs from the network or a clock with no row are *absorbed*: a late response, a
   stray ACK, a timer of a state left behind change nothing.  Inputs from the TU with
   no row (a 1xx after the final response) are TU bugs and raise
   :class:`TransactionStateError`.
4. A completed NIST drops the parsed request (``DROP_REQUEST``): it waits 32 s on UDP
   holding only the response bytes and the peer, because a registrar keeps ~100 000 of
   them at 3000 REGISTER/s.
5. The endpoint may answer a server transaction itself before the TU sees it
   (``INIT`` + a response from the TU side: the 483, the 481 or 200 to a CANCEL); the
   TU never learns of those.
6. A terminating row ends with ``TERMINATE``; the first duration of a retransmission
   timer is T1 and each firing restarts it with its :class:`Backoff`.

Rows that go beyond the RFC figures say why in a comment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from dialtone.sip.timers import T1, T4, TIMER_64T1


class TransactionStateError(RuntimeError):
    """The TU passed a response the transaction cannot send in its state."""


class _Enum(enum.Enum):
    # Members are singletons compared by identity, so identity is a valid hash; Enum's
    # own hashes the name in Python code, which made the per-message table lookup 5x
    # slower.
    __hash__ = object.__hash__


class Kind(_Enum):
    """The four machines of RFC 3261 §17."""

    ICT = "INVITE client"
    NICT = "non-INVITE client"
    IST = "INVITE server"
    NIST = "non-INVITE server"


class State(_Enum):
    """Transaction states; ``INIT`` is the instant before the first input."""

    INIT = "init"
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class Timer(_Enum):
    """RFC 3261 Table 4 timers and RFC 6026's L and M."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741  # the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"


class Input(_Enum):
    """What can happen to a transaction."""

    START = "request from TU"
    RECV_1XX = "1xx from the network"
    RECV_2XX = "2xx from the network"
    RECV_FAILURE = "300-699 from the network"
    RECV_REQUEST = "request from the network (first or retransmitted)"
    RECV_ACK = "ACK from the network"
    SEND_1XX = "1xx from TU"
    SEND_2XX = "2xx from TU"
    SEND_FAILURE = "300-699 from TU"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "Timer A fires"
    TIMER_B = "Timer B fires"
    TIMER_D = "Timer D fires"
    TIMER_E = "Timer E fires"
    TIMER_F = "Timer F fires"
    TIMER_G = "Timer G fires"
    TIMER_H = "Timer H fires"
    TIMER_I = "Timer I fires"
    TIMER_J = "Timer J fires"
    TIMER_K = "Timer K fires"
    TIMER_L = "Timer L fires"
    TIMER_M = "Timer M fires"


TIMER_INPUTS: Final = {timer: Input[f"TIMER_{timer.value}"] for timer in Timer}
TU_INPUTS: Final = frozenset({Input.START, Input.SEND_1XX, Input.SEND_2XX, Input.SEND_FAILURE})


class Do(_Enum):
    """Actions other than timers."""

    SEND_REQUEST = "pass the request to the transport"
    RESEND_REQUEST = "retransmit the request"
    SEND_ACK = "ACK the non-2xx final response (§17.1.1.3), or retransmit that ACK"
    SEND_TRYING = "send 100 Trying (§17.2.1)"
    SEND_RESPONSE = "pass the TU's response to the transport and keep its bytes"
    RESEND_RESPONSE = "retransmit the last response"
    TO_TU = "pass the message to the TU"
    REPORT_TIMEOUT = "tell the TU the transaction timed out"
    REPORT_TRANSPORT_ERROR = "tell the TU the transport failed"
    DROP_REQUEST = "forget the parsed request (rule 4)"
    TERMINATE = "stop every timer and forget the transaction"


class Backoff(_Enum):
    """How a (re)started timer computes its duration."""

    FIRST = "the first duration of DURATIONS"
    DOUBLE = "twice the last interval (Timer A)"
    DOUBLE_TO_T2 = "twice the last interval, at most T2 (Timers E, G)"
    T2 = "T2 (Timer E in Proceeding, §17.1.2.2)"


@dataclass(frozen=True, slots=True)
class Start:
    """Start (or restart) a timer."""

    timer: Timer
    backoff: Backoff = Backoff.FIRST


@dataclass(frozen=True, slots=True)
class Stop:
    """Cancel a timer if it runs."""

    timer: Timer


Action = Do | Start | Stop


@dataclass(frozen=True, slots=True)
class Transition:
    """One row's outcome: the next state and the actions, in order."""

    next_state: State
    actions: tuple[Action, ...] = ()


# Timer durations (Table 4; RFC 6026 §8.4, §8.7): first duration over (UDP, TCP); None
# means "never started on TCP" (rule 1).
DURATIONS: Final[dict[Timer, tuple[float, float | None]]] = {
    Timer.A: (T1, None),
    Timer.B: (TIMER_64T1, TIMER_64T1),
    Timer.D: (32.0, 0.0),  # "at least 32 s" for UDP
    Timer.E: (T1, None),
    Timer.F: (TIMER_64T1, TIMER_64T1),
    Timer.G: (T1, None),
    Timer.H: (TIMER_64T1, TIMER_64T1),
    Timer.I: (T4, 0.0),
    Timer.J: (TIMER_64T1, 0.0),
    Timer.K: (T4, 0.0),
    Timer.L: (TIMER_64T1, TIMER_64T1),
    Timer.M: (TIMER_64T1, TIMER_64T1),
}
RETRANSMIT_TIMERS: Final = frozenset({Timer.A, Timer.E, Timer.G})

ICT, NICT, IST, NIST = Kind.ICT, Kind.NICT, Kind.IST, Kind.NIST
INIT, CALLING, TRYING, PROCEEDING = State.INIT, State.CALLING, State.TRYING, State.PROCEEDING
COMPLETED, CONFIRMED, ACCEPTED = State.COMPLETED, State.CONFIRMED, State.ACCEPTED
TERMINATED = State.TERMINATED

START_A, START_B, START_D = Start(Timer.A), Start(Timer.B), Start(Timer.D)
START_E, START_F, START_G = Start(Timer.E), Start(Timer.F), Start(Timer.G)
START_H, START_I, START_J = Start(Timer.H), Start(Timer.I), Start(Timer.J)
START_K, START_L, START_M = Start(Timer.K), Start(Timer.L), Start(Timer.M)
STOP_A, STOP_B, STOP_E = Stop(Timer.A), Stop(Timer.B), Stop(Timer.E)
STOP_F, STOP_G, STOP_H = Stop(Timer.F), Stop(Timer.G), Stop(Timer.H)
RESTART_A = Start(Timer.A, Backoff.DOUBLE)  # §17.1.1.2: 2*T1, 4*T1, ... (no cap)
RESTART_E = Start(Timer.E, Backoff.DOUBLE_TO_T2)  # §17.1.2.2: MIN(2*T1, T2), ...
RESTART_E_T2 = Start(Timer.E, Backoff.T2)  # §17.1.2.2: in Proceeding, T2
RESTART_G = Start(Timer.G, Backoff.DOUBLE_TO_T2)  # §17.2.1: MIN(2*T1, T2), ...
_FAIL = (Do.REPORT_TRANSPORT_ERROR, Do.TERMINATE)
_TIMEOUT = (Do.REPORT_TIMEOUT, Do.TERMINATE)
_FINAL_NIST = (Do.SEND_RESPONSE, Do.DROP_REQUEST, START_J)


def _t(next_state: State, *actions: Action) -> Transition:
    return Transition(next_state, actions)


TRANSITIONS: Final[dict[tuple[Kind, State, Input], Transition]] = {
    # -- INVITE client: §17.1.1.2 Figure 5; RFC 6026 §7.2 (Accepted, Timer M)
    (ICT, INIT, Input.START): _t(CALLING, Do.SEND_REQUEST, START_A, START_B),
    (ICT, CALLING, Input.TIMER_A): _t(CALLING, Do.RESEND_REQUEST, RESTART_A),
    (ICT, CALLING, Input.TIMER_B): _t(TERMINATED, *_TIMEOUT),
    (ICT, CALLING, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    # No timer in Proceeding (B stops): the TU cancels a call that rings too long.
    (ICT, CALLING, Input.RECV_1XX): _t(PROCEEDING, STOP_A, STOP_B, Do.TO_TU),
    (ICT, CALLING, Input.RECV_2XX): _t(ACCEPTED, STOP_A, STOP_B, Do.TO_TU, START_M),
    (ICT, CALLING, Input.RECV_FAILURE): _t(
        COMPLETED, STOP_A, STOP_B, Do.TO_TU, Do.SEND_ACK, START_D
    ),
    (ICT, PROCEEDING, Input.RECV_1XX): _t(PROCEEDING, Do.TO_TU),
    (ICT, PROCEEDING, Input.RECV_2XX): _t(ACCEPTED, Do.TO_TU, START_M),
    (ICT, PROCEEDING, Input.RECV_FAILURE): _t(COMPLETED, Do.TO_TU, Do.SEND_ACK, START_D),
    # Not in Figure 5: a TCP connection lost in Proceeding means no final response can
    # come back on it (§18.3), so the TU must hear of it.
    (ICT, PROCEEDING, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    (ICT, COMPLETED, Input.RECV_FAILURE): _t(COMPLETED, Do.SEND_ACK),  # not to the TU
    # Not in the RFCs: a 2xx from another fork after a non-2xx final still needs its
    # ACK and BYE from the TU (spec LEG-6); the transaction stays Completed.
    (ICT, COMPLETED, Input.RECV_2XX): _t(COMPLETED, Do.TO_TU),
    (ICT, COMPLETED, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    (ICT, COMPLETED, Input.TIMER_D): _t(TERMINATED, Do.TERMINATE),
    (ICT, ACCEPTED, Input.RECV_2XX): _t(ACCEPTED, Do.TO_TU),  # RFC 6026 §7.2
    (ICT, ACCEPTED, Input.TIMER_M): _t(TERMINATED, Do.TERMINATE),
    # -- non-INVITE client: §17.1.2.2 Figure 6
    (NICT, INIT, Input.START): _t(TRYING, Do.SEND_REQUEST, START_E, START_F),
    (NICT, TRYING, Input.TIMER_E): _t(TRYING, Do.RESEND_REQUEST, RESTART_E),
    (NICT, TRYING, Input.TIMER_F): _t(TERMINATED, *_TIMEOUT),
    (NICT, TRYING, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    (NICT, TRYING, Input.RECV_1XX): _t(PROCEEDING, Do.TO_TU),
    (NICT, TRYING, Input.RECV_2XX): _t(COMPLETED, STOP_E, STOP_F, Do.TO_TU, START_K),
    (NICT, TRYING, Input.RECV_FAILURE): _t(COMPLETED, STOP_E, STOP_F, Do.TO_TU, START_K),
    (NICT, PROCEEDING, Input.TIMER_E): _t(PROCEEDING, Do.RESEND_REQUEST, RESTART_E_T2),
    (NICT, PROCEEDING, Input.TIMER_F): _t(TERMINATED, *_TIMEOUT),
    (NICT, PROCEEDING, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    (NICT, PROCEEDING, Input.RECV_1XX): _t(PROCEEDING, Do.TO_TU),
    (NICT, PROCEEDING, Input.RECV_2XX): _t(COMPLETED, STOP_E, STOP_F, Do.TO_TU, START_K),
    (NICT, PROCEEDING, Input.RECV_FAILURE): _t(COMPLETED, STOP_E, STOP_F, Do.TO_TU, START_K),
    # Completed absorbs retransmitted responses until K (§17.1.2.2).
    (NICT, COMPLETED, Input.RECV_1XX): _t(COMPLETED),
    (NICT, COMPLETED, Input.RECV_2XX): _t(COMPLETED),
    (NICT, COMPLETED, Input.RECV_FAILURE): _t(COMPLETED),
    (NICT, COMPLETED, Input.TIMER_K): _t(TERMINATED, Do.TERMINATE),
    # -- INVITE server: §17.2.1 Figure 7; RFC 6026 §7.1 (Accepted, Timer L)
    (IST, INIT, Input.RECV_REQUEST): _t(PROCEEDING, Do.SEND_TRYING, Do.TO_TU),
    (IST, INIT, Input.SEND_FAILURE): _t(COMPLETED, Do.SEND_RESPONSE, START_G, START_H),  # 5
    (IST, PROCEEDING, Input.RECV_REQUEST): _t(PROCEEDING, Do.RESEND_RESPONSE),
    (IST, PROCEEDING, Input.SEND_1XX): _t(PROCEEDING, Do.SEND_RESPONSE),
    (IST, PROCEEDING, Input.SEND_2XX): _t(ACCEPTED, Do.SEND_RESPONSE, START_L),
    (IST, PROCEEDING, Input.SEND_FAILURE): _t(COMPLETED, Do.SEND_RESPONSE, START_G, START_H),
    (IST, PROCEEDING, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    (IST, COMPLETED, Input.RECV_REQUEST): _t(COMPLETED, Do.RESEND_RESPONSE),
    (IST, COMPLETED, Input.TIMER_G): _t(COMPLETED, Do.RESEND_RESPONSE, RESTART_G),
    (IST, COMPLETED, Input.TIMER_H): _t(TERMINATED, *_TIMEOUT),
    (IST, COMPLETED, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    (IST, COMPLETED, Input.RECV_ACK): _t(CONFIRMED, STOP_G, STOP_H, START_I),
    (IST, CONFIRMED, Input.RECV_ACK): _t(CONFIRMED),  # absorbed (§17.2.1)
    (IST, CONFIRMED, Input.RECV_REQUEST): _t(CONFIRMED),
    (IST, CONFIRMED, Input.TIMER_I): _t(TERMINATED, Do.TERMINATE),
    (IST, ACCEPTED, Input.RECV_REQUEST): _t(ACCEPTED),  # RFC 6026 §7.1: absorbed
    (IST, ACCEPTED, Input.RECV_ACK): _t(ACCEPTED, Do.TO_TU),  # the 2xx's ACK, for the dialog
    (IST, ACCEPTED, Input.SEND_2XX): _t(ACCEPTED, Do.SEND_RESPONSE),  # the TU retransmits
    (IST, ACCEPTED, Input.TIMER_L): _t(TERMINATED, Do.TERMINATE),
    # -- non-INVITE server: §17.2.2 Figure 8
    (NIST, INIT, Input.RECV_REQUEST): _t(TRYING, Do.TO_TU),
    (NIST, INIT, Input.SEND_2XX): _t(COMPLETED, *_FINAL_NIST),  # rule 5
    (NIST, INIT, Input.SEND_FAILURE): _t(COMPLETED, *_FINAL_NIST),  # rule 5
    (NIST, TRYING, Input.RECV_REQUEST): _t(TRYING),  # "MUST be discarded"
    (NIST, TRYING, Input.SEND_1XX): _t(PROCEEDING, Do.SEND_RESPONSE),
    (NIST, TRYING, Input.SEND_2XX): _t(COMPLETED, *_FINAL_NIST),
    (NIST, TRYING, Input.SEND_FAILURE): _t(COMPLETED, *_FINAL_NIST),
    (NIST, PROCEEDING, Input.RECV_REQUEST): _t(PROCEEDING, Do.RESEND_RESPONSE),
    (NIST, PROCEEDING, Input.SEND_1XX): _t(PROCEEDING, Do.SEND_RESPONSE),
    (NIST, PROCEEDING, Input.SEND_2XX): _t(COMPLETED, *_FINAL_NIST),
    (NIST, PROCEEDING, Input.SEND_FAILURE): _t(COMPLETED, *_FINAL_NIST),
    (NIST, PROCEEDING, Input.TRANSPORT_ERROR): _t(TERMINATED, *_FAIL),
    (NIST, COMPLETED, Input.RECV_REQUEST): _t(COMPLETED, Do.RESEND_RESPONSE),
    (NIST, COMPLETED, Input.SEND_2XX): _t(COMPLETED),  # §17.2.2: "MUST be discarded"
    (NIST, COMPLETED, Input.SEND_FAILURE): _t(COMPLETED),
    # Figure 8 informs the TU here, but the request is gone (rule 4) and the TU is done.
    (NIST, COMPLETED, Input.TRANSPORT_ERROR): _t(TERMINATED, Do.TERMINATE),
    (NIST, COMPLETED, Input.TIMER_J): _t(TERMINATED, Do.TERMINATE),
}
"""Every transition of the four machines; the module docstring has the rules."""
