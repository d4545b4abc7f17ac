"""The models the prediction service answers with, and their hot reload.

At start the service loads ``models:/tennis-prematch@champion`` from the MLflow registry and the
player snapshot written by the pipeline, and ``models:/tennis-inplay@champion`` for ``/predict_live``.
A background thread per alias polls it; when it points to a new version the new model is loaded and
compiled *beside* the old one and swapped in with one reference assignment, so requests in flight
finish on the old model and none is dropped.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from features.prematch import FEATURES, TOUR_FEATURE
from features.snapshot import PlayerSnapshot
from serving.predictor import PredictArray, compile_inplay_predictor, compile_predictor
from training import tracking
from training.models import symmetric

log = logging.getLogger(__name__)

SERVED_COLUMNS: tuple[str, ...] = (*FEATURES, TOUR_FEATURE)
"""What a pre-match row holds when it reaches a model: the snapshot's features, then the tour (1 for the WTA)."""


@dataclass(frozen=True)
class Loaded:
    """One consistent set: the champion version, its compiled predictor, and the snapshot."""

    model_name: str
    version: str
    kind: str
    features: list[str]
    columns: list[int]
    """Positions of the model's features in ``SERVED_COLUMNS`` (what the snapshot computes, then the tour)."""
    predict: PredictArray
    snapshot: PlayerSnapshot
    snapshot_mtime: float


class AliasPoller:
    """Follows a registry alias: ``load()`` (in subclasses) swaps in a new version; a background thread
    calls it every ``poll_s`` seconds and keeps serving the loaded version when a reload fails."""

    model_name: str
    poll_s: float
    last_error: str | None
    current: object | None

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self.last_error = None
        self.reloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> bool:
        raise NotImplementedError

    def _version(self) -> str | None:
        current = self.current
        return getattr(current, "version", None) if current is not None else None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.load()
                self.last_error = None
            except Exception as exc:  # keep serving the loaded model; report the error on /health
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s reload failed, still serving v%s: %s", self.model_name, self._version(), exc)

    def start_polling(self) -> None:
        """Poll the registry in the background for a new version behind the alias."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name=f"{self.model_name}-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def wait_until_loaded(self, timeout_s: float) -> bool:
        """Try to load until it works or ``timeout_s`` passes (the pipeline may still be running)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.load()
                self.last_error = None
                return True
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    return False
                time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


class ModelStore(AliasPoller):
    """The current champion and snapshot; ``current`` is swapped atomically on reload."""

    def __init__(
        self,
        tracking_uri: str,
        snapshot_path: Path,
        model_name: str = tracking.PREMATCH_MODEL,
        alias: str = tracking.CHAMPION,
        poll_s: float = 10.0,
        tour: str = "ATP",
    ):
        super().__init__(poll_s)
        self.tracking_uri = tracking_uri
        self.snapshot_path = snapshot_path
        self.model_name = model_name
        self.alias = alias
        self.tour = tour
        self.tour_flag = float(tour == "WTA")
        """The value of ``TOUR_FEATURE`` for this store's matches (a model of both tours reads it)."""
        self.current: Loaded | None = None

    def _load_snapshot(self) -> tuple[PlayerSnapshot, float]:
        if not self.snapshot_path.exists():
            raise FileNotFoundError(f"no player snapshot at {self.snapshot_path}: run the pipeline (make up) first")
        mtime = self.snapshot_path.stat().st_mtime
        with self.snapshot_path.open("rb") as fh:
            return pickle.load(fh), mtime

    def load(self) -> bool:
        """Load the alias's version (and the snapshot) if either changed; True when something was swapped in."""
        mlflow.set_tracking_uri(self.tracking_uri)
        info = tracking.version_info(self.alias, self.model_name)
        if info is None:
            raise LookupError(f"models:/{self.model_name}@{self.alias} is not set: run the pipeline first")
        cur = self.current
        snapshot_mtime = self.snapshot_path.stat().st_mtime if self.snapshot_path.exists() else -1.0
        if cur and cur.version == info.version and cur.snapshot_mtime == snapshot_mtime:
            return False
        if cur and cur.version == info.version:
            predict, kind, features = cur.predict, cur.kind, cur.features
        else:
            model, features = tracking.load_model(f"models:/{self.model_name}/{info.version}")
            predict, kind = compile_predictor(model, features)
            # P(A beats B) + P(B beats A) == 1 exactly; XGBoost answers each row alike in any batch: one call
            predict = symmetric(predict, features, stacked=kind == "xgboost")
        if cur and cur.snapshot_mtime == snapshot_mtime:
            snapshot = cur.snapshot
        else:
            snapshot, snapshot_mtime = self._load_snapshot()
        missing = [f for f in features if f not in SERVED_COLUMNS]
        if missing:
            raise ValueError(f"v{info.version} needs features this code does not compute: {missing[:5]}")
        columns = [SERVED_COLUMNS.index(f) for f in features]
        self.current = Loaded(self.model_name, info.version, kind, features, columns, predict, snapshot, snapshot_mtime)
        self.reloads += 1
        log.info("serving %s v%s (%s), features as of %s", self.model_name, info.version, kind, snapshot.as_of.date())
        return True


