"""The replay catalog: real matches with point-level data, ready to be published as a live feed.

Two sources: Grand Slam point logs (men's singles, real timing from ``ElapsedTime``) and ATP
point-by-point sequences (any rate). Each match carries Sackmann player ids and match id where
identity matching found them, the real closing odds where the odds files have them, and a
margin-free pre-match probability (Pinnacle, else Bet365, else the Elo probability before the
match) from which the simulated in-play market starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from betting.value import fair_probability
from features.identity import PlayerIndex, match_full_names

SLAM_NAMES = {
    "ausopen": "Australian Open",
    "frenchopen": "Roland Garros",
    "wimbledon": "Wimbledon",
    "usopen": "US Open",
}
SLAM_SURFACES = {"ausopen": "Hard", "frenchopen": "Clay", "wimbledon": "Grass", "usopen": "Hard"}

COLUMNS = [
    "source",
    "tour",
    "event_key",
    "event_date",
    "tournament",
    "season",
    "round",
    "surface",
    "best_of",
    "player1",
    "player2",
    "player1_id",
    "player2_id",
    "sackmann_match_id",
    "first_server",
    "winner",
    "status",
    "prematch_p1",
    "prematch_source",
    "close_p1",
    "close_p2",
    "close_source",
    "pbp",
    "point_winner",
    "point_server",
    "elapsed_s",
]
"""Catalog columns. ``pbp``: Sackmann sequence string (pbp source); ``point_winner`` / ``point_server``
(1 or 2) and ``elapsed_s`` per point (slam source)."""


def _seconds(clock: pd.Series) -> np.ndarray:
    parts = clock.fillna("0:0:0").str.split(":", expand=True).reindex(columns=[0, 1, 2]).fillna("0")
    secs = parts.apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy() @ np.array([3600.0, 60.0, 1.0])
    return np.maximum.accumulate(secs)  # a few upstream clocks lost a digit: never let time run backwards


WOMENS_SINGLES = (2000, 3000)
"""Match numbers of the women's singles in the Grand Slam point logs (the men's are below 2000)."""


def slam_matches(
    raw_matches: pd.DataFrame,
    raw_points: pd.DataFrame,
    matches: pd.DataFrame,
    players: pd.DataFrame,
    index: PlayerIndex | None = None,
    tour: str = "ATP",
) -> pd.DataFrame:
    """Singles matches of the Grand Slam point logs, with ids and per-point winner/server/time: the men's
    (``tour`` ATP, best of five, identified in the ATP's ``matches``/``players``) or the women's (WTA, best of
    three, in the WTA's)."""
    num = raw_matches["match_num"].fillna(9999)
    women = tour == "WTA"
    singles = num.between(WOMENS_SINGLES[0], WOMENS_SINGLES[1] - 1) if women else num < WOMENS_SINGLES[0]
    men = raw_matches[singles].rename(columns={"match_id": "slam_match_id"})
    slams = matches[matches["tourney_level"] == "G"].drop_duplicates("tourney_id")
    starts = {(int(d.year), name): d for d, name in zip(slams["tourney_date"], slams["tourney_name"], strict=True)}
    men["tournament"] = men["slam"].map(SLAM_NAMES)
    men["date"] = [starts.get((int(y), t), pd.NaT) for y, t in zip(men["year"], men["tournament"], strict=True)]
    men["date"] = pd.to_datetime(men["date"]) + pd.Timedelta(days=7)
    matched = match_full_names(
        men,
        ["player1", "player2"],
        "date",
        matches,
        players,
        index=index,
        winner_col="winner",
        tournament_col="tournament",
    )
    pts = raw_points[raw_points["PointNumber"].fillna(0) > 0].copy()
    pts = pts[pts["PointWinner"].isin([1, 2]) & pts["PointServer"].isin([1, 2])]
    pts["elapsed"] = 0.0
    for _, idx in pts.groupby("match_id", sort=False).groups.items():
        pts.loc[idx, "elapsed"] = _seconds(pts.loc[idx, "ElapsedTime"])
    pts = pts.sort_values(["match_id", "PointNumber"])
    grouped = pts.groupby("match_id")
    per_match = pd.DataFrame(
        {
            "point_winner": grouped["PointWinner"].apply(lambda s: s.astype(int).tolist()),
            "point_server": grouped["PointServer"].apply(lambda s: s.astype(int).tolist()),
            "elapsed_s": grouped["elapsed"].apply(list),
        }
    )
    out = matched.join(per_match, on="slam_match_id", how="inner")
    out["first_server"] = out["point_server"].str[0]
    # Most point logs leave winner and status empty: take them from the identified Sackmann match.
    known = matches.set_index("match_id")[["winner_id", "score"]]
    hit = out["match_id"].isin(known.index)
    ref = known.reindex(out["match_id"])
    from_sackmann = np.where(
        ref["winner_id"].to_numpy() == out["player1_id"].to_numpy(),
        1,
        np.where(ref["winner_id"].to_numpy() == out["player2_id"].to_numpy(), 2, np.nan),
    )
    out["winner"] = (
        pd.to_numeric(out["winner"], errors="coerce")
        .fillna(pd.Series(np.where(hit, from_sackmann, np.nan), index=out.index))
        .astype("Int64")
    )
    retired = ref["score"].fillna("").str.contains("RET|DEF", regex=True).to_numpy()
    out["status"] = out["status"].fillna(
        pd.Series(
            np.where(hit, np.where(retired, "Retired", "Complete"), np.array(None, dtype=object)), index=out.index
        )
    )
    return pd.DataFrame(
        {
            "source": "slam",
            "event_key": out["slam_match_id"].astype(str),
            "event_date": out["date"].dt.strftime("%Y-%m-%d"),
            "tournament": out["tournament"],
            "season": out["year"].astype(int),
            "round": out["round"],
            "surface": out["slam"].map(SLAM_SURFACES),
            "best_of": 3 if women else 5,
            "tour": tour,
            "player1": out["player1"],
            "player2": out["player2"],
            "player1_id": out["player1_id"],
            "player2_id": out["player2_id"],
            "sackmann_match_id": out["match_id"],
            "first_server": out["first_server"],
            "winner": out["winner"],
            "status": out["status"],
            "pbp": None,
            "point_winner": out["point_winner"],
            "point_server": out["point_server"],
            "elapsed_s": out["elapsed_s"],
        }
    )


def pbp_matches(pbp_matched: pd.DataFrame, matches: pd.DataFrame) -> pd.DataFrame:
    """ATP point-by-point sequences with ids, best-of, surface and round from the Sackmann match."""
    info = matches.set_index("match_id")[["best_of", "surface", "round", "tourney_name"]]
    m = pbp_matched.join(info, on="match_id")
    sets_played = m["pbp"].fillna("").str.rstrip(".").str.count(r"\.") + 1
    implied = pd.Series(np.where(sets_played > 3, 5, 3), index=m.index)  # 4+ sets: best of 5
    best_of = np.maximum(m["best_of"].fillna(3).astype(int), implied)
    return pd.DataFrame(
        {
            "source": "pbp",
            "event_key": "pbp-" + m["pbp_id"].astype(str),
            "event_date": pd.to_datetime(m["date"]).dt.strftime("%Y-%m-%d"),
            "tournament": m["tourney_name"].fillna(m["tny_name"]),
            "season": pd.to_datetime(m["date"]).dt.year,
            "round": m["round"],
            "surface": m["surface"],
            "best_of": best_of,
            "tour": "ATP",
            "player1": m["server1"],
            "player2": m["server2"],
            "player1_id": m["server1_id"],
            "player2_id": m["server2_id"],
            "sackmann_match_id": m["match_id"],
            "first_server": 1,
            "winner": m["winner"],
            "status": np.where(m["score"].fillna("").str.contains("RET"), "Retired", "Complete"),
            "pbp": m["pbp"],
            "point_winner": None,
            "point_server": None,
            "elapsed_s": None,
        }
    )


def attach_prematch(
    catalog: pd.DataFrame,
    odds_slams: pd.DataFrame,
    odds_tour: pd.DataFrame | None,
    elo: pd.DataFrame | None,
    matches: pd.DataFrame,
) -> pd.DataFrame:
    """Closing odds (oriented to player 1) and the margin-free pre-match probability of player 1 (the Elo
    probability when there are no odds; 0.5 when neither). ``odds_tour`` / ``elo``: None for a tour without
    tour-level odds or a rating table (the WTA's catalog)."""
    out = catalog.copy()
    out["close_p1"] = np.nan
    out["close_p2"] = np.nan
    out["close_source"] = None
    sources = [] if odds_tour is None else [(odds_tour, "b365_p1", "b365_p2", "bet365-close")]
    sources += [
        (odds_slams, "b365_p1", "b365_p2", "bet365-close"),
        (odds_slams, "ps_p1", "ps_p2", "pinnacle-close"),
    ]
    for odds, p1, p2, name in sources:
        o = odds.dropna(subset=["match_id", p1, p2]).drop_duplicates("match_id").set_index("match_id")
        hit = out["sackmann_match_id"].isin(o.index) & out["sackmann_match_id"].notna()
        rows = o.loc[out.loc[hit, "sackmann_match_id"]]
        same = rows["p1_id"].to_numpy() == out.loc[hit, "player1_id"].to_numpy()
        out.loc[hit, "close_p1"] = np.where(same, rows[p1], rows[p2])
        out.loc[hit, "close_p2"] = np.where(same, rows[p2], rows[p1])
        out.loc[hit, "close_source"] = name  # later sources win: Pinnacle over Bet365
    out["prematch_p1"] = fair_probability(out["close_p1"], out["close_p2"])
    out["prematch_source"] = np.where(out["prematch_p1"].notna(), out["close_source"], None)
    if elo is not None:
        e = elo.set_index("match_id").join(matches.set_index("match_id")["winner_id"])
        need = out["prematch_p1"].isna() & out["sackmann_match_id"].isin(e.index)
        rows = e.loc[out.loc[need, "sackmann_match_id"]]
        p1_won = rows["winner_id"].to_numpy() == out.loc[need, "player1_id"].to_numpy()
        out.loc[need, "prematch_p1"] = np.where(p1_won, rows["winner_elo_prob"], 1 - rows["winner_elo_prob"])
        out.loc[need, "prematch_source"] = "elo"
    out["prematch_p1"] = out["prematch_p1"].fillna(0.5)
    out["prematch_source"] = out["prematch_source"].fillna("none (0.5)")
    return out[COLUMNS]


def choose(catalog: pd.DataFrame, source: str, n: int, seasons: tuple[int, int] | None = None) -> pd.DataFrame:
    """Matches to replay: of ``source``, inside the replay seasons (the ``replay`` column the pipeline sets from
    its windows, ``training.windows``; every match of a catalog without it), with player ids and real closing
    odds, latest seasons first."""
    c = catalog[
        (catalog["source"] == source)
        & catalog["close_p1"].notna()
        & catalog["player1_id"].notna()
        & catalog["player2_id"].notna()
    ]
    if "replay" in c.columns:
        c = c[c["replay"].fillna(False).astype(bool)]
    if seasons is not None:
        c = c[c["season"].between(*seasons)]
    return c.sort_values(["event_date", "event_key"], ascending=[False, True]).head(n)


SLAM_DATES = {"ausopen": "01-20", "frenchopen": "05-30", "wimbledon": "06-28", "usopen": "08-30"}
"""A day of each slam (month-day) for catalog rows built without the odds files."""


def slam_log_rows(
    data_dir: Path | str,
    year_slam: str,
    *,
    month_day: str | None = None,
    min_points: int = 1,
    prematch_source: str = "fixed",
) -> Iterator[dict]:
    """Men's singles matches of one slam point log (``<data>/slam_pbp/<year>-<slam>-*.csv.gz``) as catalog
    rows with a fixed prior (0.62) and closing odds (1.55 / 2.60), in the log's order, without the pipeline:
    what the engine tests and the live benchmark replay. Matches with fewer than ``min_points`` points are
    left out; ``month_day`` (default ``SLAM_DATES``) is the rows' date in the year."""
    folder = Path(data_dir) / "slam_pbp"
    matches = pd.read_csv(folder / f"{year_slam}-matches.csv.gz")
    points = pd.read_csv(folder / f"{year_slam}-points.csv.gz", low_memory=False)
    points = points[(points["PointNumber"] > 0) & points["PointWinner"].isin([1, 2])]
    by_match = dict(tuple(points.groupby("match_id")))
    year, slam = year_slam.split("-")
    for m in matches[matches["match_num"] < 2000].itertuples():
        p = by_match.get(m.match_id)
        if p is None or len(p) < min_points:
            continue
        p = p.sort_values("PointNumber")
        yield {
            "source": "slam",
            "event_key": m.match_id,
            "event_date": f"{year}-{month_day or SLAM_DATES[slam]}",
            "tournament": SLAM_NAMES[slam],
            "season": int(year),
            "round": "R128",
            "surface": SLAM_SURFACES[slam],
            "best_of": 5,
            "tour": "ATP",
            "player1": m.player1,
            "player2": m.player2,
            "player1_id": None,
            "player2_id": None,
            "sackmann_match_id": None,
            "first_server": int(p["PointServer"].iloc[0]),
            "winner": None if pd.isna(m.winner) else int(m.winner),
            "status": m.status,
            "prematch_p1": 0.62,
            "prematch_source": prematch_source,
            "close_p1": 1.55,
            "close_p2": 2.6,
            "close_source": "pinnacle-close",
            "pbp": None,
            "point_winner": p["PointWinner"].astype(int).tolist(),
            "point_server": p["PointServer"].astype(int).tolist(),
            "elapsed_s": list(_seconds(p["ElapsedTime"].astype(str))),
        }
