"""The feed's own order does not depend on arrival: any interleaving of two channels' frames (and of
their heartbeats) comes out of the merger in the same order, the one sorted by (time, channel, seq);
bad frames and a hostile time leap cannot hold the other channel back."""

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.live.client import Frame
from feeds.live.ordering import FeedMerger
from feeds.live.protocol import Envelope, Heartbeat, MarketUpdate, RunnerPrices

CHANNELS = [("f", "market"), ("f", "match")]


def _env(channel: str, seq: int, t: float) -> Envelope:
    data = MarketUpdate(event_key="m", market_id="sim-m", status="SUSPENDED", in_play=True, simulated=True,
                        source="simulated", runners=[RunnerPrices(selection="First Player"),
                                                     RunnerPrices(selection="Second Player")])
    return Envelope.model_construct(type="event", feed="f", channel=channel, seq=seq, event_time=t, data=data)


def _streams(draw_times) -> dict[str, list[Frame]]:
    out = {}
    for channel, times in draw_times.items():
        frames, t = [], 0.0
        for seq, (step, bad) in enumerate(times, start=1):
            t += step
            env = None if bad else _env(channel, seq, t)
            frames.append(Frame("f", channel, seq, "", env, "bad" if bad else None))
        out[channel] = frames
    return out


steps = st.lists(st.tuples(st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0]), st.booleans()), min_size=0, max_size=25)


@settings(max_examples=300, deadline=None)
@given(match=steps, market=steps, data=st.data())
def test_any_arrival_order_gives_the_same_output(match, market, data):
    streams = _streams({"match": match, "market": market})

    def merged(choices) -> list[tuple[str, int]]:
        merger = FeedMerger(CHANNELS, max_jump_s=86400)
        pos = {c: 0 for c in streams}
        out = []
        for pick in choices:
            channel = pick if pos[pick] < len(streams[pick]) else next(
                (c for c in streams if pos[c] < len(streams[c])), None)
            if channel is None:
                break
            out += merger.push(streams[channel][pos[channel]])
            pos[channel] += 1
        for channel, frames in streams.items():  # what is left arrives, then both channels heartbeat
            while pos[channel] < len(frames):
                out += merger.push(frames[pos[channel]])
                pos[channel] += 1
        for channel, frames in streams.items():
            out += merger.heartbeat(Heartbeat(feed="f", channel=channel, last_seq=len(frames), event_time=1e6))
        assert merger.pending() == 0
        return [(f.channel, f.seq) for f in out]

    n = len(match) + len(market)
    first = merged(data.draw(st.lists(st.sampled_from(["match", "market"]), min_size=n, max_size=n)))
    second = merged(data.draw(st.lists(st.sampled_from(["match", "market"]), min_size=n, max_size=n)))
    assert first == second
    assert sorted(first) == sorted((c, f.seq) for c, fs in streams.items() for f in fs)


def test_a_hostile_leap_does_not_hold_the_other_channel_back():
    merger = FeedMerger(CHANNELS, max_jump_s=100)
    out = merger.push(Frame("f", "market", 1, "", _env("market", 1, 10.0)))
    out += merger.push(Frame("f", "match", 1, "", _env("match", 1, 11.0)))
    out += merger.push(Frame("f", "market", 2, "", _env("market", 2, 1e9)))  # a leap: ordered at 10 s
    out += merger.push(Frame("f", "market", 3, "", _env("market", 3, 12.0)))
    out += merger.push(Frame("f", "match", 2, "", _env("match", 2, 13.0)))
    assert [(f.channel, f.seq) for f in out] == [("market", 1), ("market", 2), ("match", 1), ("market", 3)]
