"""`Links` at a bound endpoint: publishers refused by its CURVE allow-list are counted
and journaled, at most once a minute while refusals go on, and their connections' ends
are no `peer-disconnected`. The caller passes the time: minutes of refusals every
125 ms (exact in binary) are played here in no time (tests/process/test_curve.py
drives the real processes)."""

from __future__ import annotations

import pytest

from recorder.bus.keys import Refused
from recorder.daemon.links import REFUSED_EVERY, Links

pytestmark = pytest.mark.unit

EP = "tcp://127.0.0.1:5560"
BAD = "B8K/c0$VPq]BD=S1Y=<C-(LcuN[L^QBWH3Y<F]jA"


def refusal(links: Links, ts: float, key: str = BAD) -> list[dict]:
    """One refused publisher as the transport reports it: the failed handshake, then
    its connection's end."""
    records = links.handshake_failed(ts, EP, "refused", Refused(key, "127.0.0.1"))
    return records + links.event("disconnected", ts, EP, None)


def test_a_publisher_retrying_every_125_ms_writes_one_record_a_minute() -> None:
    links = Links((), (EP,), 1000)
    links.event("listening", 0.0, EP, None)
    records = [r for i in range(1, 1201) for r in refusal(links, i / 8)]  # 150 s
    records += links.stop(151.0)
    assert [r["event"] for r in records] == ["publisher-refused"] * 4
    assert [r["refusals"] for r in records] == [1, 480, 480, 239]
    assert sum(r["refusals"] for r in records) == 1200
    assert [r["since"] for r in records] == [0.125, 0.25, 60.25, 120.25]
    assert all(r["keys"] == [BAD] and r["address"] == "127.0.0.1" for r in records)
    assert "refused 480 publisher handshakes from 127.0.0.1" in records[1]["detail"]
    (state,) = links.states()
    assert state.peers == 0 and state.refused is not None
    assert (state.refused.count, state.refused.key, state.refused.last_ts) == (1200, BAD, 150.0)


def test_refused_connections_never_take_an_allowed_publisher_off_the_count() -> None:
    links = Links((), (EP,), 1000)
    links.event("listening", 0.0, EP, None)
    assert links.event("connected", 1.0, EP, None)[0]["peers"] == 1
    for i in range(5):  # refused, and connections ended mid-handshake (a port scan)
        refusal(links, 2.0 + i, key=f"key{i}")
        assert links.handshake_failed(2.5 + i, EP, "ended", None) == []
        assert links.event("disconnected", 2.5 + i, EP, None) == []
    assert links.states()[0].peers == 1
    assert links.event("disconnected", 9.0, EP, None)[0]["peers"] == 0
    assert links.event("disconnected", 9.5, EP, None) == []  # nobody was connected
    stop = links.stop(10.0)  # the four refusals after the first, named when it stops
    assert [(r["refusals"], r["keys"]) for r in stop] == [(4, [f"key{i}" for i in (4, 1, 2, 3)])]


def test_many_keys_are_named_ten_at_a_time_and_the_rest_counted() -> None:
    links = Links((), (EP,), 1000)
    refusal(links, 1.0, key="first")
    for i in range(30):
        refusal(links, 2.0 + i, key=f"key{i:02}")
    (record,) = refusal(links, 1.0 + REFUSED_EVERY + 1, key="last")
    assert record["refusals"] == 31 and record["keys"][0] == "last"
    assert record["keys"][1:] == [f"key{i:02}" for i in range(9)]
    assert record["other_keys"] == 21
    assert "and 21 more" in record["detail"]


def test_refusals_after_the_first_are_journaled_when_their_minute_is_over() -> None:
    """The recorder's tick asks `due` every round: the refusals counted since the last
    event are journaled once its minute is over, though no refusal comes after them
    (before, they waited for the next refusal or the stop: a recorder killed before
    either never journaled them)."""
    links = Links((), (EP,), 1000)
    links.event("listening", 0.0, EP, None)
    assert links.due(0.5) == []  # nothing refused
    (first,) = refusal(links, 1.0)
    assert first["refusals"] == 1 and links.due(1.5) == []  # journaled already
    for i in range(2, 11):
        assert refusal(links, float(i)) == []
    assert links.due(60.9) == []  # the minute since the first is not over
    (record,) = links.due(61.0)
    assert (record["refusals"], record["since"], record["keys"]) == (9, 2.0, [BAD])
    assert links.due(200.0) == [] and links.stop(201.0) == []  # taken: said once
    assert len(refusal(links, 202.0)) == 1  # a minute after the last: at once
    assert refusal(links, 203.0) == []
    (record,) = links.due(100.0)  # the wall clock set back: due now, not in 100 s
    assert (record["refusals"], record["since"]) == (1, 203.0)
