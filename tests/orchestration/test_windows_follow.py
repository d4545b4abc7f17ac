"""``--test-seasons`` moves every window that depends on it, through the real definitions and assets.

The command line's option goes the way ``courtside pipeline`` sends it (``cli.use_windows`` -> environment ->
``build_definitions`` -> the ``windows`` resource), then the real assets run on small inputs: real clean
matches and players of 2010-2015, real point-by-point sequences identified against them, real Grand Slam point
logs (2013 Wimbledon, 2014 Australian Open); pre-match features and closing prices are synthetic (the real
feature walk over 1968-2021 takes minutes), and so is the tree count of the XGBoost candidate.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from courtside import cli
from features.identity import PlayerIndex, match_full_names
from features.matches import clean_matches, clean_players
from features.prematch import FEATURES
from feeds.historical import ingest
from feeds.live.catalog import choose
from feeds.sources import LocalDataSource
from orchestration.definitions import build_definitions
from tests.orchestration.harness import settings_for
from tests.real_data import data_dir
from training import tracking
from training.prematch import CandidateResult
from training.windows import FILE_VARIABLE, SETTINGS, WindowSettings

TEST_SEASONS = "2014-2015"
"""Moved from 2019-2021: validation becomes 2013, training 1991-2012, the walk-forward 2011-2015."""
FOLLOWERS = [
    "model_dataset",
    "walkforward_predictions",
    "walkforward_evaluation",
    "prematch_backtest",
    "inplay_points",
    "replay_catalog",
    "inplay_backtest",
]

RUN_CONFIG = {
    "ops": {"prematch_backtest": {"config": {"bootstrap": 200}}, "inplay_backtest": {"config": {"matches": 8}}}
}
"""Fewer bootstrap resamples and replayed matches: the seasons are what is tested, not the figures."""


def _mirror(target: Path) -> Path:
    """A data folder of links to the real files the small inputs need."""
    src = data_dir()
    names = [f"atp/atp_matches_{y}.csv.gz" for y in range(2010, 2016)]
    names += [f"atp/atp_matches_qual_chall_{y}.csv.gz" for y in range(2010, 2016)]
    names += ["atp/atp_players.csv.gz", "pbp/pbp_matches_atp_main_archive.csv.gz"]
    names += [f"slam_pbp/{t}-{k}.csv.gz" for t in ("2013-wimbledon", "2014-ausopen") for k in ("matches", "points")]
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).symlink_to(src / name)
    return target


def _features(matches: pd.DataFrame, keep: set[str], rng: np.random.Generator) -> pd.DataFrame:
    """Pre-match rows: real tour-level matches of 2010-2015 (those in ``keep``, the Grand Slams and 150 a season;
    players in a random order) and synthetic seasons 1991-2009, with synthetic features that carry some signal."""
    real = matches[matches["is_tour_main"] & matches["settles"]]
    sample = real.groupby(real["tourney_id"].str.slice(0, 4), group_keys=False).sample(150, random_state=1)
    real = real[real["match_id"].isin(keep | set(sample["match_id"])) | (real["tourney_level"] == "G")]
    swap = rng.random(len(real)) < 0.5
    meta = pd.DataFrame(
        {
            "match_id": real["match_id"].to_numpy(),
            "player_a_id": np.where(swap, real["loser_id"], real["winner_id"]),
            "player_b_id": np.where(swap, real["winner_id"], real["loser_id"]),
            "a_won": (~swap).astype(int),
            "season": real["tourney_id"].str.slice(0, 4).astype(int).to_numpy(),
            "match_date": real["match_date"].to_numpy(),
            "tourney_level": real["tourney_level"].to_numpy(),
            "tourney_name": real["tourney_name"].to_numpy(),
            "surface": real["surface"].to_numpy(),
            "round": real["round"].to_numpy(),
            "best_of": real["best_of"].to_numpy(),
        }
    )
    seasons = np.repeat(np.arange(1991, 2010), 120)
    n = len(seasons)
    fake = pd.DataFrame(
        {
            "match_id": [f"{s}-syn:{i}" for i, s in enumerate(seasons)],
            "player_a_id": rng.integers(1, 500, n),
            "player_b_id": rng.integers(500, 1000, n),
            "a_won": rng.integers(0, 2, n),
            "season": seasons,
            "match_date": pd.to_datetime(seasons.astype(str)) + pd.to_timedelta(np.arange(n) % 300, unit="D"),
            "tourney_level": "A",
            "tourney_name": "Synthetic",
            "surface": "Hard",
            "round": "R32",
            "best_of": 3,
        }
    )
    rows = pd.concat([fake, meta], ignore_index=True)
    n = len(rows)
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
    X["elo_diff"] = (2 * rows["a_won"] - 1) * 60 + rng.normal(0, 150, n)
    X["surface_elo_diff"] = X["elo_diff"] + rng.normal(0, 100, n)
    X["elo_prob"] = 1 / (1 + 10 ** (-X["elo_diff"] / 400))
    X["log_rank_a"], X["log_rank_b"] = np.log(rng.integers(1, 300, n)), np.log(rng.integers(1, 300, n))
    X["unranked_a"] = X["unranked_b"] = 0.0
    rows["is_tour_main"], rows["settles"], rows["retired"] = True, True, False
    return pd.concat([rows, X], axis=1)


def _odds(features: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Closing prices (a 5% book) for every row: the tour file's columns, and the slams' for Grand Slam rows."""
    fair = np.clip(features["elo_prob"].to_numpy() + rng.normal(0, 0.05, len(features)), 0.05, 0.95)
    tour = pd.DataFrame(
        {
            "match_id": features["match_id"],
            "p1_id": features["player_a_id"],
            "b365_p1": 1 / (fair * 1.05),
            "b365_p2": 1 / ((1 - fair) * 1.05),
            "series": "ATP250",
        }
    )
    slams = tour[features["tourney_level"].to_numpy() == "G"].drop(columns="series")
    slams = slams.assign(ps_p1=slams["b365_p1"] * 1.02, ps_p2=slams["b365_p2"] * 1.02)
    return tour, slams


