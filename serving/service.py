"""The BentoML prediction service: ``POST /predict`` (pre-match, batch) and ``POST /predict_live``
(in-play), with ``/health``, BentoML's ``/livez``, ``/readyz`` and Prometheus ``/metrics``, and
OpenAPI docs (Swagger UI at ``/api/docs``, ReDoc at ``/api/redoc``, ``/openapi.json``).

Run: ``bentoml serve serving.service:PredictionService --port 3001`` (``make up`` does). One worker
process unless ``COURTSIDE_BENTO_WORKERS`` says more (``WORKERS``; each loads and follows the champions itself);
the model is compiled to numpy (serving/predictor.py) and adaptive batching is off — it buys
throughput by waiting, and this is the latency-critical path. Small batches are answered on the event
loop (``INLINE_UP_TO``), large ones in the thread pool; the service writes no access-log line and the
prediction endpoints no trace span per request unless ``COURTSIDE_PREDICTION_TRACING=1`` (``HOT_PATHS``).
Requests are validated by pydantic through FastAPI, so a bad request gets 422 with the offending
field named in ``detail[].loc``.

Hardening (issue 9): bodies over ``COURTSIDE_MAX_BODY_BYTES`` (default 16 MiB, room for a batch of
10,000) are refused with 413 before they are read; every error is the JSON
``{"error", "message", "detail"}`` of ``serving.errors`` (a 422 lists at most 10 fields with short input
excerpts; a bug is a 500 ``internal_error``); the service binds 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import bentoml
import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Response
from starlette.concurrency import run_in_threadpool

from courtside.settings import Settings
from features.inplay_state import FEATURE_INDEX, SERVE_PRIOR_STRENGTH, inplay_features, sigmoid
from features.scoring import MatchFormat, Score, ScoringError, match_format, read_points
from features.snapshot import UnknownPlayer
from serving.body_limit import PREDICTION_MAX_BODY_BYTES, BodyLimitMiddleware
from serving.docs import install_offline_docs
from serving.errors import ErrorBody, JsonErrorsMiddleware, install_error_handlers
from serving.model_store import HistoricalFeatures, InplayStore, ModelStore
from serving.schemas import (
    GAME_POINTS_EXPECTED,
    GAMES_EXPECTED,
    POINT_CALLS,
    SETS_EXPECTED,
    TIEBREAK_POINTS_EXPECTED,
    Health,
    LiveBatch,
    LiveBatchResponse,
    LiveRequest,
    LiveResponse,
    PrematchBatch,
    PrematchBatchResponse,
    PrematchRequest,
    PrematchResponse,
)
from training import tracking

INPLAY_FALLBACK_MODEL = "inplay-markov-fallback"
INPLAY_FALLBACK_VERSION = "1"
"""What ``/predict_live`` answers with while no ``tennis-inplay@champion`` is registered (a fresh
install, unit tests): the Markov chain calibrated to the pre-match probability, serve probabilities
updated in the match with a Beta prior of ``SERVE_PRIOR_STRENGTH`` points."""

R = TypeVar("R")

_UPDATED, _SERVE_A, _SERVE_B = (FEATURE_INDEX[n] for n in ("markov_updated_logit", "serve_a", "serve_b"))

app = FastAPI(
    title="Courtside prediction service",
    version="1",
    description="Pre-match and in-play tennis win probabilities from the champion model. Errors are JSON "
    '`{"error", "message", "detail"}`: 422 names the invalid fields in `detail[].loc` (with the '
    "request's index in the batch), 413 a body over the size limit, 503 no model loaded yet.",
    docs_url=None,  # served offline below (serving.docs)
    redoc_url=None,
    responses={code: {"model": ErrorBody} for code in (400, 413, 422, 500)},
)
install_offline_docs(app, "/api/docs", "Courtside prediction service", redoc="/api/redoc")
install_error_handlers(app, docs="/api/docs")
app.add_middleware(BodyLimitMiddleware, max_bytes=Settings.from_env().max_body_bytes or PREDICTION_MAX_BODY_BYTES)
UNAVAILABLE = {503: {"model": ErrorBody, "description": "no model loaded yet (see /health)"}}

PREDICTIONS = bentoml.metrics.Counter(
    name="courtside_predictions", documentation="Predictions answered", labelnames=["endpoint"]
)
MODEL_SECONDS = bentoml.metrics.Histogram(
    name="courtside_model_seconds",
    documentation="Time in feature building and model per request",
    labelnames=["endpoint"],
    buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0),
)


def _unprocessable(loc: list, msg: str) -> HTTPException:
    return HTTPException(status_code=422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


HOT_PATHS = ["/predict", "/predict_live"]
"""The prediction endpoints: no OpenTelemetry span for them, and no per-request access-log line from the
service, unless ``COURTSIDE_PREDICTION_TRACING=1`` (together ~0.4 ms of a ~1.6 ms one-row answer on the
loaded 2-core machine, measured A/B over HTTP). The Prometheus metrics (BentoML's request counts and
durations per endpoint, ``courtside_predictions``, ``courtside_model_seconds``) are all kept."""
_TRACE_PREDICTIONS = os.environ.get("COURTSIDE_PREDICTION_TRACING", "") not in ("", "0")
_QUIET = (
    {}
    if _TRACE_PREDICTIONS
    else {
        # access logging off for the service (a path in its skip_paths would also drop BentoML's request
        # metrics for that path: the same list feeds both middlewares)
        "logging": {"access": {"enabled": False}},
        "tracing": {"excluded_urls": HOT_PATHS},
    }
)


def _workers(value: str | None) -> int | str:
    """``COURTSIDE_BENTO_WORKERS``: a positive number of worker processes, or ``cpu_count``; 1 when not set."""
    value = (value or "").strip() or "1"
    if value == "cpu_count":
        return value
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(f"COURTSIDE_BENTO_WORKERS={value!r}: a positive number of worker processes, or cpu_count")
    return int(value)


WORKERS = _workers(os.environ.get("COURTSIDE_BENTO_WORKERS"))
"""Worker processes of one service instance (BentoML's ``workers``): 1 by default, the latency-tuned single-machine
setting; more (``COURTSIDE_BENTO_WORKERS``) share the port, each with its own models. Replicas of the service
behind a load balancer are the other way to scale out (deploy/README.md)."""


@bentoml.service(
    name="courtside_predictions", workers=WORKERS, traffic={"timeout": 30}, http={"host": "127.0.0.1"}, **_QUIET
)
@bentoml.asgi_app(app, path="/")
class PredictionService:
    """Loads ``models:/tennis-prematch@champion`` with the player snapshot, and
    ``models:/tennis-inplay@champion``; follows both aliases."""

    def __init__(self) -> None:
        settings = Settings.from_env()
        poll_s = float(os.environ.get("COURTSIDE_MODEL_POLL_S", "10"))
        self.store = ModelStore(
            settings.mlflow_tracking_uri, settings.warehouse_dir / "player_snapshot.pickle", poll_s=poll_s
        )
        self.wta = ModelStore(
            settings.mlflow_tracking_uri,
            settings.warehouse_dir / "wta_player_snapshot.pickle",
            model_name=tracking.WTA_PREMATCH_MODEL,
            poll_s=poll_s,
            tour="WTA",
        )
        self.inplay = InplayStore(settings.mlflow_tracking_uri, poll_s=poll_s)
        self.history = HistoricalFeatures(settings.warehouse_dir / "prematch_features.parquet")
        self.wta_history = HistoricalFeatures(settings.warehouse_dir / "wta_prematch_features.parquet", tour="WTA")
        threading.Thread(target=self._boot, name="model-loader", daemon=True).start()
        threading.Thread(target=self._boot_wta, name="wta-model-loader", daemon=True).start()
        threading.Thread(target=self._boot_inplay, name="inplay-model-loader", daemon=True).start()

    def _boot(self) -> None:
        self.store.wait_until_loaded(timeout_s=float("inf"))
        self.store.start_polling()

    def _boot_wta(self) -> None:
        self.wta.wait_until_loaded(timeout_s=0.0)  # one attempt: the men's model decides readiness; polls after
        self.wta.start_polling()

    def _boot_inplay(self) -> None:
        self.inplay.wait_until_loaded(timeout_s=0.0)  # one attempt; no champion yet -> the chain until one appears
        self.inplay.start_polling()

    def __is_ready__(self) -> bool:
        return self.store.current is not None and self.inplay.attempted.is_set()


PredictionService.add_asgi_middleware(JsonErrorsMiddleware, docs="/api/docs")  # BentoML's own answers (unknown paths)


FEATURES_WARN_AGE_DAYS = int(os.environ.get("COURTSIDE_FEATURES_WARN_AGE_DAYS", "30"))
"""A prediction for a match more than this many days after the last match the features know says so."""
FEATURES_MAX_AGE_DAYS = int(os.environ.get("COURTSIDE_FEATURES_MAX_AGE_DAYS", "366"))
"""Beyond this many days the features say too little about the players now: the request is refused."""


def _store(tour: str = "ATP") -> ModelStore:
    service = bentoml.get_current_service()
    return service.wta if tour == "WTA" else service.store


def _history(tour: str = "ATP") -> HistoricalFeatures:
    service = bentoml.get_current_service()
    return service.wta_history if tour == "WTA" else service.history


def _inplay() -> InplayStore:
    return bentoml.get_current_service().inplay


@app.get("/health", response_model=Health)
def health() -> Health:
    """Liveness plus what is being served."""
    store, inplay, wta = _store(), _inplay(), _store("WTA")
    cur, live, women = store.current, inplay.current, wta.current
    return Health(
        status="ok" if cur else ("error" if store.last_error and "not set" not in store.last_error else "loading"),
        model_name=store.model_name,
        model_version=cur.version if cur else None,
        model_kind=cur.kind if cur else None,
        features_as_of=cur.snapshot.as_of.date() if cur else None,
        reloads=store.reloads,
        last_error=store.last_error,
        inplay_model_name=live.model_name if live else INPLAY_FALLBACK_MODEL,
        inplay_model_version=live.version if live else INPLAY_FALLBACK_VERSION,
        inplay_model_family=live.family if live else "markov_updated",
        inplay_last_error=inplay.last_error,
        wta_model_name=wta.model_name,
        wta_model_version=women.version if women else None,
        wta_features_as_of=women.snapshot.as_of.date() if women else None,
        wta_last_error=wta.last_error,
    )


def _prematch(requests: list[PrematchRequest], loc: list) -> PrematchBatchResponse:
    batch = PrematchBatch(requests=requests)
    tours = sorted({r.tour for r in batch.requests})
    answers: dict[int, PrematchResponse] = {}
    for tour in tours:
        index = [i for i, r in enumerate(batch.requests) if r.tour == tour]
        for i, answer in zip(index, _prematch_tour(tour, [batch.requests[i] for i in index], index, loc), strict=True):
            answers[i] = answer
    return PrematchBatchResponse(predictions=[answers[i] for i in range(len(batch.requests))])


def _prematch_tour(tour: str, requests: list[PrematchRequest], index: list[int], loc: list) -> list[PrematchResponse]:
    store = _store(tour)
    cur = store.current
    if cur is None:
        detail = f"{tour} model not loaded yet (see /health)"
        if tour == "WTA" and store.last_error:
            detail = f"WTA model not available: {store.last_error}"
        raise HTTPException(status_code=503, detail=detail)
    snap = cur.snapshot
    rows = np.empty((len(requests), len(cur.features)))
    ids = []
    flip = np.zeros(len(requests), dtype=bool)
    ages = [0] * len(requests)
    for k, (i, r) in enumerate(zip(index, requests, strict=True)):
        try:
            a = snap.resolve(r.player_one)
        except UnknownPlayer as exc:
            raise _unprocessable([*loc, i, "player_one"], f"{tour}: {exc}") from None
        try:
            b = snap.resolve(r.player_two)
        except UnknownPlayer as exc:
            raise _unprocessable([*loc, i, "player_two"], f"{tour}: {exc}") from None
        if a == b:
            raise _unprocessable([*loc, i, "player_two"], "both names resolve to the same player")
        if r.match_id is not None:
            try:
                pa, pb, values = _history(tour).row(r.match_id)
            except (KeyError, FileNotFoundError) as exc:
                raise _unprocessable([*loc, i, "match_id"], str(exc).strip('"')) from None
            if {a, b} != {pa, pb}:
                raise _unprocessable(
                    [*loc, i, "match_id"], f"match {r.match_id} was played by {pa} and {pb}, not {a} and {b}"
                )
            rows[k] = values[cur.columns]
            flip[k] = a != pa  # the table's row is P(player A): player one is B -> 1 - p
            ids.append((a, b))
            continue
        if pd.Timestamp(r.date) <= snap.as_of:
            raise _unprocessable(
                [*loc, i, "date"],
                f"date must be after {snap.as_of.date()} (the last match the service knows); "
                "for a historical match give its match_id",
            )
        age = (pd.Timestamp(r.date) - snap.as_of).days
        if age > FEATURES_MAX_AGE_DAYS:
            raise _unprocessable(
                [*loc, i, "date"],
                f"the {tour} features are as of {snap.as_of.date()}, {age} days before this match: beyond the limit "
                f"of {FEATURES_MAX_AGE_DAYS} days (COURTSIDE_FEATURES_MAX_AGE_DAYS); run the pipeline on newer data",
            )
        ages[k] = age
        values = snap.features(
            snap.entrant(a, r.rank_one, r.points_one),
            snap.entrant(b, r.rank_two, r.points_two),
            pd.Timestamp(r.date),
            r.surface,
            r.best_of,
            r.feature_level(),
            r.round,
        )
        values.append(store.tour_flag)  # SERVED_COLUMNS: the snapshot's features, then the tour
        rows[k] = [values[j] for j in cur.columns]
        ids.append((a, b))
    probs = cur.predict(rows)
    probs = np.where(flip, 1.0 - probs, probs)
    as_of = snap.as_of.date()
    return [
        PrematchResponse(
            player_one_id=a,
            player_two_id=b,
            tour=tour,
            probability=float(p),
            model_name=cur.model_name,
            model_version=cur.version,
            features_as_of=as_of,
            features_age_days=age,
            warnings=[
                f"stale features: as of {as_of}, {age} days before the match (warning above "
                f"{FEATURES_WARN_AGE_DAYS} days, COURTSIDE_FEATURES_WARN_AGE_DAYS)"
            ]
            if age > FEATURES_WARN_AGE_DAYS
            else [],
        )
        for (a, b), p, age in zip(ids, probs, ages, strict=True)
    ]


INLINE_UP_TO = 64
"""Requests (or states) a batch may have to be answered on the event loop itself; larger batches go to
the thread pool as a plain ``def`` endpoint would. One row costs ~0.1-0.3 ms of numpy and XGBoost, less
than the hand-off to a worker thread and back (which on a loaded 2-core machine waits for the scheduler
and the GIL); a batch of 10,000 would hold the loop for a second, so it still runs in a thread."""


async def _answer(n: int, work: Callable[[], R]) -> R:
    """``work()`` inline for a small batch, in the thread pool for a large one (same answer either way)."""
    if n <= INLINE_UP_TO:
        return work()
    return await run_in_threadpool(work)


@app.post("/predict", response_model=PrematchBatchResponse, responses=UNAVAILABLE)
async def predict(batch: PrematchBatch, response: Response) -> PrematchBatchResponse:
    """P(player one wins) for each request, from its tour's champion pre-match model. A prediction whose features
    are older than the warning age says so (``warnings``, and the header ``X-Courtside-Warning``); beyond the hard
    limit the request is refused (422)."""
    out = await _answer(len(batch.requests), lambda: _predict(batch))
    stale = sum(1 for p in out.predictions if p.warnings)
    if stale:
        response.headers["X-Courtside-Warning"] = f"stale features in {stale} of {len(out.predictions)} predictions"
    return out


def _predict(batch: PrematchBatch) -> PrematchBatchResponse:
    start = time.perf_counter()
    out = _prematch(batch.requests, ["body", "requests"])
    MODEL_SECONDS.labels(endpoint="predict").observe(time.perf_counter() - start)
    PREDICTIONS.labels(endpoint="predict").inc(len(out.predictions))
    return out


@app.post("/predict_live", response_model=LiveBatchResponse, responses=UNAVAILABLE)
async def predict_live(batch: LiveBatch) -> LiveBatchResponse:
    """P(player one wins the match from each state), from ``tennis-inplay@champion`` (the Markov chain
    with updated serve probabilities while none is registered; ``model_name`` says which). The
    pre-match probability is given, or asked of the pre-match champion for the players."""
    return await _answer(len(batch.states), lambda: _predict_live(batch))


def _impossible_score(fmt: MatchFormat, state: LiveRequest, i: int, exc: ScoringError) -> HTTPException:
    """422 for a score no match can reach, naming the part at fault and what it must be: the sets alone are
    checked, then with the games, then with the points (the first that fails is named)."""
    loc: list = ["body", "states", i]
    try:
        done = Score.at(fmt, state.sets, (0, 0), (0, 0), state.server - 1)
    except ScoringError:
        return _unprocessable(
            [*loc, "sets"], f"impossible score: {exc} (best of {fmt.best_of}); expected {SETS_EXPECTED}"
        )
    if done.winner is not None:
        part = "games" if state.games != (0, 0) else "points"
        return _unprocessable([*loc, part], f"impossible score: {exc}; expected [0, 0]: the sets end the match")
    try:
        current = Score.at(fmt, state.sets, state.games, (0, 0), state.server - 1)
    except ScoringError:
        return _unprocessable([*loc, "games"], f"impossible score: {exc}; expected {GAMES_EXPECTED}")
    a, b = state.points
    if current.in_tiebreak:
        expected = TIEBREAK_POINTS_EXPECTED
    elif {a, b} <= {0, 15, 30, 40}:  # a call sent as numbers
        expected = (
            f"points won, not calls: {a}-{b} is {list(read_points((str(a), str(b)), tiebreak=False))} ({POINT_CALLS})"
        )
    else:
        expected = GAME_POINTS_EXPECTED
    return _unprocessable([*loc, "points"], f"impossible score: {exc}; expected {expected}")


def _predict_live(batch: LiveBatch) -> LiveBatchResponse:
    start = time.perf_counter()
    need = [(i, s.prematch) for i, s in enumerate(batch.states) if s.prematch_probability is None]
    prior: dict[int, tuple[float, str]] = {}
    if need:
        answers = _prematch([r for _, r in need], ["body", "states", "prematch"]).predictions
        prior = {
            i: (a.probability, f"{a.model_name}@v{a.model_version}") for (i, _), a in zip(need, answers, strict=True)
        }
    model = _inplay().current  # one reference for the whole batch: a reload cannot mix versions
    p0s, sources, scores = [], [], []
    counts: list[list[int]] = [[], [], [], []]
    for i, s in enumerate(batch.states):
        p0, source = prior.get(i, (s.prematch_probability, "given"))
        fmt = match_format(s.tournament, s.season, s.best_of)
        try:
            scores.append(Score.at(fmt, s.sets, s.games, s.points, s.server - 1))
        except ScoringError as exc:
            raise _impossible_score(fmt, s, i, exc) from None
        st = s.serve_stats
        for values, v in zip(
            counts, (st.won_one, st.served_one, st.won_two, st.served_two) if st else (0, 0, 0, 0), strict=True
        ):
            values.append(v)
        p0s.append(p0)
        sources.append(source)
    x = inplay_features(p0s, scores, *counts, strength=model.serve_prior_strength if model else SERVE_PRIOR_STRENGTH)
    probs = model.predict(x) if model else sigmoid(x[:, _UPDATED])
    name, version = (model.model_name, model.version) if model else (INPLAY_FALLBACK_MODEL, INPLAY_FALLBACK_VERSION)
    data_version = model.data_version if model else None
    out = []
    for i, s in enumerate(batch.states):
        decided = scores[i].winner
        p = float(probs[i]) if decided is None else float(decided == 0)  # a finished match: exactly 0 or 1
        out.append(
            LiveResponse(
                match_id=s.match_id,
                probability=p,
                prematch_probability=p0s[i],
                serve_one=float(x[i, _SERVE_A]),
                serve_two=float(x[i, _SERVE_B]),
                model_name=name,
                model_version=f"{version} (prior: {sources[i]})",
                data_version=data_version,
            )
        )
    MODEL_SECONDS.labels(endpoint="predict_live").observe(time.perf_counter() - start)
    PREDICTIONS.labels(endpoint="predict_live").inc(len(out))
    return LiveBatchResponse(predictions=out)