class HistoricalFeatures:
    """The pipeline's pre-match feature table (as of each historical match), for replays: loaded
    on first use and again when the file changes."""

    def __init__(self, path: Path, tour: str = "ATP"):
        self.path = path
        self.tour_flag = float(tour == "WTA")
        """``TOUR_FEATURE`` of every row (each tour has its own table)."""
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._ids: dict[str, int] = {}
        self._players = np.empty((0, 2), dtype=np.int64)
        self._values = np.empty((0, len(SERVED_COLUMNS)))

    def _load(self) -> None:
        if not self.path.exists():
            raise FileNotFoundError(f"no feature table at {self.path}: run the pipeline first")
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        with self._lock:
            table = pd.read_parquet(self.path, columns=["match_id", "player_a_id", "player_b_id", *FEATURES])
            self._ids = {m: i for i, m in enumerate(table["match_id"].astype(str))}
            self._players = table[["player_a_id", "player_b_id"]].to_numpy(dtype=np.int64)
            values = table[list(FEATURES)].to_numpy(dtype=float)
            # the table is one tour's (a table written before the tour column existed is the men's)
            self._values = np.column_stack([values, np.full(len(values), self.tour_flag)])
            self._mtime = mtime
            log.info("historical feature table loaded: %d matches", len(self._ids))

    def row(self, match_id: str) -> tuple[int, int, np.ndarray]:
        """(player A id, player B id, every column of ``SERVED_COLUMNS`` in order) of one match."""
        self._load()
        i = self._ids.get(match_id)
        if i is None:
            raise KeyError(f"match {match_id} is not in the feature table (tour-level main-draw matches only)")
        a, b = self._players[i]
        return int(a), int(b), self._values[i]


@dataclass(frozen=True)
class LoadedInplay:
    """One in-play champion version, ready to predict from ``features.inplay_state`` rows."""

    model_name: str
    version: str
    family: str
    serve_prior_strength: float
    """The serve prior strength the model's features must be built with."""
    predict: PredictArray
    data_version: str | None = None
    """The ``data_version`` tag of the training run: which data the model learnt from (a bet's lineage)."""


class InplayStore(AliasPoller):
    """The in-play champion (``models:/tennis-inplay@champion``), swapped atomically on reload.

    ``current`` stays None while no champion is registered: the service then answers with the
    Markov chain and says so in ``model_name``.
    """

    def __init__(
        self,
        tracking_uri: str,
        model_name: str = tracking.INPLAY_MODEL,
        alias: str = tracking.CHAMPION,
        poll_s: float = 10.0,
    ):
        super().__init__(poll_s)
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias
        self.current: LoadedInplay | None = None
        self.attempted = threading.Event()
        """Set after the first load attempt, whatever its outcome (readiness waits for it)."""

    def load(self) -> bool:
        """Load the alias's version if it changed; True when a new version was swapped in."""
        try:
            mlflow.set_tracking_uri(self.tracking_uri)
            info = tracking.version_info(self.alias, self.model_name)
            if info is None:
                raise LookupError(f"models:/{self.model_name}@{self.alias} is not set: serving the Markov chain")
            cur = self.current
            if cur and cur.version == info.version:
                return False
            model, features = tracking.load_model(f"models:/{self.model_name}/{info.version}")
            predict, family = compile_inplay_predictor(model, features)
            self.current = LoadedInplay(
                self.model_name,
                info.version,
                family,
                float(model.serve_prior_strength),
                predict,
                info.tags.get("data_version"),
            )
            self.reloads += 1
            log.info("serving %s v%s (%s) for /predict_live", self.model_name, info.version, family)
            return True
        finally:
            self.attempted.set()
