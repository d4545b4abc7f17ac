"""One table of ``make bench``: every figure of PERFORMANCE.md's targets beside the baseline measured in
the same run, the ratio, and whether the target is met — from the JSON each benchmark writes.

    uv run --frozen python -m benchmarks.summary --pipeline P.json --live L.json --backtest B.json [--fanout F.json]
                                                 [--incremental I.json] [--fanout-replicas R.json]

A part that did not run (or a figure a benchmark did not produce) shows as "not measured", never as met.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import targets


@dataclass(frozen=True)
class Row:
    path: str
    figure: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def _get(d: dict | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    half = len(values) // 2
    return values[half] if len(values) % 2 else (values[half - 1] + values[half]) / 2


def _ms(v: float | None) -> str:
    return "not measured" if v is None else f"{v:.2f} ms"


def pipeline_rows(p: dict | None) -> list[Row]:
    total = _get(p, "median_s")
    runs = _get(p, "totals_s") or []
    figure = "not measured" if total is None else f"{total:.1f} s (median of {len(runs)})"
    return [
        Row(
            "full pipeline, raw files -> registered champion, fresh state",
            figure,
            "—",
            "—",
            f"<= {targets.PIPELINE_S:.0f} s",
            None if total is None else total <= targets.PIPELINE_S,
        )
    ]


def incremental_rows(i: dict | None) -> list[Row]:
    median, backfill = _get(i, "median_s"), _get(i, "backfill_s")
    runs = _get(i, "times_s") or []
    equal = _get(i, "equal_to_full_walk")
    return [
        Row(
            "one new week of ATP results -> ingest, clean, its season's features (partition), built state",
            "not measured"
            if median is None
            else f"{median:.1f} s (median of {len(runs)}; equal to a full walk: {'yes' if equal else 'NO'})",
            "not measured" if backfill is None else f"every season rebuilt in one run {backfill:.1f} s",
            "—" if median is None or not backfill else f"{median / backfill:.2f} of the rebuild",
            f"<= {targets.INCREMENTAL_WEEK_S:.0f} s",
            None if median is None else bool(median <= targets.INCREMENTAL_WEEK_S and equal),
        )
    ]


def backtest_rows(b: dict | None) -> list[Row]:
    wall = _get(b, "inplay", "wall_s")
    points = _get(b, "inplay", "points")
    scorer = _get(b, "markov_scorer", "wall_s")
    full = _get(b, "inplay", "meets_target") is not None  # None: a sample, not every match
    figure = "not measured" if wall is None else f"{wall:.1f} s for {points:,} points" + ("" if full else " (a sample)")
    baseline = "not measured" if scorer is None else f"bare vectorised Markov scorer {scorer:.1f} s"
    ratio = "—" if wall is None or not scorer else f"{wall / scorer:.1f}x the scorer"
    met = None if wall is None or not full else wall <= targets.BACKTEST_S
    return [
        Row(
            "in-play backtest, every ATP point-by-point match through the trading core",
            figure,
            baseline,
            ratio,
            f"<= {targets.BACKTEST_S:.0f} s",
            met,
        )
    ]


def live_rows(live: dict | None) -> list[Row]:
    rows: list[Row] = []
    runs = _get(live, "decision_latency") or []
    p50 = _median([_get(r, "decisions", "p50") for r in runs])
    p99 = _median([_get(r, "decisions", "p99") for r in runs])
    rows.append(
        Row(
            f"event -> decision at 200 events/s with BentoML ({len(runs)} run(s), median)",
            f"p50 {_ms(p50)}, p99 {_ms(p99)}",
            "brief: sub-100 ms",
            "—",
            f"p50 <= {targets.DECISION_P50_MS} ms, p99 <= {targets.DECISION_P99_MS:.0f} ms",
            None if p50 is None or p99 is None else p50 <= targets.DECISION_P50_MS and p99 <= targets.DECISION_P99_MS,
        )
    )
    t = _get(live, "throughput")
    rate = _get(t, "messages_per_s")
    bare = _get(live, "parse_only", "median_per_s")  # median of its passes
    rows.append(
        Row(
            "engine flat out, with predictions",
            "not measured" if rate is None else f"{rate:,.0f} msg/s",
            "not measured" if bare is None else f"parse-only loop {bare:,.0f} msg/s",
            "—" if rate is None or not bare else f"{rate / bare:.2f} of the loop",
            f">= {targets.THROUGHPUT_PER_S:,.0f} msg/s and >= {targets.THROUGHPUT_VS_PARSE_ONLY:.2f} of the loop",
            None
            if rate is None or not bare
            else rate >= targets.THROUGHPUT_PER_S and rate >= bare * targets.THROUGHPUT_VS_PARSE_ONLY,
        )
    )
    predict = _get(live, "http", "predict")
    mlflow = _get(live, "http", "mlflow")
    p50, p99 = _get(predict, "median_round_p50"), _get(predict, "median_round_p99")
    m50, m99 = _get(mlflow, "median_round_p50"), _get(mlflow, "median_round_p99")
    rows.append(
        Row(
            "BentoML /predict, one row over HTTP",
            f"p50 {_ms(p50)}, p99 {_ms(p99)}",
            "not measured" if m50 is None else f"`mlflow models serve` p50 {_ms(m50)}, p99 {_ms(m99)}",
            "—" if p50 is None or not m50 else f"{p50 / m50:.2f} of mlflow's p50",
            f"p50 <= {targets.PREDICT_P50_MS} ms, p99 <= {targets.PREDICT_P99_MS:.0f} ms; faster than mlflow",
            None
            if p50 is None or p99 is None or m50 is None
            else p50 <= targets.PREDICT_P50_MS and p99 <= targets.PREDICT_P99_MS and p50 < m50,
        )
    )
    return rows


def _broadcast(f: dict | None) -> tuple[str, float | None]:
    """The raw websockets.broadcast baseline of a fan-out run: (its figure, its all-delivered p99)."""
    b = _get(f, "baseline", "all_delivered_ms", "p99")
    if b is None:
        return "not measured", None
    n = _get(f, "baseline", "connect", "subscribed") or 0
    servers = _get(f, "baseline", "servers") or 1
    return f"raw websockets.broadcast, {servers} process(es), {n:,} subscribers: p99 {b:.0f} ms", b


def fanout_rows(f: dict | None) -> list[Row]:
    p99 = _get(f, "all_delivered_ms", "p99")
    peak = _get(f, "rss_mb", "peak")
    baseline, b99 = _broadcast(f)
    return [
        Row(
            "WebSocket fan-out, 10,000 subscribers of one match: last subscriber has it",
            "not measured" if p99 is None else f"p99 {p99:.0f} ms, peak RSS {peak:.0f} MB",
            baseline,
            "—" if p99 is None or not b99 else f"{p99 / b99:.2f}x broadcast's p99",
            f"p99 <= {targets.FANOUT_P99_MS:.0f} ms, <= {targets.FANOUT_RSS_MB:.0f} MB",
            None if p99 is None or peak is None else p99 <= targets.FANOUT_P99_MS and peak <= targets.FANOUT_RSS_MB,
        )
    ]


def fanout_replicas_rows(f: dict | None) -> list[Row]:
    p99 = _get(f, "all_delivered_ms", "p99")
    reached = _get(f, "connect", "subscribed")
    replicas = _get(f, "args", "replicas")
    lost = _get(f, "messages", "lost")
    peaks = [_get(r, "rss_mb", "peak") for r in _get(f, "replicas") or []]
    baseline, b99 = _broadcast(f)
    figure = (
        "not measured"
        if p99 is None or reached is None
        else f"{reached:,} subscribers on {replicas} replicas: p99 {p99:.0f} ms, {lost} lost, peak RSS "
        f"{' / '.join(f'{x:.0f}' for x in peaks if x is not None)} MB"
    )
    met = None
    if p99 is not None and reached is not None and b99:
        met = reached >= targets.FANOUT_REPLICAS_SUBSCRIBERS and lost == 0 and p99 <= b99 * targets.FANOUT_VS_BROADCAST
    return [
        Row(
            f"WebSocket fan-out across gateway replicas, {targets.FANOUT_REPLICAS_SUBSCRIBERS:,} subscribers of one "
            "match: last subscriber has it",
            figure,
            baseline,
            "—" if p99 is None or not b99 else f"{p99 / b99:.2f}x broadcast's p99",
            f"{targets.FANOUT_REPLICAS_SUBSCRIBERS:,} subscribers, none lost, p99 <= "
            f"{targets.FANOUT_VS_BROADCAST}x broadcast's",
            met,
        )
    ]


def table(
    pipeline: dict | None,
    live: dict | None,
    backtest: dict | None,
    fanout: dict | None,
    incremental: dict | None = None,
    fanout_replicas: dict | None = None,
) -> str:
    rows = (
        pipeline_rows(pipeline)
        + incremental_rows(incremental)
        + backtest_rows(backtest)
        + live_rows(live)
        + fanout_rows(fanout)
        + fanout_replicas_rows(fanout_replicas)
    )
    lines = ["| path | measured | baseline, same run | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "not measured" if r.met is None else ("**yes**" if r.met else "no")
        lines.append(f"| {r.path} | {r.figure} | {r.baseline} | {r.ratio} | {r.target} | {met} |")
    return "\n".join(lines)


def _load(path: str | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for part in ("pipeline", "live", "backtest", "fanout", "incremental", "fanout-replicas"):
        parser.add_argument(f"--{part}", help=f"the {part} benchmark's JSON")
    parser.add_argument("--output", help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    text = table(
        _load(args.pipeline),
        _load(args.live),
        _load(args.backtest),
        _load(args.fanout),
        _load(args.incremental),
        _load(args.fanout_replicas),
    )
    load = os.getloadavg()
    text += f"\n\n(2 cores; 1/5/15-min load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})"
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
