"""Pre-match features of every tour-level match, as of the moment before it starts."""


import dagster as dg
import pandas as pd

from features.prematch import FEATURES, build_prematch_features
from orchestration.defs.shared.progress import reporter


class FeatureConfig(dg.Config):
    """Which matches get a feature row (all matches still feed the ratings and form)."""

    first_season: int = 1990
    """First season with feature rows (earlier matches only build up the players' history)."""


@dg.asset(group_name="features", kinds={"pandas", "parquet"})
def prematch_features(context: dg.AssetExecutionContext, config: FeatureConfig,
                      matches: pd.DataFrame, players: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """One row per tour-level main-draw match since ``first_season``: player A vs player B (order
    independent of the result), label ``a_won``, and the features known before the match."""
    emit = matches["is_tour_main"] & (matches["tourney_date"].dt.year >= config.first_season)
    table, state = build_prematch_features(matches, players, emit, progress=reporter(context, "features"))
    missing = table[list(FEATURES)].isna().mean()
    return dg.Output(table, metadata={
        "dagster/row_count": len(table),
        "features": dg.MetadataValue.json(list(FEATURES)),
        "matches_walked": state.matches_seen,
        "a_won_rate": float(table["a_won"].mean()),
        "most_missing": dg.MetadataValue.json(missing.sort_values(ascending=False).head(5).round(4).to_dict()),
    })
