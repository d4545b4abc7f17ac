"""The point-level dataset of the in-play models: every point of the ATP point-by-point data, replayed
through the scoring rules and turned into rows of ``features.inplay_state.inplay_features``.

Player A of a match is its first server (``server1`` of the point-by-point record); the target is
whether A won the match, settled as the exchange settles it (``features.matches.settles_with_winner``:
a retirement after a full set is won by the player who advanced), because that is what a bet pays on.

The pre-match probability of every match is the walk-forward model's (``walkforward_predictions.p_model``:
fitted on earlier seasons only). Matches without one are counted and left out, as are sequences that
the scoring rules reject or whose last point crowns the wrong player.

Splits are whole seasons (``training.splits.Windows``; configured in ``training.windows``), so a match is
never on both sides. The serve
prior strength of the updated chain is chosen on the validation points.

Speed: the chain costs tens of microseconds a point when the serve probabilities change (every point
of ``markov_updated``), so training and validation matches contribute a seeded random share of their
points (``InplayTrainingConfig.sample_share``); test matches contribute every point.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from features.inplay_state import FEATURE_INDEX, INPLAY_FEATURES, SERVE_PRIOR_STRENGTH, inplay_features, sigmoid
from features.markov.scalar import ServeTracker
from features.markov.vector import ScoreArrays, chain_probabilities
from features.replays import replay_pbp
from features.scoring import MatchFormat, Score, ScoringError, match_format
from training.metrics import score
from training.splits import Windows
from training.windows import INPLAY_WINDOWS  # default seasons of the in-play splits

POINT_COLUMNS = ("match_id", "season", "split", "point", "n_points", "a_won")
"""Columns of a point row besides the features: ``point`` = points played before this state (0 = before
the first point), ``n_points`` = points in the record of the match, ``a_won`` = the first server won."""


@dataclass(frozen=True)
class InplayTrainingConfig:
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


PREDICTION_COLUMNS = ("match_id", "player_a_id", "player_b_id", "a_won", "season", "tourney_name", "best_of", "p_model")


def pbp_sequences(
    pbp_matched: pd.DataFrame, predictions: pd.DataFrame, windows: Windows
) -> tuple[pd.DataFrame, dict[str, int]]:
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


def _replay(
    sequences: pd.DataFrame,
    config: InplayTrainingConfig,
    counts: dict[str, int],
    errors: list[str],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[_Replayed]:
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
        yield _Replayed(
            kept,
            row,
            n,
            keep,
            [states[k] for k in keep],
            won_a[keep],
            served_a[keep],
            won_b[keep],
            (np.arange(n) - served_a)[keep],
        )
        kept += 1
    if progress:
        progress(total, total)


def _new_counts() -> dict[str, int]:
    return {"replay_error": 0, "empty_record": 0, "replay_winner_disagrees": 0, "unfinished_record": 0, "matches": 0}


@dataclass
class _Replays:
    """Every sequence replayed once (``build_points`` gives them to the strength choice and the point rows)."""

    matches: list[_Replayed]
    counts: dict[str, int]
    errors: list[str]


def _replay_all(
    sequences: pd.DataFrame, config: InplayTrainingConfig, progress: Callable[[int, int], None] | None = None
) -> _Replays:
    counts, errors = _new_counts(), []
    return _Replays(list(_replay(sequences, config, counts, errors, progress)), counts, errors)


STRENGTH_GRID = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
"""Serve prior strengths (points) tried for the updated chain; the best on validation is used."""


def choose_serve_strength(
    sequences: pd.DataFrame,
    config: InplayTrainingConfig = InplayTrainingConfig(),
    grid: tuple[float, ...] = STRENGTH_GRID,
    replays: _Replays | None = None,
) -> tuple[float, pd.DataFrame]:
    """The serve prior strength whose updated chain has the lowest log-loss on the validation points
    (the same points as the point table's), and the log-loss of every strength tried. ``replays``: the
    sequences replayed already (with the same sampling), else the validation ones are replayed here."""
    if replays is None:
        replays = _replay_all(sequences[sequences["split"] == "validation"], config)
    p0: list[float] = []
    scores: list[Score] = []
    counts: list[list[int]] = [[], [], [], []]
    y: list[int] = []
    for m in replays.matches:
        if m.row.split != "validation":
            continue
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
            p = sigmoid(first[:, FEATURE_INDEX["markov_updated_logit"]])
        else:
            serve = ServeTracker(
                np.asarray(p0),
                prior_a,
                prior_b,
                strength,
                won_a,
                served_a,
                won_b,  # type: ignore[arg-type]
                served_b,
            ).serve_probabilities
            p = chain_probabilities(scores, serve[0], serve[1], arrays)
        records.append(
            {
                "serve_prior_strength": strength,
                "validation_points": len(outcome),
                **{k: v for k, v in score(outcome, p).items() if k != "n"},
            }
        )
    table = pd.DataFrame.from_records(records)
    best = float(table.loc[table["log_loss"].idxmin(), "serve_prior_strength"])
    return best, table


def point_rows(
    sequences: pd.DataFrame,
    config: InplayTrainingConfig = InplayTrainingConfig(),
    progress: Callable[[int, int], None] | None = None,
    replays: _Replays | None = None,
) -> PointTable:
    """The state before every point (test matches) or a seeded share of them (train/validation),
    as rows of ``features.inplay_state.inplay_features`` with the match's outcome (``replays``: the
    sequences replayed already, with the same sampling)."""
    if replays is None:
        replays = _replay_all(sequences, config, progress)
    counts = dict(replays.counts)
    errors = list(replays.errors)
    meta: list[np.ndarray] = []  # (match position, point, n_points) of the kept states
    blocks: list[np.ndarray] = []
    buffer: dict[str, list] = {k: [] for k in ("p0", "score", "won_a", "served_a", "won_b", "served_b")}

    def flush() -> None:
        if buffer["score"]:
            blocks.append(
                inplay_features(
                    buffer["p0"],
                    buffer["score"],
                    buffer["won_a"],
                    buffer["served_a"],
                    buffer["won_b"],
                    buffer["served_b"],
                    config.serve_prior_strength,
                )
            )
            for values in buffer.values():
                values.clear()

    kept_matches: list[int] = []
    for m in replays.matches:
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
    rows = pd.DataFrame(
        {
            "match_id": matches["match_id"].to_numpy()[idx[:, 0]],
            "season": matches["season"].to_numpy()[idx[:, 0]].astype(int),
            "split": matches["split"].to_numpy()[idx[:, 0]],
            "point": idx[:, 1],
            "n_points": idx[:, 2],
            "a_won": matches["a_won"].to_numpy()[idx[:, 0]].astype(int),
        }
    )
    values = np.concatenate(blocks) if blocks else np.zeros((0, len(INPLAY_FEATURES)))
    rows = pd.concat([rows, pd.DataFrame(values, columns=list(INPLAY_FEATURES))], axis=1)
    rows["serve_prior_strength"] = config.serve_prior_strength
    counts["points"] = len(rows)
    for split in ("train", "validation", "test"):
        counts[f"{split}_matches"] = int((matches["split"] == split).sum())
        counts[f"{split}_points"] = int((rows["split"] == split).sum())
    return PointTable(rows, counts, errors)


def build_points(
    sequences: pd.DataFrame,
    config: InplayTrainingConfig = InplayTrainingConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[PointTable, InplayTrainingConfig]:
    """The serve prior strength chosen on validation, then the point table built with it (the sequences
    replayed once for both)."""
    replays = _replay_all(sequences, config, progress)
    strength, table = choose_serve_strength(sequences, config, replays=replays)
    chosen = replace(config, serve_prior_strength=strength)
    points = point_rows(sequences, chosen, replays=replays)
    points.strength_scores = table
    return points, chosen


def strength_of(rows: pd.DataFrame) -> float:
    """The serve prior strength the point rows' features were built with."""
    values = rows["serve_prior_strength"].unique()
    if len(values) != 1:
        raise ValueError(f"point rows built with several serve prior strengths: {values[:5]}")
    return float(values[0])