def _write(warehouse: Path, values: dict[str, object]) -> None:
    warehouse.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        if isinstance(value, pd.DataFrame):
            value.to_parquet(warehouse / f"{name}.parquet", index=False)
        else:
            (warehouse / f"{name}.pickle").write_bytes(pickle.dumps(value))


def small_inputs(warehouse: Path, data: Path) -> None:
    """The upstream assets of the window followers, written where the warehouse IO manager reads them."""
    rng = np.random.default_rng(10)
    source = LocalDataSource(data)
    matches, _ = clean_matches(ingest(source, "atp_matches").frame, ingest(source, "atp_matches_qual_chall").frame)
    players = clean_players(ingest(source, "atp_players").frame)
    pbp = ingest(source, "pbp_matches").frame
    pbp = pbp[pbp["draw"] == "Main"]
    pbp = pbp.groupby(pd.to_datetime(pbp["date"]).dt.year, group_keys=False).sample(40, random_state=3)
    pbp_matched = match_full_names(
        pbp.reset_index(drop=True),
        ["server1", "server2"],
        "date",
        matches,
        players,
        index=PlayerIndex(matches, players),
        winner_col="winner",
        tournament_col="tny_name",
    )
    features = _features(matches, set(pbp_matched["match_id"].dropna()), rng)
    tour, slams = _odds(features, rng)
    xgboost = CandidateResult(
        "xgboost",
        "stub: only its tree count is read",
        "",
        "",
        {},
        {"log_loss": 0.6},
        SimpleNamespace(best_iteration=14),
    )
    _write(
        warehouse,
        {
            "matches": matches,
            "players": players,
            "pbp_matched": pbp_matched,
            "prematch_features": features,
            "odds_tour_matched": tour,
            "odds_slams_matched": slams,
            "prematch_candidates": [xgboost],
            "raw_slam_matches": ingest(source, "slam_matches").frame,
            "raw_slam_points": ingest(source, "slam_points").frame,
            "elo_ratings": pd.DataFrame({"match_id": pd.Series(dtype=str), "winner_elo_prob": pd.Series(dtype=float)}),
        },
    )


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        for var in [*SETTINGS.values(), FILE_VARIABLE]:
            env.delenv(var, raising=False)
        home = tmp_path_factory.mktemp("home")
        settings = settings_for(home, data_dir())
        args = cli.build_parser().parse_args(["pipeline", "--test-seasons", TEST_SEASONS])
        windows = cli.use_windows(args, settings)  # what `courtside pipeline --test-seasons` does first
        assert windows is not None
        small_inputs(settings.warehouse_dir, _mirror(tmp_path_factory.mktemp("data")))
        defs = build_definitions(settings)  # reads the windows the command line exported
        with dg.DagsterInstance.ephemeral() as instance:  # step timings: instance.get_run_step_stats
            result = dg.materialize(
                list(defs.assets),
                selection=FOLLOWERS,
                resources=defs.resources,
                instance=instance,
                raise_on_error=False,
                run_config=RUN_CONFIG,
            )
            stale = dg.materialize(
                list(build_definitions(settings, WindowSettings()).assets),
                selection=["prematch_backtest"],
                resources=build_definitions(settings, WindowSettings()).resources,
                instance=instance,
                raise_on_error=False,
            )
        yield settings, windows, result, stale


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def _runs(settings, experiment: str, where: str = "") -> list:
    client = MlflowClient(settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], where)


