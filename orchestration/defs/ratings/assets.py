"""Ratings: Elo overall and by surface as of each match."""

import dagster as dg
import numpy as np
import pandas as pd

from features.ratings import elo_history
from orchestration.defs.shared.progress import reporter
from training.metrics import log_loss


@dg.asset(group_name="ratings", kinds={"pandas", "parquet"})
def elo_ratings(context: dg.AssetExecutionContext, matches: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Both players' Elo ratings (overall and on the match's surface) just before each match,
    FiveThirtyEight K-schedule; with the Elo probability that the winner wins."""
    table = elo_history(matches, progress=reporter(context, "elo"))
    tour = matches["is_tour_main"].to_numpy() & matches["settles"].to_numpy()
    recent = tour & (matches["tourney_date"].dt.year >= matches["tourney_date"].dt.year.max() - 4).to_numpy()
    p = table.loc[recent, "winner_elo_prob"].clip(1e-9, 1)
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "players_rated": int(pd.unique(matches[["winner_id", "loser_id"]].to_numpy().ravel()).size),
            "recent_tour_accuracy": float((p > 0.5).mean()),
            "recent_tour_log_loss": log_loss(np.ones(len(p)), p.to_numpy()),  # the winner's probability: y = 1
        },
    )
