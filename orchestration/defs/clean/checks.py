"""Checks on the clean tables: key uniqueness, chronological order, referential integrity."""

import dagster as dg
import pandas as pd

from orchestration.defs.clean.assets import matches as matches_asset
from orchestration.defs.shared.execution import LONGEST_CHAIN


@dg.asset_check(asset=matches_asset, blocking=True, additional_ins={"players": dg.AssetIn()}, op_tags=LONGEST_CHAIN)
def matches_are_consistent(matches: pd.DataFrame, players: pd.DataFrame) -> dg.AssetCheckResult:
    """match_id unique; order strictly increasing; rounds never go backwards inside a tournament;
    every winner and loser id is a known player (referential integrity)."""
    known = set(players["player_id"].astype("int64"))
    unknown = matches[~matches["winner_id"].isin(known) | ~matches["loser_id"].isin(known)]
    rounds_ok = matches.groupby("tourney_id", sort=False)["round_order"].apply(lambda s: s.is_monotonic_increasing)
    problems = {
        "duplicate_match_ids": int(matches["match_id"].duplicated().sum()),
        "order_not_increasing": int((matches["order"].diff().fillna(1) <= 0).sum()),
        "tournaments_with_rounds_out_of_order": int((~rounds_ok).sum()),
        "rows_with_unknown_player": len(unknown),
    }
    return dg.AssetCheckResult(
        passed=not any(problems.values()),
        metadata={
            **problems,
            "unknown_player_examples": dg.MetadataValue.md(
                unknown[["match_id", "winner_id", "loser_id", "source_file", "source_line"]]
                .head(5)
                .to_markdown(index=False)
                if len(unknown)
                else "none"
            ),
        },
    )
