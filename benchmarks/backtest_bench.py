"""Wall time of the backtests (a benchmark, not a test).

    uv run --frozen python -m benchmarks.backtest_bench [--home DIR] [--sources pbp] [--matches 0]
                                                        [--model markov-serve-updates] [--messages] [--prematch]
                                                        [--reference]

PERFORMANCE.md target: every ATP point-by-point match in the shared data through the trading core
(no network) in <= 60 s, beside a bare vectorised Markov scorer of the same points. Reads the pipeline's
``replay_catalog`` (and, with ``--prematch``, ``walkforward_predictions``) from ``<home>/warehouse``
(default: ``$COURTSIDE_HOME``, i.e. after ``courtside pipeline``) and replays every match
(``--matches 0``) through ``training.inplay_backtest.run_inplay`` — the trading core: triggers,
the in-play model, value, Kelly, risk checks, the paper exchange with its bet delay, settlement —
against the SIMULATED market (the fast replay; ``--messages``: every feed message, the reference). One
process trades; a second prepares the matches meanwhile (scores, simulated quotes, the model's probabilities
worked out ahead: ``InplayBacktestConfig.parallel_from``; ``--one-process`` keeps it all in one). CPU is
shown for both.

``--reference`` also times, on the same matches, (1) the feed alone (scores and simulated market
prices, no model, no trading) and (2) PERFORMANCE.md's baseline, a bare vectorised Markov scorer: every
point's score from the point sequence and P(player 1 wins) from the chain for all of them at once
(``features.markov.vector``), calibrated to each match's prior — so the figures read as ratios on this
shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import targets
from courtside.settings import Settings
from features.markov.vector import calibrated_serve_probabilities, chain_probabilities
from features.scoring import Score, ScoringError
from feeds.live.market import SimulatedMarket
from feeds.live.replay import scores_of
from training import backtest as bt
from training import inplay_backtest as ib

TARGET_S = targets.BACKTEST_S
SCORER_BATCH = 200_000
"""Points per vectorised chain call of the bare scorer (bounds its memory)."""


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the replay's preparing process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def feed_only(rows: pd.DataFrame) -> tuple[float, int]:
    """Seconds to compute every score and simulated market update of ``rows`` (no model, no trading)."""
    started, points = time.perf_counter(), 0
    for row in rows.to_dict("records"):
        try:
            scores, _ = scores_of(row)
        except (ScoringError, ValueError, TypeError):
            continue
        first = int(row["first_server"]) - 1 if row["source"] == "slam" else 0
        sim = SimulatedMarket(str(row["event_key"]), float(row["prematch_p1"]), Score.start(scores[0].fmt, first))
        sim.opening()
        for n, score in enumerate(scores, start=1):
            sim.after_point(score, n)
        points += len(scores)
    return time.perf_counter() - started, points


def markov_scorer(rows: pd.DataFrame) -> tuple[float, int, float]:
    """Seconds for the bare vectorised Markov scorer of ``rows`` (every point's score, then P(player 1 wins)
    for all points at once), the points scored, and their mean probability (a checksum)."""
    started, points, total = time.perf_counter(), 0, 0.0
    scores: list[Score] = []
    priors: list[float] = []  # one a match
    lengths: list[int] = []

    def flush() -> None:
        nonlocal total
        if not scores:
            return
        p_a, p_b = calibrated_serve_probabilities(priors, [scores[i].fmt for i in np.cumsum([0, *lengths[:-1]])])
        total += float(chain_probabilities(scores, np.repeat(p_a, lengths), np.repeat(p_b, lengths)).sum())
        scores.clear()
        priors.clear()
        lengths.clear()

    for row in rows.to_dict("records"):
        try:
            match, _ = scores_of(row)
        except (ScoringError, ValueError, TypeError):
            continue
        if not match:
            continue
        scores.extend(match)
        priors.append(float(row["prematch_p1"]))
        lengths.append(len(match))
        points += len(match)
        if len(scores) >= SCORER_BATCH:
            flush()
    flush()
    return time.perf_counter() - started, points, total / max(points, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(Settings.from_env().home), help="state folder with the warehouse")
    parser.add_argument("--sources", nargs="+", default=["pbp"], help="catalog sources (pbp, slam)")
    parser.add_argument("--matches", type=int, default=0, help="matches to replay, evenly spaced (0 = all)")
    parser.add_argument("--model", default="markov-serve-updates", choices=sorted(ib.INPLAY_MODELS))
    parser.add_argument("--market", default="simulated", choices=sorted(ib.INPLAY_MARKETS))
    parser.add_argument(
        "--messages", action="store_true", help="replay every feed message (the reference replay, ~3x slower)"
    )
    parser.add_argument(
        "--one-process", action="store_true", help="no second process preparing the matches (parallel_from=0)"
    )
    parser.add_argument("--prematch", action="store_true", help="also time the pre-match backtest")
    parser.add_argument("--reference", action="store_true", help="also time the feed alone on the same matches")
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args()

    warehouse = Path(args.home) / "warehouse"
    catalog = pd.read_parquet(warehouse / "replay_catalog.parquet")
    figures: dict = {
        "sources": args.sources,
        "model": args.model,
        "market": args.market,
        "messages": args.messages,
        "target_s": TARGET_S,
    }

    cpu, children = time.process_time(), _children_cpu()
    result = ib.run_inplay(
        catalog,
        ib.INPLAY_MODELS[args.model],
        args.model,
        ib.InplayBacktestConfig(
            market=ib.INPLAY_MARKETS[args.market],
            messages=args.messages,
            **({"parallel_from": 0} if args.one_process else {}),
        ),
        limit=args.matches or None,
        sources=tuple(args.sources),
    )
    cpu, children = time.process_time() - cpu, _children_cpu() - children
    s = bt.summarize(result.ledger, n_boot=0)
    figures["inplay"] = {
        "matches": result.matches,
        "points": result.points,
        "predictions": result.predictions,
        "decisions": result.decisions,
        "orders": result.orders,
        "bets": s["bets"],
        "pnl": s["pnl"],
        "wall_s": round(result.seconds, 1),
        "cpu_s": round(cpu, 1),
        "preparing_cpu_s": round(children, 1),
        "points_per_s": round(result.points / result.seconds),
        "us_per_point": round(result.seconds / result.points * 1e6, 1),
        "skipped": {k: int(v) for k, v in result.ledger.counts.items() if k.startswith("skipped")},
        "meets_target": result.seconds <= TARGET_S if not args.matches else None,
    }
    print(f"in-play backtest ({ib.SIMULATED}: {args.market}), model {args.model}, sources {', '.join(args.sources)}:")
    print(
        f"  {result.matches:,} matches, {result.points:,} points, {result.predictions:,} predictions, "
        f"{result.orders:,} orders in {result.seconds:.1f} s wall / CPU {cpu:.1f} s trading + {children:.1f} s "
        "preparing "
        f"({figures['inplay']['us_per_point']} µs a point, {figures['inplay']['points_per_s']:,} points/s); "
        + (
            f"target for all matches <= {TARGET_S:.0f} s: {'met' if result.seconds <= TARGET_S else 'NOT met'}"
            if not args.matches
            else f"a sample (the target, <= {TARGET_S:.0f} s, is for all matches: --matches 0)"
        )
    )
    if args.reference:
        seconds, points = feed_only(ib.inplay_rows(catalog, tuple(args.sources), args.matches or None))
        figures["feed_only"] = {
            "wall_s": round(seconds, 1),
            "points": points,
            "trading_share": round(1 - seconds / result.seconds, 3),
        }
        print(
            f"  reference, the feed alone (scores + simulated market, no model, no trading): {seconds:.1f} s "
            f"for {points:,} points; model and trading are {1 - seconds / result.seconds:.0%} of the replay"
        )
        seconds, points, mean_p = markov_scorer(ib.inplay_rows(catalog, tuple(args.sources), args.matches or None))
        figures["markov_scorer"] = {
            "wall_s": round(seconds, 1),
            "points": points,
            "mean_probability": round(mean_p, 6),
            "backtest_ratio": round(result.seconds / seconds, 2),
        }
        print(
            f"  baseline, a bare vectorised Markov scorer of the same points: {seconds:.1f} s for {points:,} points; "
            f"the backtest takes {result.seconds / seconds:.1f}x as long"
        )
    if args.prematch:
        predictions = pd.read_parquet(warehouse / "walkforward_predictions.parquet")
        started = time.perf_counter()
        pre = bt.run_prematch(predictions)
        figures["prematch"] = {
            "wall_s": round(time.perf_counter() - started, 1),
            "strategies": len(pre.strategies),
            "rows": len(predictions),
        }
        print(
            f"pre-match backtest: {len(pre.strategies)} strategies (threshold grid included) over "
            f"{len(predictions):,} prediction rows in {figures['prematch']['wall_s']} s"
        )
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
