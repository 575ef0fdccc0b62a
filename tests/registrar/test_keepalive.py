"""Keep-alive scheduling and outcomes (REG-6), with explicit time."""

from __future__ import annotations

from dialtone.registrar.keepalive import KeepAlive
from dialtone.registrar.location import ContactUpdate, Location, Source


def setup() -> tuple[Location, KeepAlive]:
    loc = Location()
    loc.update(
        "CLa", [ContactUpdate("sip:a@1", 3600)], "c", 1, Source("udp", "127.0.0.1", 1), now=0
    )
    return loc, KeepAlive(loc, interval=60)


def test_first_ping_sixty_seconds_after_registering_then_every_sixty() -> None:
    _, ka = setup()
    assert ka.due(1) == []  # housekeeping sees the new binding within a second
    assert ka.due(59) == []
    due = ka.due(60)
    assert [b.contact for b in due] == ["sip:a@1"]
    ka.sent("tx1", due[0], 60)
    assert ka.due(200) == [], "no second ping while one is pending"
    ka.answered("tx1")
    assert ka.due(119) == []
    assert len(ka.due(120)) == 1


def test_three_failed_pings_drop_the_binding() -> None:
    loc, ka = setup()
    assert ka.due(1) == []
    now = 60.0
    for i in range(3):
        (binding,) = ka.due(now)
        ka.sent(f"tx{i}", binding, now)
        dropped = ka.failed(f"tx{i}")
        now += 60
    assert dropped == "CLa"
    assert loc.count() == 0
    assert ka.due(now) == []


def test_unknown_transactions_are_not_pings() -> None:
    _, ka = setup()
    assert not ka.is_ping("nope") and not ka.is_ping(None)
    assert ka.failed("nope") is None


def test_restored_bindings_are_spread_over_one_interval() -> None:
    loc = Location()
    for i in range(200):
        loc.update(
            "CLa" + str(i),
            [ContactUpdate(f"sip:a@{i}", 3600)],
            "c",
            1,
            Source("udp", "127.0.0.1", 1),
            now=0,
        )
    ka = KeepAlive(loc, interval=60)
    per_second = []
    for now in range(1000, 1061):
        due = ka.due(now)
        for n, binding in enumerate(due):
            ka.sent(f"tx{now}-{n}", binding, now)
        per_second.append(len(due))
    assert sum(per_second) == 200  # every binding pinged once within the interval
    assert max(per_second) < 20  # about 1/60 of them per second, not all at once


def test_a_refreshing_register_puts_the_next_ping_off() -> None:
    loc, ka = setup()
    assert ka.due(1) == []
    loc.update(  # the same contact refreshed at t=50 (a new Call-ID, as phones do)
        "CLa", [ContactUpdate("sip:a@1", 3600)], "d", 1, Source("udp", "127.0.0.1", 1), now=50
    )
    assert ka.due(60) == [], "heard from at 50: no ping at 60"
    assert ka.due(109) == []
    assert [b.contact for b in ka.due(110)] == ["sip:a@1"]