def test_every_window_follows_the_test_seasons(followed):
    settings, windows, result, _ = followed
    assert result.success
    assert (str(windows.train), str(windows.validation), str(windows.test)) == ("1991-2012", "2013", "2014-2015")

    model = result.output_for_node("model_dataset")
    seasons = model.groupby("split")["season"].agg(["min", "max"])
    assert seasons.loc["train"].tolist() == [1991, 2012] and seasons.loc["validation"].tolist() == [2013, 2013]
    assert seasons.loc["test"].tolist() == [2014, 2015]
    assert _meta(result, "model_dataset")["windows"]["test"] == TEST_SEASONS


def test_the_walk_forward_follows(followed):
    settings, _, result, _ = followed
    wf = result.output_for_node("walkforward_predictions")
    assert sorted(wf["season"].unique()) == list(range(2011, 2016))
    assert set(wf.loc[wf["split"] == "test", "season"]) == {2014, 2015}
    assert set(wf.loc[wf["split"] == "validation", "season"]) == {2011, 2012, 2013}
    folds = _meta(result, "walkforward_predictions")["summary"]["folds"]
    assert [f["first_season"] for f in folds] == list(range(2009, 2016))  # two warm-up folds, then every season
    report = (settings.home / "reports" / "walkforward.md").read_text()
    assert "test 2014-2015" in report and "walk-forward 2011-2015 (validation 2011-2013)" in report
    (run,) = _runs(settings, tracking.EVALUATION_EXPERIMENT, "tags.evaluation = 'walk-forward'")
    assert run.data.tags["windows.test"] == TEST_SEASONS and run.data.params["test_start"] == "2014"
    assert run.data.tags["windows.walkforward"] == "2011-2015"


