"""Pre-match features of a match between player A and player B, as of the moment before it starts.

``FeatureState`` holds everything known about every player after some prefix of history: Elo
(overall and by surface), serve and return form (raw, and adjusted for the opponents faced: a point
won on serve against a strong returner counts for more; both shrunk towards the tour mean), the
match-up probability the Markov chain gives for the two players' adjusted serve and return skills,
recent form, rest and fatigue, head-to-head.
Walking the chronologically ordered match table, the batch builder asks the state for a match's
features *before* applying that match's result -- so no feature can see the match itself or
anything after it. The live service keeps the same state up to date and asks it the same question.

Player order: A and B are the two players in an order that depends only on the match id and the
unordered pair of ids, never on who won (a model that sees "winner first" learns nothing useful).
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.markov.scalar import prematch_win_probability
from features.ratings import SURFACES, EloBook, surface_or_none, win_probability
from features.scoring import MatchFormat

LEVELS = ("G", "M", "A", "F", "D")

SERVE_DECAY = 0.9
"""Weight kept by older serve/return statistics at each new match with statistics (~7-match half-life)."""
SERVE_PRIOR_POINTS = 80.0
"""Strength (in points) of the shrinkage of serve/return rates towards the tour mean."""
FORM_ALPHA = 0.1
"""Weight of the latest result in the exponentially weighted win rate."""
FATIGUE_DAYS = 14
UNRANKED = 2000.0
"""Rank used for unranked players (the log-rank features need a number)."""

FEATURES: tuple[str, ...] = (
    "elo_diff",
    "elo_prob",
    "surface_elo_diff",
    "surface_elo_prob",
    "blend_elo_prob",
    "elo_a",
    "elo_b",
    "log_elo_matches_a",
    "log_elo_matches_b",
    "log_surface_matches_a",
    "log_surface_matches_b",
    "log_rank_a",
    "log_rank_b",
    "log_rank_diff",
    "log_points_diff",
    "unranked_a",
    "unranked_b",
    "age_a",
    "age_b",
    "age_diff",
    "height_diff",
    "lefty_a",
    "lefty_b",
    "serve_won_a",
    "serve_won_b",
    "return_won_a",
    "return_won_b",
    "serve_return_edge",
    "serve_adj_a",
    "serve_adj_b",
    "return_adj_a",
    "return_adj_b",
    "matchup_serve_a",
    "matchup_serve_b",
    "matchup_prob",
    "form_a",
    "form_b",
    "form_diff",
    "rest_days_a",
    "rest_days_b",
    "matches_14d_a",
    "matches_14d_b",
    "minutes_14d_a",
    "minutes_14d_b",
    "h2h_a",
    "h2h_b",
    "h2h_diff",
    "best_of_5",
    "round_order",
    *(f"level_{lv}" for lv in LEVELS),
    *(f"surface_{s}" for s in SURFACES),
)
"""Feature columns, in the order models receive them."""

_NEGATED = frozenset(
    {
        "elo_diff",
        "surface_elo_diff",
        "log_rank_diff",
        "log_points_diff",
        "age_diff",
        "height_diff",
        "serve_return_edge",
        "form_diff",
        "h2h_diff",
    }
)
_COMPLEMENTED = frozenset({"elo_prob", "surface_elo_prob", "blend_elo_prob", "matchup_prob"})
TOUR_FEATURE = "tour_wta"
"""1 for a women's match: the extra column of a model trained on both tours (``training.models.BOTH_TOURS``); not
in ``FEATURES``, which a model of one tour receives."""

_SHARED = frozenset(
    {
        "best_of_5",
        "round_order",
        TOUR_FEATURE,
        *(f"level_{lv}" for lv in LEVELS),
        *(f"surface_{s}" for s in SURFACES),
    }
)


def mirror_spec(columns: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How to turn feature rows of A against B into the rows of B against A, for these ``columns``:
    (source column of each column, columns to negate, columns to replace by 1 - x).

    Every feature must be classified here (a per-player ``_a``/``_b`` pair, a difference, a
    probability, or a property of the match); an unknown name raises, so a new feature cannot
    silently break the symmetry of the served probabilities.
    """
    index = {c: i for i, c in enumerate(columns)}
    source = np.arange(len(columns))
    negate = np.zeros(len(columns), dtype=bool)
    complement = np.zeros(len(columns), dtype=bool)
    for i, c in enumerate(columns):
        if c.endswith(("_a", "_b")):
            partner = c[:-1] + ("b" if c.endswith("_a") else "a")
            if partner not in index:
                raise ValueError(f"feature {c!r} has no partner {partner!r} among the columns")
            source[i] = index[partner]
        elif c in _NEGATED:
            negate[i] = True
        elif c in _COMPLEMENTED:
            complement[i] = True
        elif c not in _SHARED:
            raise ValueError(f"feature {c!r} is not classified for mirroring (features.prematch.mirror_spec)")
    return source, negate, complement


