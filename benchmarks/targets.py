"""The speed targets of ``../shared/docs/PERFORMANCE.md`` (2 cores), in one place: every benchmark prints its
figures against these, ``courtside bench`` too, and ``benchmarks.summary`` marks each met or not."""

PIPELINE_S = 90.0
"""The full pipeline from raw files to a registered champion, fresh state."""
INCREMENTAL_WEEK_S = 30.0
"""Issue 12: the run a new week of results starts (ingest, clean, its season's features) on a built state."""
BACKTEST_S = 60.0
"""The in-play backtest of every ATP point-by-point match through the trading core."""
DECISION_P50_MS = 1.5
DECISION_P99_MS = 5.0
"""Live event -> bet decision at 200 events/s, the prediction from the BentoML service."""
THROUGHPUT_PER_S = 20_000.0
THROUGHPUT_VS_PARSE_ONLY = 1 / 3
"""The engine flat out, with predictions: messages a second, and its share of a parse-only loop's rate."""
PREDICT_P50_MS = 1.5
PREDICT_P99_MS = 5.0
"""BentoML ``/predict``, one row over HTTP."""
FANOUT_P99_MS = 250.0
FANOUT_RSS_MB = 300.0
"""WebSocket fan-out to 10,000 subscribers of one match on one gateway process: the last subscriber has each
update within this (p99), the process within this memory."""
FANOUT_REPLICAS_SUBSCRIBERS = 50_000
FANOUT_VS_BROADCAST = 1.5
"""Issue 14: 50,000 subscribers across gateway replicas on this machine, each update to all of them within 1.5x the
p99 of raw ``websockets.broadcast`` of the same messages to the same clients (PERFORMANCE.md's baseline)."""
