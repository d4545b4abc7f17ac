"""make bench's one table: a figure is "met" only when it was measured in full and meets its target."""

from __future__ import annotations

from benchmarks.summary import backtest_rows, incremental_rows, live_rows, pipeline_rows, table


def test_a_sample_of_the_backtest_is_never_called_met():
    sample = {"inplay": {"wall_s": 5.0, "points": 1000, "meets_target": None}, "markov_scorer": {"wall_s": 1.0}}
    (row,) = backtest_rows(sample)
    assert row.met is None and "a sample" in row.figure and row.ratio == "5.0x the scorer"
    full = {"inplay": {"wall_s": 75.0, "points": 2_308_513, "meets_target": False}, "markov_scorer": {"wall_s": 25.0}}
    assert backtest_rows(full)[0].met is False


def test_missing_parts_read_not_measured():
    text = table(None, None, None, None)
    assert "**yes**" not in text and text.count("not measured") >= 6
    assert pipeline_rows({"median_s": 80.0, "totals_s": [79.0, 80.0, 85.0]})[0].met is True


def test_live_targets_need_both_percentiles_and_the_baseline_ratio():
    live = {
        "decision_latency": [{"decisions": {"p50": 1.2, "p99": 6.0}}],
        "throughput": {"messages_per_s": 21_000},
        "parse_only": {"median_per_s": 90_000},
        "http": {"predict": {"median_round_p50": 1.4, "median_round_p99": 3.0}},
    }
    latency, throughput, predict = live_rows(live)
    assert latency.met is False  # p99 above 5 ms
    assert throughput.met is False  # below a third of the parse-only loop
    assert predict.met is None and predict.baseline == "not measured"  # no verdict without its baseline
    live["http"]["mlflow"] = {"median_round_p50": 2.0, "median_round_p99": 4.0}
    assert live_rows(live)[2].met is True


def test_the_incremental_week_is_met_only_under_its_target_and_equal_to_a_full_walk():
    fast = {"median_s": 18.0, "times_s": [17.0, 18.0, 19.0], "backfill_s": 30.0, "equal_to_full_walk": True}
    (row,) = incremental_rows(fast)
    assert row.met is True and row.ratio == "0.60 of the rebuild"
    assert incremental_rows({**fast, "equal_to_full_walk": False})[0].met is False
    assert incremental_rows({**fast, "median_s": 31.0})[0].met is False
    assert incremental_rows(None)[0].met is None