def mirror_rows(x: np.ndarray, spec: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Feature rows with players A and B swapped (see ``mirror_spec``)."""
    source, negate, complement = spec
    out = np.asarray(x, dtype=float)[:, source].copy()
    out[:, negate] = -out[:, negate]
    out[:, complement] = 1.0 - out[:, complement]
    return out


_NAN = float("nan")
_FORMATS = (MatchFormat(best_of=3), MatchFormat(best_of=5))
"""Formats for the serve/return match-up probability (a pre-match feature: the deciding-set rule is
left at the usual tie-break)."""


@dataclass(frozen=True)
class MatchContext:
    """What is known about a match before it starts."""

    match_date: pd.Timestamp
    surface: str | None
    best_of: int
    level: str
    round_order: int


@dataclass(frozen=True)
class Entrant:
    """One player of a match, with the ranking published before it (NaN when unranked)."""

    player_id: int
    rank: float = _NAN
    rank_points: float = _NAN


@dataclass
class _Player:
    last_day: int | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=12))  # (day, minutes)
    form: float = 0.5
    sv_won: float = 0.0
    sv_tot: float = 0.0
    rt_won: float = 0.0
    rt_tot: float = 0.0
    sv_adj: float = 0.0
    """Serve points won, each match's credited with the opponent's return skill (see ``update``)."""
    rt_adj: float = 0.0
    """Return points won, each match's credited with the opponent's serve skill."""


@dataclass(frozen=True)
class PlayerInfo:
    """Static facts about a player."""

    dob_day: int | None
    height: float
    lefty: float


def _day(ts: pd.Timestamp) -> int:
    return int(ts.value // 86_400_000_000_000)


@dataclass
class FeatureState:
    """Everything known about every player after some prefix of match history."""

    info: dict[int, PlayerInfo] = field(default_factory=dict)
    elo: EloBook = field(default_factory=EloBook)
    players: dict[int, _Player] = field(default_factory=dict)
    h2h: dict[tuple[int, int], int] = field(default_factory=dict)
    serve_mean: list[float] = field(default_factory=lambda: [0.0, 0.0])  # won, total (tour-wide)
    matches_seen: int = 0

    @classmethod
    def with_players(cls, players: pd.DataFrame) -> FeatureState:
        """A fresh state knowing the static facts (birth date, height, hand) of ``players``."""
        dob = pd.to_datetime(players["dob"], errors="coerce")
        # days since 1970 whatever the column's unit (a parquet round trip makes it microseconds: an integer cast
        # divided by nanoseconds a day gave every player a birth day near 1970, and the age became the calendar)
        days = (dob - pd.Timestamp("1970-01-01")).dt.days.where(dob.notna())
        info = {
            int(pid): PlayerInfo(
                None if pd.isna(d) else int(d),
                float(h) if pd.notna(h) else _NAN,
                1.0 if hand == "L" else 0.0 if hand in ("R", "A") else _NAN,
            )
            for pid, d, h, hand in zip(players["player_id"], days, players["height"], players["hand"], strict=True)
        }
        return cls(info=info)

    def _player(self, pid: int) -> _Player:
        p = self.players.get(pid)
        if p is None:
            p = self.players[pid] = _Player()
        return p

    def _serve_rates(self, p: _Player) -> tuple[float, float]:
        won, tot = self.serve_mean
        mean = won / tot if tot > 0 else 0.63
        k = SERVE_PRIOR_POINTS
        return (p.sv_won + k * mean) / (p.sv_tot + k), (p.rt_won + k * (1 - mean)) / (p.rt_tot + k)

    def _mean_serve(self) -> float:
        won, tot = self.serve_mean
        return won / tot if tot > 0 else 0.63

    def _skills(self, p: _Player) -> tuple[float, float]:
        """Opponent-adjusted serve and return skill: the shrunk share of points a player would win on
        serve (return) against an average opponent, minus the tour's mean share."""
        mean, k = self._mean_serve(), SERVE_PRIOR_POINTS
        serve = (p.sv_adj + k * mean) / (p.sv_tot + k) - mean
        ret = (p.rt_adj + k * (1 - mean)) / (p.rt_tot + k) - (1 - mean)
        return serve, ret

    def features(self, a: Entrant, b: Entrant, ctx: MatchContext) -> list[float]:
        """Feature values (in ``FEATURES`` order) for A against B before the match starts."""
        elo = self.elo
        ea, eb = elo.rating(a.player_id), elo.rating(b.player_id)
        surface = surface_or_none(ctx.surface)
        sa, sb = elo.surface_rating(a.player_id, surface), elo.surface_rating(b.player_id, surface)
        ma, mb = elo.played.get(a.player_id, 0), elo.played.get(b.player_id, 0)
        sma = elo.surface_played.get((a.player_id, surface), 0) if surface else 0
        smb = elo.surface_played.get((b.player_id, surface), 0) if surface else 0
        pa, pb = self._player(a.player_id), self._player(b.player_id)
        day = _day(ctx.match_date)
        ra = a.rank if a.rank == a.rank else UNRANKED
        rb = b.rank if b.rank == b.rank else UNRANKED
        pta = a.rank_points if a.rank_points == a.rank_points else 0.0
        ptb = b.rank_points if b.rank_points == b.rank_points else 0.0
        ia, ib = self.info.get(a.player_id), self.info.get(b.player_id)
        age_a = (day - ia.dob_day) / 365.25 if ia and ia.dob_day is not None else _NAN
        age_b = (day - ib.dob_day) / 365.25 if ib and ib.dob_day is not None else _NAN
        sva, rta = self._serve_rates(pa)
        svb, rtb = self._serve_rates(pb)
        rest_a = min(day - pa.last_day, 60) if pa.last_day is not None else 60.0
        rest_b = min(day - pb.last_day, 60) if pb.last_day is not None else 60.0
        m14a = [mins for d, mins in pa.recent if day - d <= FATIGUE_DAYS]
        m14b = [mins for d, mins in pb.recent if day - d <= FATIGUE_DAYS]
        ha = self.h2h.get((a.player_id, b.player_id), 0)
        hb = self.h2h.get((b.player_id, a.player_id), 0)
        blend_a, blend_b = 0.5 * (ea + sa), 0.5 * (eb + sb)
        s_a, r_a = self._skills(pa)
        s_b, r_b = self._skills(pb)
        mean = self._mean_serve()
        m_a = min(max(mean + s_a - r_b, 0.3), 0.95)
        m_b = min(max(mean + s_b - r_a, 0.3), 0.95)
        matchup = prematch_win_probability(_FORMATS[ctx.best_of == 5], round(m_a, 3), round(m_b, 3))
        return [
            ea - eb,
            win_probability(ea, eb),
            sa - sb,
            win_probability(sa, sb),
            win_probability(blend_a, blend_b),
            ea,
            eb,
            math.log1p(ma),
            math.log1p(mb),
            math.log1p(sma),
            math.log1p(smb),
            math.log(ra),
            math.log(rb),
            math.log(rb) - math.log(ra),
            math.log1p(pta) - math.log1p(ptb),
            float(a.rank != a.rank),
            float(b.rank != b.rank),
            age_a,
            age_b,
            age_a - age_b,
            (ia.height if ia else _NAN) - (ib.height if ib else _NAN),
            ia.lefty if ia else _NAN,
            ib.lefty if ib else _NAN,
            sva,
            svb,
            rta,
            rtb,
            (sva - (1 - rtb)) - (svb - (1 - rta)),
            s_a,
            s_b,
            r_a,
            r_b,
            m_a,
            m_b,
            matchup,
            pa.form,
            pb.form,
            pa.form - pb.form,
            float(rest_a),
            float(rest_b),
            float(len(m14a)),
            float(len(m14b)),
            float(sum(m14a)),
            float(sum(m14b)),
            float(ha),
            float(hb),
            float(ha - hb),
            float(ctx.best_of == 5),
            float(ctx.round_order),
            *(float(ctx.level == lv) for lv in LEVELS),
            *(float(surface == s) for s in SURFACES),
        ]

    def update(
        self,
        winner: int,
        loser: int,
        ctx: MatchContext,
        minutes: float,
        serve: tuple[float, float, float, float] | None,
    ) -> None:
        """Apply a finished match. ``serve`` is (winner serve points won, winner serve points,
        loser serve points won, loser serve points) when the statistics exist."""
        self.elo.update(winner, loser, surface_or_none(ctx.surface))
        day = _day(ctx.match_date)
        pw, pl = self._player(winner), self._player(loser)
        mins = minutes if minutes == minutes else 0.0
        for p, won in ((pw, 1.0), (pl, 0.0)):
            p.last_day = day
            p.recent.append((day, mins))
            p.form += FORM_ALPHA * (won - p.form)
        self.h2h[(winner, loser)] = self.h2h.get((winner, loser), 0) + 1
        if serve is not None:
            w_won, w_tot, l_won, l_tot = serve
            d = SERVE_DECAY
            (s_w, r_w), (s_l, r_l) = self._skills(pw), self._skills(pl)  # as of before this match
            pw.sv_adj = pw.sv_adj * d + w_won + w_tot * r_l
            pw.rt_adj = pw.rt_adj * d + (l_tot - l_won) + l_tot * s_l
            pl.sv_adj = pl.sv_adj * d + l_won + l_tot * r_w
            pl.rt_adj = pl.rt_adj * d + (w_tot - w_won) + w_tot * s_w
            pw.sv_won, pw.sv_tot = pw.sv_won * d + w_won, pw.sv_tot * d + w_tot
            pw.rt_won, pw.rt_tot = pw.rt_won * d + (l_tot - l_won), pw.rt_tot * d + l_tot
            pl.sv_won, pl.sv_tot = pl.sv_won * d + l_won, pl.sv_tot * d + l_tot
            pl.rt_won, pl.rt_tot = pl.rt_won * d + (w_tot - w_won), pl.rt_tot * d + w_tot
            self.serve_mean[0] += w_won + l_won
            self.serve_mean[1] += w_tot + l_tot
        self.matches_seen += 1


def player_a_is_lower_id(match_id: str) -> bool:
    """Whether player A is the lower id of the pair: a fair coin decided by the match id alone."""
    return zlib.crc32(match_id.encode()) & 1 == 1


def _serve_stats(m: pd.DataFrame) -> np.ndarray:
    cols = ["w_1stWon", "w_2ndWon", "w_svpt", "l_1stWon", "l_2ndWon", "l_svpt"]
    s = m[cols].to_numpy(dtype="float64", na_value=np.nan)
    out = np.column_stack([s[:, 0] + s[:, 1], s[:, 2], s[:, 3] + s[:, 4], s[:, 5]])
    ok = (out[:, 1] > 0) & (out[:, 3] > 0) & (out[:, 0] <= out[:, 1]) & (out[:, 2] <= out[:, 3])
    out[~ok] = np.nan
    return out


CONTEXT_COLUMNS = (
    "match_id",
    "player_a_id",
    "player_b_id",
    "a_won",
    "tourney_id",
    "tourney_name",
    "tourney_date",
    "match_date",
    "season",
    "tourney_level",
    "surface",
    "round",
    "best_of",
    "is_tour_main",
    "settles",
    "retired",
)
"""Identifying and descriptive columns that accompany the features in the feature table."""


def build_prematch_features(
    matches: pd.DataFrame,
    players: pd.DataFrame,
    emit: pd.Series | None = None,
    progress: Callable[[int, int], None] | None = None,
    state: FeatureState | None = None,
) -> tuple[pd.DataFrame, FeatureState]:
    """Features of every match where ``emit`` is true, walking all ``matches`` in order.

    ``matches`` is the clean table of ``features.matches.clean_matches`` (chronological order).
    ``state``: the state after the matches that come before ``matches`` (``features.seasons`` walks a season at a
    time from the previous season's), updated in place; None starts from nothing, knowing ``players``.
    Returns the feature table and the state after the last match (what the live service starts from).
    """
    if state is None:
        state = FeatureState.with_players(players)
    n = len(matches)
    emit_arr = np.ones(n, dtype=bool) if emit is None else emit.to_numpy(dtype=bool)
    rows = np.full((int(emit_arr.sum()), len(FEATURES)), np.nan)
    a_ids = np.zeros(len(rows), dtype="int64")
    b_ids = np.zeros(len(rows), dtype="int64")
    a_won = np.zeros(len(rows), dtype="int8")
    emitted_idx = np.flatnonzero(emit_arr)

    winners = matches["winner_id"].to_numpy(dtype="int64")
    losers = matches["loser_id"].to_numpy(dtype="int64")
    ids = matches["match_id"].tolist()
    dates = matches["match_date"].tolist()
    surfaces = matches["surface"].tolist()
    best_of = matches["best_of"].to_numpy(dtype="int64")
    levels = matches["tourney_level"].tolist()
    rounds = matches["round_order"].to_numpy(dtype="int64")
    minutes = matches["minutes"].to_numpy(dtype="float64", na_value=np.nan)
    ranks = matches[["winner_rank", "loser_rank", "winner_rank_points", "loser_rank_points"]].to_numpy(
        dtype="float64", na_value=np.nan
    )
    serve = _serve_stats(matches)
    step = max(n // 50, 1)
    j = 0
    for i in range(n):
        w, lo = int(winners[i]), int(losers[i])
        ctx = MatchContext(
            dates[i], surfaces[i] if isinstance(surfaces[i], str) else None, int(best_of[i]), levels[i], int(rounds[i])
        )
        if emit_arr[i]:
            ew = Entrant(w, ranks[i, 0], ranks[i, 2])
            el = Entrant(lo, ranks[i, 1], ranks[i, 3])
            lower_first = player_a_is_lower_id(ids[i])
            a, b = (ew, el) if (w < lo) == lower_first else (el, ew)
            rows[j] = state.features(a, b, ctx)
            a_ids[j], b_ids[j], a_won[j] = a.player_id, b.player_id, int(a.player_id == w)
            j += 1
        sv = serve[i]
        state.update(w, lo, ctx, minutes[i], None if sv[0] != sv[0] else tuple(sv))
        if progress and i % step == 0:
            progress(i, n)
    if progress:
        progress(n, n)

    src = matches.iloc[emitted_idx]
    out = pd.DataFrame(
        {
            "match_id": src["match_id"].to_numpy(),
            "player_a_id": a_ids,
            "player_b_id": b_ids,
            "a_won": a_won,
            "tourney_id": src["tourney_id"].to_numpy(),
            "tourney_name": src["tourney_name"].to_numpy(),
            "tourney_date": src["tourney_date"].to_numpy(),
            "match_date": src["match_date"].to_numpy(),
            "season": src["tourney_id"].str.slice(0, 4).astype("int64").to_numpy(),
            "tourney_level": src["tourney_level"].to_numpy(),
            "surface": src["surface"].to_numpy(),
            "round": src["round"].to_numpy(),
            "best_of": src["best_of"].to_numpy(),
            "is_tour_main": src["is_tour_main"].to_numpy(),
            "settles": src["settles"].to_numpy(),
            "retired": src["retired"].to_numpy(),
            "tour": src["tour"].to_numpy() if "tour" in src else "ATP",
            TOUR_FEATURE: (src["tour"] == "WTA").to_numpy(dtype=float) if "tour" in src else 0.0,
        }
    )
    feats = pd.DataFrame(rows, columns=list(FEATURES))
    return pd.concat([out, feats], axis=1), state
