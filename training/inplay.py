"""In-play models on every point of the ATP point-by-point data: the point-level dataset, the three
models, their scores by stage of the match, and their MLflow runs.

Player A of a match is its first server (``server1`` of the point-by-point record); the target is
whether A won the match, settled as the exchange settles it (``features.matches.settles_with_winner``:
a retirement after a full set is won by the player who advanced), because that is what a bet pays on.

The pre-match probability of every match is the walk-forward model's (``walkforward_predictions.p_model``:
fitted on earlier seasons only). Matches without one are counted and left out, as are sequences that
the scoring rules reject or whose last point crowns the wrong player.

Models (each a ``InplayModel`` reading the feature vector of ``features.inplay_state``):

- ``markov``: the Markov chain calibrated to the pre-match probability, serve probabilities constant;
- ``markov_updated``: the same, serve probabilities updated by the points seen (empirical Bayes);
- ``learned``: XGBoost predicting a correction to the logit of ``markov_updated`` from the score,
  the pre-match probability and the serve statistics of the match. Before the first point the
  correction is zero by construction, so every model equals the pre-match probability there.

Splits are whole seasons (``training.splits.Windows``; configured in ``training.windows``), so a match is
never on both sides. The learned
model is fitted on the training seasons and early-stopped on the validation seasons; the registered
model is chosen on validation; the test seasons are scored once, on every point, by stage: before the
first point and after 25/50/75% of the match's points, and over the points of each set.

Speed: the chain costs tens of microseconds a point when the serve probabilities change (every point
of ``markov_updated``), so training and validation matches contribute a seeded random share of their
points (``InplayConfig.sample_share``); test matches contribute every point.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402

from features.inplay import ServeTracker  # noqa: E402
from features.inplay_state import (  # noqa: E402
    FEATURE_INDEX,
    INPLAY_FEATURES,
    SERVE_PRIOR_STRENGTH,
    ScoreArrays,
    chain_probabilities,
    inplay_features,
    sigmoid,
)
from features.scoring import MatchFormat, Score, ScoringError, match_format, replay_pbp  # noqa: E402
from training import plots, tracking  # noqa: E402
from training.metrics import score  # noqa: E402
from training.prematch import CandidateResult, PromotionDecision, decide_promotion  # noqa: E402
from training.splits import Windows  # noqa: E402
from training.windows import INPLAY_WINDOWS  # noqa: E402  (default seasons of the in-play splits)

POINT_COLUMNS = ("match_id", "season", "split", "point", "n_points", "a_won")
"""Columns of a point row besides the features: ``point`` = points played before this state (0 = before
the first point), ``n_points`` = points in the record of the match, ``a_won`` = the first server won."""

_MARKOV, _UPDATED, _PLAYED = (FEATURE_INDEX[n] for n in ("markov_logit", "markov_updated_logit", "points_played"))

STAGE_SHARES = (0.0, 0.25, 0.5, 0.75)
"""Stages of a match by share of its points played."""


@dataclass(frozen=True)
class InplayConfig:
    """How the point-level dataset is built."""

    windows: Windows = INPLAY_WINDOWS
    """Seasons of the train / validation / test splits."""
    sample_share: float = 0.25
    """Share of the points of training and validation matches kept (test matches keep every point)."""
    seed: int = 7
    """Seed of the point sampling."""
    serve_prior_strength: float = SERVE_PRIOR_STRENGTH
    """Weight in points of the serve priors of the updated chain."""

    def __post_init__(self) -> None:
        if not 0.0 < self.sample_share <= 1.0:
            raise ValueError(f"sample_share must be in (0, 1], not {self.sample_share!r}")


# --- the matches -------------------------------------------------------------------------------------


PREDICTION_COLUMNS = ("match_id", "player_a_id", "player_b_id", "a_won", "season", "tourney_name", "best_of",
                      "p_model")


def pbp_sequences(pbp_matched: pd.DataFrame, predictions: pd.DataFrame,
                  windows: Windows) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per usable point-by-point match: the sequence, its season and split, and the pre-match
    probability and result oriented to the first server. Returns the rows and what was left out, counted."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"the pre-match predictions lack the columns {missing}")
    counts = {"pbp_records": len(pbp_matched)}
    seq = pbp_matched[pbp_matched["match_id"].notna() & pbp_matched["pbp"].notna()]
    counts["no_sackmann_match"] = len(pbp_matched) - len(seq)
    deduped = seq.drop_duplicates("match_id")
    counts["duplicate_records"] = len(seq) - len(deduped)
    preds = predictions.loc[predictions["p_model"].notna(), list(PREDICTION_COLUMNS)].drop_duplicates("match_id")
    m = deduped[["match_id", "pbp", "server1_id", "server2_id"]].merge(preds, on="match_id", how="inner")
    counts["no_out_of_sample_prematch"] = len(deduped) - len(m)
    straight = (m["server1_id"] == m["player_a_id"]) & (m["server2_id"] == m["player_b_id"])
    swapped = (m["server1_id"] == m["player_b_id"]) & (m["server2_id"] == m["player_a_id"])
    counts["players_disagree"] = int((~(straight | swapped)).sum())
    m = m[straight | swapped].copy()
    swapped = swapped[m.index].to_numpy()
    p = m["p_model"].to_numpy(dtype=float)
    won = m["a_won"].to_numpy(dtype=int)
    m["prematch_p"] = np.where(swapped, 1.0 - p, p)
    m["a_won"] = np.where(swapped, 1 - won, won)
    m["split"] = windows.split_of(m["season"])
    counts["outside_windows"] = int(m["split"].isna().sum())
    m = m[m["split"].notna()]
    bad_p = ~((m["prematch_p"] > 0) & (m["prematch_p"] < 1))
    counts["prematch_not_a_probability"] = int(bad_p.sum())
    m = m[~bad_p]
    out = m[["match_id", "season", "split", "tourney_name", "best_of", "prematch_p", "a_won", "pbp"]]
    return out.sort_values("match_id").reset_index(drop=True), counts


# --- the points --------------------------------------------------------------------------------------


_SERVER_WINS = frozenset("SA")
_POINT_CODES = frozenset("SARD")


def match_states(pbp: str, fmt: MatchFormat) -> tuple[list[Score], list[bool], Score | None]:
    """The score before every point of a pbp record (from 0-0, the first server is A), whether the
    server won each point, and the score after the last point (None for an empty record)."""
    after = replay_pbp(pbp, fmt, 0)
    held = [c in _SERVER_WINS for c in pbp if c in _POINT_CODES]
    return [Score.start(fmt, 0), *after[:-1]], held, (after[-1] if after else None)


@dataclass
class PointTable:
    """The point rows and what happened to every match on the way."""

    rows: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """The first few rejected sequences, with the reason."""
    strength_scores: pd.DataFrame | None = None
    """Validation log-loss of the updated chain for each serve prior strength tried (the choice's record)."""


@dataclass
class _Replayed:
    """One match replayed: the states kept and the serve counts before each of them."""

    position: int
    """Index of the match among the matches kept."""
    row: Any
    n_points: int
    keep: np.ndarray
    states: list[Score]
    won_a: np.ndarray
    served_a: np.ndarray
    won_b: np.ndarray
    served_b: np.ndarray


def _replay(sequences: pd.DataFrame, config: InplayConfig, counts: dict[str, int], errors: list[str],
            progress: Callable[[int, int], None] | None = None) -> Iterator[_Replayed]:
    """Replay every sequence, count and skip the ones the rules reject, and pick the states kept."""
    total = len(sequences)
    step = max(1, total // 20)
    kept = 0
    for i, row in enumerate(sequences.itertuples(index=True)):
        if progress and i % step == 0:
            progress(i, total)
        fmt = match_format(row.tourney_name, int(row.season), int(row.best_of))
        try:
            states, held, last = match_states(row.pbp, fmt)
        except ScoringError as exc:
            counts["replay_error"] += 1
            if len(errors) < 10:
                errors.append(f"{row.match_id}: {exc}")
            continue
        if last is None:
            counts["empty_record"] += 1
            continue
        if last.winner is None:
            counts["unfinished_record"] += 1  # a retirement: settled for the player who advanced
        elif last.winner != (0 if row.a_won else 1):
            counts["replay_winner_disagrees"] += 1
            if len(errors) < 10:
                errors.append(f"{row.match_id}: the record ends with a win for the other player")
            continue
        counts["matches"] += 1
        n = len(held)
        if row.split == "test" or config.sample_share >= 1.0:
            keep = np.arange(n)
        else:
            rng = np.random.default_rng([config.seed, zlib.crc32(str(row.match_id).encode())])  # per match: the
            keep = np.flatnonzero(rng.random(n) < config.sample_share)  # same points whatever else is replayed
        a_serves = np.fromiter((s.server == 0 for s in states), dtype=bool, count=n)
        won = np.asarray(held, dtype=np.int64)
        served_a = np.concatenate([[0], np.cumsum(a_serves)[:-1]])  # before each point
        won_a = np.concatenate([[0], np.cumsum(won * a_serves)[:-1]])
        won_b = np.concatenate([[0], np.cumsum(won * ~a_serves)[:-1]])
        yield _Replayed(kept, row, n, keep, [states[k] for k in keep], won_a[keep], served_a[keep], won_b[keep],
                        (np.arange(n) - served_a)[keep])
        kept += 1
    if progress:
        progress(total, total)


def _new_counts() -> dict[str, int]:
    return {"replay_error": 0, "empty_record": 0, "replay_winner_disagrees": 0, "unfinished_record": 0, "matches": 0}


STRENGTH_GRID = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
"""Serve prior strengths (points) tried for the updated chain; the best on validation is used."""


def choose_serve_strength(sequences: pd.DataFrame, config: InplayConfig = InplayConfig(),
                          grid: tuple[float, ...] = STRENGTH_GRID) -> tuple[float, pd.DataFrame]:
    """The serve prior strength whose updated chain has the lowest log-loss on the validation points
    (the same points as the point table's), and the log-loss of every strength tried."""
    validation = sequences[sequences["split"] == "validation"]
    p0: list[float] = []
    scores: list[Score] = []
    counts: list[list[int]] = [[], [], [], []]
    y: list[int] = []
    for m in _replay(validation, config, _new_counts(), []):
        p0.extend([float(m.row.prematch_p)] * len(m.keep))
        scores.extend(m.states)
        y.extend([int(m.row.a_won)] * len(m.keep))
        for values, name in zip(counts, ("won_a", "served_a", "won_b", "served_b"), strict=True):
            values.extend(getattr(m, name).tolist())
    if not scores:
        raise ValueError("no validation points to choose the serve prior strength on")
    # the features once at the first strength; for the others only the updated chain changes
    first = inplay_features(p0, scores, *counts, grid[0])
    prior_a = first[:, FEATURE_INDEX["serve_a"]] - first[:, FEATURE_INDEX["serve_shift_a"]]
    prior_b = first[:, FEATURE_INDEX["serve_b"]] - first[:, FEATURE_INDEX["serve_shift_b"]]
    won_a, served_a, won_b, served_b = (np.asarray(c, dtype=np.int64) for c in counts)
    arrays = ScoreArrays(scores)
    outcome = np.asarray(y)
    records = []
    for strength in grid:
        if strength == grid[0]:
            p = sigmoid(first[:, _UPDATED])
        else:
            serve = ServeTracker(np.asarray(p0), prior_a, prior_b, strength, won_a, served_a, won_b,  # type: ignore[arg-type]
                                 served_b).serve_probabilities
            p = chain_probabilities(scores, serve[0], serve[1], arrays)
        records.append({"serve_prior_strength": strength, "validation_points": len(outcome),
                        **{k: v for k, v in score(outcome, p).items() if k != "n"}})
    table = pd.DataFrame.from_records(records)
    best = float(table.loc[table["log_loss"].idxmin(), "serve_prior_strength"])
    return best, table


def point_rows(sequences: pd.DataFrame, config: InplayConfig = InplayConfig(),
               progress: Callable[[int, int], None] | None = None) -> PointTable:
    """The state before every point (test matches) or a seeded share of them (train/validation),
    as rows of ``features.inplay_state.inplay_features`` with the match's outcome."""
    counts = _new_counts()
    errors: list[str] = []
    meta: list[np.ndarray] = []  # (match position, point, n_points) of the kept states
    blocks: list[np.ndarray] = []
    buffer: dict[str, list] = {k: [] for k in ("p0", "score", "won_a", "served_a", "won_b", "served_b")}

    def flush() -> None:
        if buffer["score"]:
            blocks.append(inplay_features(buffer["p0"], buffer["score"], buffer["won_a"], buffer["served_a"],
                                          buffer["won_b"], buffer["served_b"], config.serve_prior_strength))
            for values in buffer.values():
                values.clear()

    kept_matches: list[int] = []
    for m in _replay(sequences, config, counts, errors, progress):
        buffer["p0"].extend([float(m.row.prematch_p)] * len(m.keep))
        buffer["score"].extend(m.states)
        for name in ("won_a", "served_a", "won_b", "served_b"):
            buffer[name].extend(getattr(m, name).tolist())
        meta.append(np.column_stack([np.full(len(m.keep), m.position), m.keep, np.full(len(m.keep), m.n_points)]))
        kept_matches.append(m.row.Index)
        if len(buffer["score"]) >= 50_000:
            flush()
    flush()
    matches = sequences.loc[kept_matches].reset_index(drop=True)
    idx = np.concatenate(meta) if meta else np.zeros((0, 3), dtype=np.int64)
    rows = pd.DataFrame({
        "match_id": matches["match_id"].to_numpy()[idx[:, 0]],
        "season": matches["season"].to_numpy()[idx[:, 0]].astype(int),
        "split": matches["split"].to_numpy()[idx[:, 0]],
        "point": idx[:, 1],
        "n_points": idx[:, 2],
        "a_won": matches["a_won"].to_numpy()[idx[:, 0]].astype(int),
    })
    values = np.concatenate(blocks) if blocks else np.zeros((0, len(INPLAY_FEATURES)))
    rows = pd.concat([rows, pd.DataFrame(values, columns=list(INPLAY_FEATURES))], axis=1)
    rows["serve_prior_strength"] = config.serve_prior_strength
    counts["points"] = len(rows)
    for split in ("train", "validation", "test"):
        counts[f"{split}_matches"] = int((matches["split"] == split).sum())
        counts[f"{split}_points"] = int((rows["split"] == split).sum())
    return PointTable(rows, counts, errors)


def build_points(sequences: pd.DataFrame, config: InplayConfig = InplayConfig(),
                 progress: Callable[[int, int], None] | None = None) -> tuple[PointTable, InplayConfig]:
    """The serve prior strength chosen on validation, then the point table built with it."""
    strength, table = choose_serve_strength(sequences, config)
    chosen = replace(config, serve_prior_strength=strength)
    points = point_rows(sequences, chosen, progress)
    points.strength_scores = table
    return points, chosen


# --- the models --------------------------------------------------------------------------------------


class InplayModel(BaseEstimator, ClassifierMixin):
    """P(A wins the match) from the in-play feature vector: one of the two chains, or the chain
    corrected by boosted trees (a correction of zero before the first point).

    ``serve_prior_strength`` is the prior weight the features must be built with
    (``features.inplay_state.inplay_features(..., strength=model.serve_prior_strength)``).
    """

    KINDS = ("markov", "markov_updated", "learned")

    def __init__(self, kind: str = "markov_updated", serve_prior_strength: float = SERVE_PRIOR_STRENGTH,
                 booster: xgb.Booster | None = None, best_iteration: int | None = None):
        self.kind = kind
        self.serve_prior_strength = serve_prior_strength
        self.booster = booster
        self.best_iteration = best_iteration

    @property
    def features(self) -> list[str]:
        return list(INPLAY_FEATURES)

    def fit(self, X: Any = None, y: Any = None) -> InplayModel:
        if self.kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, not {self.kind!r}")
        if self.kind == "learned" and self.booster is None:
            raise ValueError("a learned in-play model needs its booster (see fit_learned)")
        self.classes_ = np.array([0, 1])
        return self

    def single_threaded(self) -> InplayModel:
        """Predict on one thread (single-row serving: thread oversubscription costs far more than it buys)."""
        if self.booster is not None:
            self.booster.set_param({"nthread": 1})
        return self

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """P(A wins) for rows of features in ``INPLAY_FEATURES`` order (a 2-D float array)."""
        if self.kind == "markov":
            return sigmoid(x[:, _MARKOV])
        base = x[:, _UPDATED]
        if self.kind == "markov_updated":
            return sigmoid(base)
        rounds = (0, self.best_iteration + 1) if self.best_iteration is not None else (0, 0)
        margin = self.booster.inplace_predict(x, iteration_range=rounds, predict_type="margin", base_margin=base)
        margin = np.asarray(margin, dtype=float).reshape(-1)
        return sigmoid(np.where(x[:, _PLAYED] == 0, base, margin))  # no correction before the first point

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.predict_features(np.asarray(X[list(INPLAY_FEATURES)], dtype=float))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


LEARNED_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "base_score": 0.5,  # ignored with a base margin; stated so the margin is the chain's logit plus the trees
    "eta": 0.08,
    "max_depth": 4,
    "min_child_weight": 50,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
    "tree_method": "hist",
    "nthread": 2,
    "seed": 7,
}
LEARNED_ROUNDS, LEARNED_EARLY_STOP = 600, 40


def _matrix(rows: pd.DataFrame) -> xgb.DMatrix:
    x = rows[list(INPLAY_FEATURES)].to_numpy(dtype=float)
    return xgb.DMatrix(x, label=rows["a_won"].to_numpy(), base_margin=x[:, _UPDATED])


def fit_learned(train: pd.DataFrame, validation: pd.DataFrame, strength: float = SERVE_PRIOR_STRENGTH,
                params: dict[str, Any] | None = None) -> InplayModel:
    """Boosted trees on the training points (after the first point), early-stopped on the validation points."""
    params = {**LEARNED_PARAMS, **(params or {})}
    train = train[train["points_played"] > 0]
    validation = validation[validation["points_played"] > 0]
    booster = xgb.train(params, _matrix(train), num_boost_round=LEARNED_ROUNDS,
                        evals=[(_matrix(validation), "validation")], early_stopping_rounds=LEARNED_EARLY_STOP,
                        verbose_eval=False)
    return InplayModel("learned", strength, booster, int(booster.best_iteration)).fit()


MODEL_DESCRIPTIONS = {
    "markov": "Markov chain calibrated to the pre-match probability, constant serve probabilities",
    "markov_updated": "the same chain, serve probabilities updated by the points seen (Beta prior of the "
                      "serve prior strength, chosen on validation)",
    "learned": "XGBoost correction to the logit of markov_updated (score, pre-match probability, serve "
               "statistics); zero correction before the first point",
}


def strength_of(rows: pd.DataFrame) -> float:
    """The serve prior strength the point rows' features were built with."""
    values = rows["serve_prior_strength"].unique()
    if len(values) != 1:
        raise ValueError(f"point rows built with several serve prior strengths: {values[:5]}")
    return float(values[0])


def decide_inplay_promotion(validation: pd.DataFrame, challenger: tracking.RegisteredModel,
                            champion: tracking.RegisteredModel | None,
                            failed_checks: list[str]) -> PromotionDecision:
    """The pre-match champion/challenger rule (``training.prematch.decide_promotion``) on the validation
    points. A champion whose features were built with another serve prior strength cannot be scored on
    these rows: like a champion needing features no longer produced, it gives way (checks permitting)."""
    strength = strength_of(validation)
    if champion is not None and not failed_checks and \
            float(getattr(champion.model, "serve_prior_strength", strength)) != strength:
        decision = decide_promotion(validation, challenger, None, failed_checks, _predictor)
        return replace(decision, reason=f"champion v{champion.version} uses serve prior strength "
                                        f"{champion.model.serve_prior_strength:g}, these features {strength:g}: "
                                        "not comparable on the same rows", champion_version=champion.version)
    return decide_promotion(validation, challenger, champion, failed_checks, _predictor)


def _predictor(model: Any, rows: pd.DataFrame, features: list[str]) -> np.ndarray:
    return predict_rows(model, rows)


def fit_models(train: pd.DataFrame, validation: pd.DataFrame,
               strength: float = SERVE_PRIOR_STRENGTH) -> dict[str, InplayModel]:
    """The three in-play models (features built with serve prior ``strength``), in report order."""
    return {"markov": InplayModel("markov", strength).fit(),
            "markov_updated": InplayModel("markov_updated", strength).fit(),
            "learned": fit_learned(train, validation, strength)}


def predict_rows(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """P(A wins) for each point row."""
    return model.predict_proba(rows[list(INPLAY_FEATURES)])[:, 1]


# --- scores by stage ---------------------------------------------------------------------------------


def stage_masks(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows of each stage: the state after 0/25/50/75% of the match's points, the points of each set,
    and every point. Needs every point of each match (test rows)."""
    point, n = rows["point"].to_numpy(), rows["n_points"].to_numpy()
    per_match = rows.groupby("match_id")["point"].size()
    if (per_match.to_numpy() != rows.groupby("match_id")["n_points"].first().to_numpy()).any():
        raise ValueError("scores by stage need every point of each match (sample_share applies to train and "
                         "validation only)")
    masks = {f"{int(q * 100)}%": point == np.floor(q * n).astype(int) for q in STAGE_SHARES}
    set_number = rows["set_number"].to_numpy().astype(int)
    for s in range(1, int(set_number.max()) + 1 if len(rows) else 1):
        masks[f"set {s}"] = set_number == s
    masks["all points"] = np.ones(len(rows), dtype=bool)
    return masks


def stage_table(rows: pd.DataFrame, forecasts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Log-loss, Brier and accuracy of each forecaster at each stage (tidy: stage, model, n, scores)."""
    y = rows["a_won"].to_numpy()
    records = []
    for stage, mask in stage_masks(rows).items():
        if not mask.any():
            continue
        for name, p in forecasts.items():
            s = score(y[mask], np.asarray(p)[mask])
            records.append({"stage": stage, "model": name, "n": int(mask.sum()), "matches":
                            int(rows.loc[mask, "match_id"].nunique()), "log_loss": s["log_loss"],
                            "brier": s["brier"], "accuracy": s["accuracy"]})
    return pd.DataFrame.from_records(records)


def stage_markdown(table: pd.DataFrame) -> str:
    """The stage table as markdown: one row per stage, log-loss / Brier / accuracy of each model."""
    models = list(dict.fromkeys(table["model"]))
    head = "| stage | points | " + " | ".join(f"{m} log-loss / Brier / acc." for m in models) + " |"
    lines = [head, "|---|---|" + "---|" * len(models)]
    for stage, sub in table.groupby("stage", sort=False):
        by = sub.set_index("model")
        cells = [f"{by.loc[m, 'log_loss']:.4f} / {by.loc[m, 'brier']:.4f} / {by.loc[m, 'accuracy']:.1%}"
                 for m in models]
        lines.append(f"| {stage} | {int(sub['n'].iloc[0]):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def beats_at_every_stage(table: pd.DataFrame, model: str, reference: str = "markov") -> dict[str, bool]:
    """For each stage after the first point: whether ``model``'s log-loss is below ``reference``'s."""
    pivot = table.pivot(index="stage", columns="model", values="log_loss")
    return {stage: bool(pivot.loc[stage, model] < pivot.loc[stage, reference])
            for stage in dict.fromkeys(table["stage"]) if stage != "0%"}


def stage_plot(table: pd.DataFrame, metric: str = "log_loss", title: str = "") -> Figure:
    """``metric`` of each model by share of points played (left) and by set (right)."""
    pivot = table.pivot(index="stage", columns="model", values=metric)
    order = list(dict.fromkeys(table["stage"]))
    panels = [[s for s in order if s.endswith("%")], [s for s in order if not s.endswith("%")]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100, sharey=True,
                             gridspec_kw={"width_ratios": [len(panels[0]), max(1, len(panels[1]))]})
    for ax, stages, label in zip(axes, panels, ("share of the match's points played", "points of each set"),
                                 strict=True):
        x = np.arange(len(stages))
        for name in pivot.columns:
            ax.plot(x, pivot.loc[stages, name].to_numpy(), marker="o", label=name)
        ax.set_xticks(x, stages)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"In-play {metric} by stage (test matches)")
    fig.tight_layout()
    return fig


# --- MLflow ------------------------------------------------------------------------------------------


def fit_and_log(rows: pd.DataFrame, data_version: str, batch_id: str) -> list[CandidateResult]:
    """Fit the three models on the training points (early stopping on validation), score them on the
    validation points, and record each as one MLflow run with its model."""
    train, validation = rows[rows["split"] == "train"], rows[rows["split"] == "validation"]
    if train.empty or validation.empty:
        raise ValueError(f"no training ({len(train)}) or validation ({len(validation)}) points: check the windows")
    strength = strength_of(rows)
    models = fit_models(train, validation, strength)
    seasons = rows.groupby("split")["season"].agg(["min", "max"])
    y_train, y_val = train["a_won"].to_numpy(), validation["a_won"].to_numpy()
    results = []
    for name, model in models.items():
        with mlflow.start_run(run_name=f"inplay-{name}") as run:
            mlflow.set_tags({"model_family": name, "data_version": data_version, "training_batch": batch_id,
                             "description": MODEL_DESCRIPTIONS[name]})
            mlflow.log_params({
                **{f"{split}_seasons": f"{r['min']}-{r['max']}" for split, r in seasons.iterrows()},
                "serve_prior_strength": strength, "train_points": len(train),
                "validation_points": len(validation), "train_matches": train["match_id"].nunique(),
                "validation_matches": validation["match_id"].nunique(),
                **({f"xgb_{k}": v for k, v in LEARNED_PARAMS.items()} if name == "learned" else {}),
            })
            p_train, p_val = predict_rows(model, train), predict_rows(model, validation)
            train_scores, val_scores = score(y_train, p_train), score(y_val, p_val)
            mlflow.log_metrics({f"train_{k}": v for k, v in train_scores.items()})
            mlflow.log_metrics({f"validation_{k}": v for k, v in val_scores.items()})
            if model.best_iteration is not None:
                mlflow.log_metric("best_iteration", float(model.best_iteration))
            fig = plots.reliability_diagram({name: p_val}, y_val, f"in-play {name}: validation calibration")
            mlflow.log_figure(fig, "calibration_validation.png")
            plots.png_bytes(fig)
            uri = tracking.log_model(model, list(INPLAY_FEATURES), validation[list(INPLAY_FEATURES)].head(3))
        results.append(CandidateResult(name, MODEL_DESCRIPTIONS[name], run.info.run_id, uri, train_scores,
                                       val_scores, model))
    return results


def log_test_evaluation(results: list[CandidateResult], table: pd.DataFrame, artifacts: list[str]) -> None:
    """Add the test scores by stage and the plots (``artifacts``: file paths) to each model's run."""
    markdown = stage_markdown(table)
    for r in results:
        mine = table[table["model"] == r.name]
        metrics = {}
        for t in mine.itertuples():
            key = t.stage.replace("%", "pct").replace(" ", "_")
            metrics.update({f"test_{key}_log_loss": t.log_loss, f"test_{key}_brier": t.brier,
                            f"test_{key}_accuracy": t.accuracy})
        with mlflow.start_run(run_id=r.run_id):
            mlflow.log_metrics(metrics)
            mlflow.log_text(markdown, "test_by_stage.md")
            mlflow.log_table(table, "test_by_stage.json")
            for path in artifacts:
                mlflow.log_artifact(path)
