"""The feed's own order does not depend on arrival: a server publishes two channels' frames in time order
(one instant's together) and sends heartbeats whenever a connection is idle; however the two connections'
frames and heartbeats interleave on the way, the merger gives the messages in the same order — (time,
channel, seq) — with bad frames, ties and time leaps; and a lying time cannot stall it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.live.client import Frame
from feeds.live.ordering import FeedMerger
from feeds.live.protocol import Envelope, Heartbeat, MarketUpdate, RunnerPrices

CHANNELS = [("f", "market"), ("f", "match")]


def _env(channel: str, seq: int, t: float) -> Envelope:
    data = MarketUpdate(
        event_key="m",
        market_id="sim-m",
        status="SUSPENDED",
        in_play=True,
        simulated=True,
        source="simulated",
        runners=[RunnerPrices(selection="First Player"), RunnerPrices(selection="Second Player")],
    )
    return Envelope.model_construct(type="event", feed="f", channel=channel, seq=seq, event_time=t, data=data)


# the server's schedule: (time step since the previous instant, channel, bad frame?) — steps of 0 are ties,
# steps of 25 are long quiet periods
schedules = st.lists(
    st.tuples(st.sampled_from([0.0, 0.0, 1.0, 2.5, 25.0]), st.sampled_from(["match", "market"]), st.booleans()),
    min_size=1,
    max_size=30,
)


def _wire(schedule, idle_points) -> dict[str, list]:
    """What each connection carries, in order: frames, and heartbeats at the idle points (between instants)."""
    wires: dict[str, list] = {"match": [], "market": []}
    seq = {"match": 0, "market": 0}
    t = 0.0
    for i, (step, channel, bad) in enumerate(schedule):
        if step and i in idle_points:  # the server idles before a new instant: both connections heartbeat
            for c in wires:
                wires[c].append(Heartbeat(feed="f", channel=c, last_seq=seq[c], event_time=t))
        t += step
        seq[channel] += 1
        env = None if bad else _env(channel, seq[channel], t)
        wires[channel].append(Frame("f", channel, seq[channel], "", env, "bad" if bad else None))
    for c in wires:  # the feed ends: heartbeats say so
        wires[c].append(Heartbeat(feed="f", channel=c, last_seq=seq[c], event_time=t))
    return wires


def _valid(merged, wires) -> list[tuple[str, int]]:
    """The merged order of the valid messages (a bad frame, which has no time, falls where it arrives: the
    engine counts and decides by messages only)."""
    bad = {(c, f.seq) for c, w in wires.items() for f in w if isinstance(f, Frame) and f.envelope is None}
    return [x for x in merged if x not in bad]


def _merge(wires, picks) -> list[tuple[str, int]]:
    merger = FeedMerger(CHANNELS)
    pos = dict.fromkeys(wires, 0)
    out: list[Frame] = []
    for pick in picks + ["match", "market"] * 100:
        channel = pick if pos[pick] < len(wires[pick]) else next((c for c in wires if pos[c] < len(wires[c])), None)
        if channel is None:
            break
        item = wires[channel][pos[channel]]
        pos[channel] += 1
        out += merger.heartbeat(item) if isinstance(item, Heartbeat) else merger.push(item)
    assert merger.pending() == 0, "frames left waiting: a stall"
    return [(f.channel, f.seq) for f in out]


@settings(max_examples=400, deadline=None)
@given(schedule=schedules, data=st.data())
def test_any_interleaving_of_the_wires_gives_the_same_order(schedule, data):
    idle = set(data.draw(st.lists(st.integers(0, len(schedule)), max_size=10)))
    wires = _wire(schedule, idle)
    n = sum(len(w) for w in wires.values())
    first = _merge(wires, data.draw(st.lists(st.sampled_from(["match", "market"]), min_size=n, max_size=n)))
    second = _merge(wires, data.draw(st.lists(st.sampled_from(["match", "market"]), min_size=n, max_size=n)))
    assert _valid(first, wires) == _valid(second, wires)
    for merged in (first, second):
        assert sorted(merged) == sorted((c, f.seq) for c, w in wires.items() for f in w if isinstance(f, Frame))
        for channel in wires:  # each channel in its own order
            seqs = [s for c, s in merged if c == channel]
            assert seqs == sorted(seqs)


def test_a_lying_time_cannot_stall_the_merge_nor_disorder_what_follows():
    merger = FeedMerger(CHANNELS)
    out = merger.push(Frame("f", "market", 1, "", _env("market", 1, 10.0)))
    out += merger.push(Frame("f", "match", 1, "", _env("match", 1, 11.0)))
    out += merger.push(Frame("f", "market", 2, "", _env("market", 2, 1e9)))  # a lie
    out += merger.push(Frame("f", "market", 3, "", _env("market", 3, 12.0)))
    out += merger.push(Frame("f", "match", 2, "", _env("match", 2, 13.0)))
    assert [(f.channel, f.seq) for f in out] == [("market", 1), ("match", 1), ("match", 2)]  # market 2 waits
    # the market's heartbeat: the server's clock is at 13, so market 2's time was a lie
    out += merger.heartbeat(Heartbeat(feed="f", channel="market", last_seq=3, event_time=13.0))
    assert [(f.channel, f.seq) for f in out][3:] == [("market", 2), ("market", 3)]
    out += merger.push(Frame("f", "market", 4, "", _env("market", 4, 14.0)))  # measured from the truth again
    out += merger.push(Frame("f", "match", 3, "", _env("match", 3, 15.0)))
    assert [(f.channel, f.seq) for f in out][5:] == [("market", 4)]


def test_a_first_frame_whose_time_the_server_contradicts_cannot_stall_the_merge():
    merger = FeedMerger(CHANNELS)
    out = merger.push(Frame("f", "market", 1, "", _env("market", 1, 1e9)))  # a lie from the first frame on
    out += merger.push(Frame("f", "market", 2, "", _env("market", 2, 5.0)))
    out += merger.push(Frame("f", "match", 1, "", _env("match", 1, 4.0)))
    out += merger.heartbeat(Heartbeat(feed="f", channel="match", last_seq=1, event_time=6.0))
    assert [(f.channel, f.seq) for f in out] == [("match", 1)]  # waiting: the market's times are 1e9 so far
    out += merger.heartbeat(Heartbeat(feed="f", channel="market", last_seq=2, event_time=6.0))
    assert [(f.channel, f.seq) for f in out] == [("match", 1), ("market", 1), ("market", 2)]
    assert merger.pending() == 0
