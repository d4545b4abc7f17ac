"""A hostile feed: real replayed matches with malformed frames interleaved — bad JSON, binary frames,
wrong types, non-finite and implausible numbers, impossible scores, repeated and out-of-order sequence
numbers, 1 MB frames, unknown players, matches and markets, time leaps, the crash-loop messages of
issue 9. Every bad frame holds a position of its channel, as on a real wire; each is expected to be
quarantined exactly once, and every real frame to be handled as if the bad ones were not there."""

from __future__ import annotations

import json
import random
from collections import Counter

from tests.chaos.harness import CHANNELS, Published

LEAP_S = 3 * 86400.0
"""How far ahead a leaping frame's clock goes (more than the engine's one-day bound)."""


def _replace(raw: str, path: list, value) -> str:
    data = json.loads(raw)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(data)


def _with_seq(raw: str, seq: int) -> str:
    return _replace(raw, ["seq"], seq)


def _text(raw: str, old: str, new: str) -> str:
    assert old in raw, (old, raw[:200])
    return raw.replace(old, new, 1)


def _number(raw: str, field: str, literal: str) -> str:
    """Set a numeric field to a literal JSON cannot parse as a finite float (NaN, Infinity, 1e400, ...)."""
    data = json.loads(raw)
    marker = "__NUMBER__"

    def put(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == field and isinstance(v, int | float) and not isinstance(v, bool):
                    node[k] = marker
                    return True
                if put(v):
                    return True
        elif isinstance(node, list):
            return any(put(v) for v in node)
        return False

    assert put(data), field
    return json.dumps(data).replace(f'"{marker}"', literal, 1)


def make_bad(
    category: str, channel: str, position: int, template: str, previous: str | None, rng: random.Random, other_key: str
) -> str | bytes:
    """One malformed frame of ``category`` at ``position``, built from the channel's latest real frame."""
    own = _with_seq(template, position)
    if category == "not_json":
        return rng.choice(
            [
                "not json at all {",
                '{"type": "event", "seq": ',
                "]]]",
                "",
                "null",
                "42",
                '"a string"',
                '{"type": "event"}',
                "[1, 2, 3]",
            ]
        )
    if category == "binary":
        return rng.randbytes(rng.randint(1, 2048))
    if category == "truncated":
        return own[: rng.randint(1, max(1, len(own) - 2))]
    if category == "deep_json":
        return "[" * 50_000 + "]" * 50_000
    if category == "huge":
        return json.dumps(
            {"type": "event", "feed": "live", "channel": channel, "seq": position, "padding": "x" * (1 << 20)}
        )
    if category == "wrong_types":
        data = json.loads(own)
        choice = rng.randrange(5)
        if choice == 0:
            data["seq"] = str(position)
        elif choice == 1:
            data["event_time"] = "soon"
        elif choice == 2:
            data["data"]["kind"] = 7
        elif choice == 3:
            data["data"]["event_key"] = ["a", "list"]
        else:
            data["channel"] = "odds"
        return json.dumps(data)
    if category == "non_finite":
        return _number(own, "event_time", rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "1e308", "-1e12"]))
    if category == "unknown_field":
        return _replace(own, ["data", "surprise"], 1)
    if category == "repeat":
        return previous if previous is not None else "not json"
    if category == "future_seq":
        return _with_seq(template, position + rng.randint(100, 100_000))
    if category == "error_midstream":
        return json.dumps({"type": "error", "message": "subscription refused (a lie in the middle of a stream)"})
    if category == "leap":
        return _replace(own, ["event_time"], json.loads(own)["event_time"] + LEAP_S)
    # --- the match channel: messages about matches ---
    if category == "season":
        return _replace(own, ["data", "tournament_season"], rng.choice(["²", "20１2", "1066", "12"]))
    if category == "advantage_both":
        return _replace(own, ["data", "event_game_result"], rng.choice(["A - A", "A - 15", "30 - A"]))
    if category == "final_result":
        return _replace(own, ["data", "event_final_result"], "3 - 3")
    if category == "impossible_score":
        data = json.loads(own)
        data["data"]["scores"] = [
            {"score_first": 5, "score_second": 4, "score_set": 1},
            {"score_first": 0, "score_second": 0, "score_set": 2},
        ]
        data["data"]["event_final_result"] = "1 - 0"
        data["data"]["kind"] = "point"
        data["data"]["event_winner"] = None
        return json.dumps(data)
    if category == "unknown_match":
        data = json.loads(own)
        data["data"]["event_key"] = f"ghost-{position}"
        data["data"]["kind"] = "point"
        return json.dumps(data)
    if category == "other_players":
        data = json.loads(own)
        data["data"]["event_first_player"] = "Somebody Else"
        return json.dumps(data)
    # --- the market channel ---
    if category == "sizes":
        return _number(
            own,
            rng.choice(["back_size", "lay_size", "traded_volume"]),
            rng.choice(["Infinity", "1e400", "NaN", "1e12"]),
        )
    if category == "price_off_ladder":
        data = json.loads(own)
        data["data"]["runners"][0]["back_price"] = rng.choice([1.011, 0.5, 1e308, 1001])
        return json.dumps(data)
    if category == "junk_market":
        data = json.loads(own)
        data["data"]["market_id"] = rng.choice(["", "five", f"sim-{other_key}", "sim-", "-x"])
        return json.dumps(data)
    raise ValueError(category)


