"""Latency of the in-play win probability on the live decision path (a benchmark, not a test).

    uv run python benchmarks/inplay_bench.py [--matches 300] [--repeat 5]

Replays real ATP point-by-point matches (``../shared/data/pbp``) as the live engine would: for each
point, update the serve tracker and ask ``live_win_probability``. Because the tracker changes the
serve probabilities after every point, almost every call meets a new (p_a, p_b) pair ("cold"): that
is the realistic case. Also timed: the same scores at fixed probabilities ("warm", the memo hit),
the one-off calibration per match, one ``Score.point`` and a trivial function call as references
on this machine (PERFORMANCE.md: machines are shared and noisy, compare ratios in one run).
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import time
from pathlib import Path

import pandas as pd

from features.markov import scalar
from features.markov.scalar import ServeTracker, live_win_probability, match_win_probability, serve_probabilities
from features.replays import replay_pbp
from features.scoring import Score, ScoringError, match_format, tournament_key

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SLAMS = ("australian_open", "roland_garros", "wimbledon", "us_open")


def load_matches(count: int) -> list[list[Score]]:
    """The score sequences (start included) of the first ``count`` replayable matches of the archive."""
    frame = pd.read_csv(DATA / "pbp" / "pbp_matches_atp_main_archive.csv.gz")
    matches = []
    for row in frame.itertuples(index=False):
        sets = [tuple(int(g) for g in re.match(r"(\d+)-(\d+)", s).groups()) for s in row.score.split()]
        won = max(sum(a > b for a, b in sets), sum(b > a for a, b in sets))
        best_of = 5 if len(sets) > 3 or won == 3 or tournament_key(row.tny_name) in SLAMS else 3
        fmt = match_format(row.tny_name, 2000 + int(row.date[-2:]), best_of)
        try:
            states = replay_pbp(row.pbp, fmt, 0)
        except ScoringError:
            continue
        matches.append([Score.start(fmt, 0), *states])
        if len(matches) == count:
            break
    return matches


def percentiles(samples_ns: list[int]) -> str:
    ordered = sorted(samples_ns)
    p50 = statistics.median(ordered) / 1000
    p99 = ordered[int(0.99 * (len(ordered) - 1))] / 1000
    return f"median {p50:7.2f} µs   p99 {p99:7.2f} µs   ({len(ordered):,} calls)"


def time_live_path(matches: list[list[Score]], prematch: list[float]) -> list[int]:
    """Per point: tracker update + live win probability, as the live engine does it."""
    samples = []
    clock = time.perf_counter_ns
    for states, p in zip(matches, prematch, strict=True):
        tracker = ServeTracker.from_prematch(p, states[0].fmt)
        for before, after in zip(states, states[1:], strict=False):
            start = clock()
            tracker = tracker.observe_transition(before, after)
            live_win_probability(p, after, tracker)
            samples.append(clock() - start)
    return samples


def time_cold(matches: list[list[Score]]) -> list[int]:
    """match_win_probability alone, a new probability pair on every call."""
    samples = []
    clock = time.perf_counter_ns
    k = 0
    for states in matches:
        for score in states:
            k += 1
            p_a, p_b = 0.6 + (k % 997) * 1e-5 + 1e-9 * k, 0.62 - (k % 991) * 1e-5
            start = clock()
            match_win_probability(score, p_a, p_b)
            samples.append(clock() - start)
    return samples


def time_warm(matches: list[list[Score]]) -> list[int]:
    """match_win_probability alone at fixed probabilities (after the first call of the pair)."""
    samples = []
    clock = time.perf_counter_ns
    match_win_probability(matches[0][0], 0.65, 0.62)
    for states in matches:
        for score in states:
            start = clock()
            match_win_probability(score, 0.65, 0.62)
            samples.append(clock() - start)
    return samples


def time_calibration(matches: list[list[Score]], prematch: list[float]) -> list[int]:
    samples = []
    for states, p in zip(matches, prematch, strict=True):
        serve_probabilities.cache_clear()
        start = time.perf_counter_ns()
        serve_probabilities(p, states[0].fmt)
        samples.append(time.perf_counter_ns() - start)
    return samples


def time_references(matches: list[list[Score]]) -> tuple[list[int], list[int]]:
    point, call = [], []
    clock = time.perf_counter_ns

    def nothing(score: Score, p_a: float, p_b: float) -> float:
        return p_a

    for states in matches:
        for score in states[:-1]:
            start = clock()
            score.point(0)
            point.append(clock() - start)
            start = clock()
            nothing(score, 0.6, 0.6)
            call.append(clock() - start)
    return point, call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    matches = load_matches(args.matches)
    prematch = [0.3 + 0.4 * ((k * 37) % 100) / 100 for k in range(len(matches))]
    print(
        f"{len(matches)} real matches, {sum(len(m) for m in matches) - len(matches):,} points; "
        f"{args.repeat} repetitions (timings pooled)"
    )
    results: dict[str, list[int]] = {"live": [], "cold": [], "warm": [], "calibration": [], "point": [], "call": []}
    gc.disable()
    for _ in range(args.repeat):
        scalar._chain.cache_clear()
        serve_probabilities.cache_clear()
        results["calibration"] += time_calibration(matches, prematch)
        results["live"] += time_live_path(matches, prematch)
        results["cold"] += time_cold(matches)
        results["warm"] += time_warm(matches)
        point, call = time_references(matches)
        results["point"] += point
        results["call"] += call
    gc.enable()
    labels = {
        "live": "live point (tracker update + live_win_probability)",
        "cold": "match_win_probability, new (p_a, p_b) each call",
        "warm": "match_win_probability, memoised (p_a, p_b)",
        "calibration": "serve_probabilities (once per match)",
        "point": "reference: Score.point",
        "call": "reference: empty Python function call",
    }
    for key, label in labels.items():
        print(f"{label:55s} {percentiles(results[key])}")
    ratio = statistics.median(results["live"]) / statistics.median(results["point"])
    print(f"live point / Score.point (medians): {ratio:.1f}x")


if __name__ == "__main__":
    main()