def test_the_backtests_follow(followed):
    settings, _, result, _ = followed
    table = result.output_for_node("prematch_backtest")
    assert set(table["split"]) == {"validation", "test"} and table["bets"].sum() > 0
    assert _meta(result, "prematch_backtest")["windows"]["backtest_validation"] == "2011-2013"
    runs = _runs(settings, "tennis-backtests", "tags.backtest = 'prematch'")
    assert runs and all(
        r.data.params["validation_seasons"] == "2011-2013"
        and r.data.params["test_seasons"] == TEST_SEASONS
        and r.data.tags["windows.backtest_test"] == TEST_SEASONS
        for r in runs
    )
    by_season = pd.read_csv(settings.home / "reports" / "prematch_backtest_by_season.csv")
    assert set(by_season.loc[by_season["split"] == "test", "season"]) <= {2014, 2015}
    assert set(by_season.loc[by_season["split"] == "validation", "season"]) <= {2011, 2012, 2013}

    inplay = result.output_for_node("inplay_backtest")
    assert (inplay["matches"] > 0).all()
    replayed = _meta(result, "inplay_backtest")["replay_seasons"]
    assert replayed == {"pbp": TEST_SEASONS, "slam": "2014"}
    runs = _runs(settings, "tennis-backtests", "tags.backtest = 'inplay'")
    assert runs and all(json.loads(r.data.tags["windows.replayed"]) == replayed for r in runs)
    assert all(r.data.params["seasons"] == TEST_SEASONS for r in runs)
    assert "Replayed seasons by source" in (settings.home / "reports" / "inplay_backtest.md").read_text()


def test_the_inplay_prior_follows(followed):
    settings, _, result, _ = followed
    points = result.output_for_node("inplay_points")
    meta = _meta(result, "inplay_points")
    assert meta["windows"]["inplay_prior"] == "walk-forward 2011-2015"
    # in-play validation (2014) and test (2015) start from the walk-forward's test-window forecasts, made with
    # every choice fixed on 2011-2013; in-play training (2011-2013) from its validation seasons
    assert meta["prior_split_by_inplay_split"].keys() == {"train", "validation", "test"}
    assert set(meta["prior_split_by_inplay_split"]["train"]) == {"validation"}
    assert (
        set(meta["prior_split_by_inplay_split"]["validation"])
        == set(meta["prior_split_by_inplay_split"]["test"])
        == {"test"}
    )
    wf = result.output_for_node("walkforward_predictions").set_index("match_id")
    start = points[points["point"] == 0].set_index("match_id")
    p = 1 / (1 + np.exp(-start["prematch_logit"]))
    oriented = np.minimum(np.abs(p - wf.loc[start.index, "p_model"]), np.abs(p - (1 - wf.loc[start.index, "p_model"])))
    assert float(oriented.max()) < 1e-9  # the prior is the walk-forward's probability made with these windows
    runs = _runs(settings, "tennis-backtests")  # every run records every window, the in-play ones too
    assert runs and all(r.data.tags["windows.inplay_test"] == "2015" for r in runs)


def test_the_replay_follows(followed):
    settings, _, result, _ = followed
    catalog = result.output_for_node("replay_catalog")
    replayed = catalog[catalog["replay"]]
    assert set(zip(replayed["source"], replayed["season"], strict=True)) == {
        ("pbp", 2014),
        ("pbp", 2015),
        ("slam", 2014),
    }
    window = catalog.groupby("season")["window"].agg(lambda s: set(s))
    assert window[2012] == {"train"} and window[2013] == {"validation"} and window[2015] == {"test"}
    meta = _meta(result, "replay_catalog")
    assert meta["replay_seasons"] == {"pbp": TEST_SEASONS, "slam": "2014"}
    assert meta["replayed_by_window"] == {"test": len(replayed)}
    assert "1991-2012" in meta["seasons_in_model_training_window"]
    saved = pd.read_parquet(settings.warehouse_dir / "replay_catalog.parquet")
    assert set(choose(saved, "slam", 16)["season"]) == {2014}  # what `python -m feeds.live` publishes
    assert set(choose(saved, "pbp", 100)["season"]) <= {2014, 2015}


def test_a_table_made_with_other_windows_is_refused(followed):
    _, _, _, stale = followed
    assert not stale.success
    failure = next(e for e in stale.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert "walkforward_predictions has test rows of 2014-2015, outside the test seasons 2019-2021" in message
    assert "materialize walkforward_predictions again" in message
