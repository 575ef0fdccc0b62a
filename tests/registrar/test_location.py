"""The location service's rules with explicit time (REG-3, REG-4, REG-6)."""

from __future__ import annotations

import pytest

from dialtone.registrar.location import ContactUpdate, Location, OutOfOrder, Source

SRC = Source("udp", "127.0.0.1", 5072)


def contacts(loc: Location, now: float, sid: str = "CLa") -> list[str]:
    return [b.contact for b in loc.bindings(sid, now)]


def test_add_refresh_expire() -> None:
    loc = Location()
    loc.update("CLa", [ContactUpdate("sip:a@1", 60)], "c1", 1, SRC, now=1000)
    assert contacts(loc, 1000) == ["sip:a@1"]
    assert loc.bindings("CLa", 1000)[0].remaining(1030) == 30
    loc.update("CLa", [ContactUpdate("sip:a@1", 60)], "c1", 2, SRC, now=1050)
    assert contacts(loc, 1100) == ["sip:a@1"]  # refreshed at 1050, expires 1110
    assert contacts(loc, 1110) == []
    assert loc.expire(1110) == ["CLa"]
    assert loc.count() == 0


def test_same_call_id_needs_a_higher_cseq_and_changes_nothing_otherwise() -> None:
    loc = Location()
    loc.update("CLa", [ContactUpdate("sip:a@1", 600)], "c1", 5, SRC, now=0)
    with pytest.raises(OutOfOrder):
        loc.update(
            "CLa", [ContactUpdate("sip:b@2", 600), ContactUpdate("sip:a@1", 0)], "c1", 5, SRC, 1
        )
    assert contacts(loc, 1) == ["sip:a@1"]
    # Another Call-ID (another device or a rebooted phone) may use any CSeq.
    loc.update("CLa", [ContactUpdate("sip:a@1", 600)], "c2", 1, SRC, now=2)
    assert loc.bindings("CLa", 2)[0].call_id == "c2"


def test_two_devices_and_unregister_one() -> None:
    loc = Location()
    loc.update("CLa", [ContactUpdate("sip:a@1", 600)], "c1", 1, SRC, now=0)
    loc.update("CLa", [ContactUpdate("sip:a@2", 600)], "c2", 1, SRC, now=1)
    assert contacts(loc, 2) == ["sip:a@2", "sip:a@1"]
    loc.update("CLa", [ContactUpdate("sip:a@1", 0)], "c1", 2, SRC, now=3)
    assert contacts(loc, 3) == ["sip:a@2"]


def test_eleventh_binding_replaces_the_least_recently_refreshed() -> None:
    loc = Location()
    for i in range(10):
        loc.update("CLa", [ContactUpdate(f"sip:a@{i}", 600)], f"c{i}", 1, SRC, now=i)
    loc.update("CLa", [ContactUpdate("sip:a@0", 600)], "c0", 2, SRC, now=20)  # refresh 0
    loc.update("CLa", [ContactUpdate("sip:a@new", 600)], "cn", 1, SRC, now=21)
    remaining = contacts(loc, 21)
    assert len(remaining) == 10
    assert "sip:a@1" not in remaining and "sip:a@0" in remaining and "sip:a@new" in remaining


def test_wildcard_removes_all_with_the_cseq_rule() -> None:
    loc = Location()
    loc.update("CLa", [ContactUpdate("sip:a@1", 600)], "c1", 3, SRC, now=0)
    with pytest.raises(OutOfOrder):
        loc.remove_all("CLa", "c1", 3)
    loc.remove_all("CLa", "c1", 4)
    assert contacts(loc, 0) == []


def test_three_missed_pings_drop_a_binding_and_an_answer_resets() -> None:
    loc = Location()
    loc.update("CLa", [ContactUpdate("sip:a@1", 600)], "c1", 1, SRC, now=0)
    assert not loc.ping_result("CLa", "sip:a@1", alive=False)
    assert not loc.ping_result("CLa", "sip:a@1", alive=True)
    assert not loc.ping_result("CLa", "sip:a@1", alive=False)
    assert not loc.ping_result("CLa", "sip:a@1", alive=False)
    assert loc.ping_result("CLa", "sip:a@1", alive=False)
    assert contacts(loc, 0) == []
