"""Pre-match features of every tour-level match, as of the moment before it starts, and the
player snapshot the live prediction service starts from."""

import dagster as dg
import pandas as pd

from features.prematch import FEATURES, build_prematch_features
from features.snapshot import PlayerSnapshot
from orchestration.defs.shared.execution import LONGEST_CHAIN
from orchestration.defs.shared.progress import reporter


class FeatureConfig(dg.Config):
    """Which matches get a feature row (all matches still feed the ratings and form)."""

    first_season: int = 1990
    """First season with feature rows (earlier matches only build up the players' history)."""


def _walk(
    context: dg.AssetExecutionContext,
    config: FeatureConfig,
    matches: pd.DataFrame,
    players: pd.DataFrame,
    features_out: str,
    snapshot_out: str,
):
    """The feature walk of one tour: its feature table, then the snapshot the prediction service starts from."""
    emit = matches["is_tour_main"] & (matches["tourney_date"].dt.year >= config.first_season)
    table, state = build_prematch_features(matches, players, emit, progress=reporter(context, "features"))
    missing = table[list(FEATURES)].isna().mean()
    yield dg.Output(
        table,
        output_name=features_out,
        metadata={
            "dagster/row_count": len(table),
            "features": dg.MetadataValue.json(list(FEATURES)),
            "matches_walked": state.matches_seen,
            "a_won_rate": float(table["a_won"].mean()),
            "most_missing": dg.MetadataValue.json(missing.sort_values(ascending=False).head(5).round(4).to_dict()),
        },
    )
    snapshot = PlayerSnapshot.build(state, matches, players)
    yield dg.Output(
        snapshot,
        output_name=snapshot_out,
        metadata={
            "as_of": str(snapshot.as_of.date()),
            "players_with_history": len(state.players),
            "players_ranked": len(snapshot.rank),
        },
    )


@dg.multi_asset(
    group_name="features",
    op_tags=LONGEST_CHAIN,
    outs={
        "prematch_features": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="One row per tour-level main-draw match since ``first_season``: player A vs "
            "player B (order independent of the result), label ``a_won``, and the features "
            "known before the match.",
        ),
        "player_snapshot": dg.AssetOut(
            kinds={"python"},
            description="Feature state after the last match, latest rankings and a name index: what "
            "the prediction service computes live features from.",
        ),
    },
)
def prematch_features(
    context: dg.AssetExecutionContext, config: FeatureConfig, matches: pd.DataFrame, players: pd.DataFrame
):
    yield from _walk(context, config, matches, players, "prematch_features", "player_snapshot")


@dg.multi_asset(
    group_name="features",
    outs={
        "wta_prematch_features": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="The same features for every WTA tour-level main-draw match since ``first_season``, walked "
            "over the women's own history (``tour_wta`` = 1).",
        ),
        "wta_player_snapshot": dg.AssetOut(
            kinds={"python"},
            description="The women's feature state after their last match: what ``/predict`` answers WTA "
            "questions from.",
        ),
    },
)
def wta_prematch_features(
    context: dg.AssetExecutionContext, config: FeatureConfig, wta_matches: pd.DataFrame, wta_players: pd.DataFrame
):
    yield from _walk(context, config, wta_matches, wta_players, "wta_prematch_features", "wta_player_snapshot")