COMMON = (
    "not_json",
    "binary",
    "truncated",
    "wrong_types",
    "non_finite",
    "unknown_field",
    "repeat",
    "future_seq",
    "future_pair",
    "error_midstream",
    "leap",
)
BY_CHANNEL = {
    "match": COMMON
    + ("season", "advantage_both", "final_result", "impossible_score", "unknown_match", "other_players"),
    "market": COMMON + ("sizes", "price_off_ladder", "junk_market"),
}
RARE = {"huge": 20, "deep_json": 20}
"""Frames too costly to send thousands of: at most this many each."""


def hostile(real: list[Published], bad: int, seed: int = 9) -> list[Published]:
    """``real`` with ``bad`` malformed frames interleaved (each channel renumbered by position)."""
    rng = random.Random(seed)
    last_index = {c: max(i for i, f in enumerate(real) if f.channel == c) for c in CHANNELS}
    # insertion points: before real frame i (never after a channel's last frame, nor among the last 5% of
    # it, so a leaping or out-of-order frame always has a real frame after it to show what it is)
    slots: dict[int, list[str]] = {}
    counts = Counter()
    for _ in range(bad):
        i = rng.randrange(0, len(real))  # before the very first real frame too
        channel = real[i].channel
        if i > last_index[channel] - len(real) // 20:
            i = rng.randrange(0, max(1, last_index[channel] - len(real) // 20))
            channel = real[i].channel
        categories = list(BY_CHANNEL[channel]) + [c for c, n in RARE.items() if counts[c] < n]
        category = rng.choice(categories)
        if category == "leap" and ("leap" in slots.get(i, []) or i == 0):
            # two leaps in a row agree with each other (the engine takes them as the clock), and the first message
            # of a fresh session sets the feed's clock: neither is a leap to refuse (README, Reliability)
            category = "not_json"
        counts[category] += 1
        slots.setdefault(i, []).append(category)
    keys = sorted({json.loads(f.raw)["data"]["event_key"] for f in real})
    out: list[Published] = []
    seq = dict.fromkeys(CHANNELS, 0)
    latest: dict[str, str] = {}
    previous_out: dict[str, str] = {}
    for i, frame in enumerate(real):
        for category in slots.get(i, []):
            channel = real[i].channel
            template = latest.get(channel) or frame.raw
            this_key = json.loads(template)["data"]["event_key"]
            other = next(k for k in keys if k != this_key) if len(keys) > 1 else "other"
            if category == "future_pair":  # two valid frames agreeing on a jump: still out of order (3 must agree)
                claim = seq[channel] + rng.randint(100, 100_000)
                for k in range(2):
                    seq[channel] += 1
                    out.append(Published(channel, seq[channel], _with_seq(template, claim + k), None, category))
                continue
            seq[channel] += 1
            raw = make_bad(category, channel, seq[channel], template, previous_out.get(channel), rng, other)
            out.append(Published(channel, seq[channel], raw, None, category))
        seq[frame.channel] += 1
        raw = _with_seq(frame.raw, seq[frame.channel])
        out.append(Published(frame.channel, seq[frame.channel], raw, frame.event_time, "valid"))
        latest[frame.channel] = raw
        previous_out[frame.channel] = raw
    return out
