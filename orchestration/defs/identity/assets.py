"""Player identity: bookmaker rows ("Surname I.") and point-by-point rows (full names) matched
to Sackmann player ids and matches."""

import dagster as dg
import pandas as pd

from features.identity import PlayerIndex, match_full_names, match_odds
from features.identity_reference import measure_against_reference
from features.odds_layout import odds_slams_neutral, odds_tour_neutral
from feeds.historical import ingest
from orchestration.defs.shared.execution import CRITICAL_PATH
from orchestration.defs.shared.resources import CourtsideResource


def _match_metadata(table: pd.DataFrame, id_cols: list[str]) -> dict:
    both = table[id_cols].notna().all(axis=1)
    methods = table["match_method"].fillna("none").str.split(":").str[0].value_counts()
    return {
        "dagster/row_count": len(table),
        "rows_with_both_ids": int(both.sum()),
        "rows_with_match": int(table["match_id"].notna().sum()),
        "match_rate": float(table["match_id"].notna().mean()) if len(table) else 0.0,
        "by_method": dg.MetadataValue.json({k: int(v) for k, v in methods.items()}),
        "unmatched_sample": dg.MetadataValue.md(
            table.loc[table["match_id"].isna()].head(10).to_markdown(index=False)
            if (~table["match_id"].notna()).any()
            else "none"
        ),
    }


@dg.asset(group_name="identity", kinds={"pandas", "parquet"}, op_tags=CRITICAL_PATH)
def odds_tour_matched(
    raw_odds_tour: pd.DataFrame, matches: pd.DataFrame, players: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Bet365 closing odds of tour-level matches with both players' Sackmann ids and the match."""
    table = match_odds(odds_tour_neutral(raw_odds_tour), matches, players)
    sample_cols = ["date", "tournament", "p1_name", "p2_name", "match_method"]
    meta = _match_metadata(table[[*sample_cols, "p1_id", "p2_id", "match_id"]], ["p1_id", "p2_id"])
    return dg.Output(table, metadata=meta)


def _slams_matched(
    courtside: CourtsideResource, odds: pd.DataFrame, matches: pd.DataFrame, players: pd.DataFrame, reference: str
) -> dg.Output[pd.DataFrame]:
    table = match_odds(odds_slams_neutral(odds), matches, players)
    sample_cols = ["date", "tournament", "p1_name", "p2_name", "match_method"]
    meta = _match_metadata(table[[*sample_cols, "p1_id", "p2_id", "match_id"]], ["p1_id", "p2_id"])
    mapping = ingest(courtside.source(), reference).frame
    if len(mapping):
        scores = measure_against_reference(table, mapping, matches)
        meta["identity_precision"] = float(scores["precision"])
        meta["identity_recall"] = float(scores["recall"])
        meta["reference_scores"] = dg.MetadataValue.json(
            {k: (round(v, 5) if isinstance(v, float) else v) for k, v in scores.items()}
        )
    else:
        meta["identity_precision"] = dg.MetadataValue.text("no reference available")
    return dg.Output(table, metadata=meta)


@dg.asset(group_name="identity", kinds={"pandas", "parquet"}, op_tags=CRITICAL_PATH)
def odds_slams_matched(
    courtside: CourtsideResource, raw_odds_slams: pd.DataFrame, matches: pd.DataFrame, players: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Grand Slam closing odds (Bet365, Pinnacle, ...) with Sackmann ids and match; precision and
    recall of the name matching measured against ``reference_name_mapping`` (measurement only)."""
    return _slams_matched(courtside, raw_odds_slams, matches, players, "reference_name_mapping")


@dg.asset(group_name="identity", kinds={"pandas", "parquet"})
def wta_odds_slams_matched(
    courtside: CourtsideResource, raw_wta_odds_slams: pd.DataFrame, wta_matches: pd.DataFrame, wta_players: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """WTA Grand Slam closing odds (Bet365, Pinnacle, ...) with Sackmann WTA ids and match, by the same matching as
    the men's; precision and recall measured against ``wta_reference_name_mapping`` (measurement only)."""
    return _slams_matched(courtside, raw_wta_odds_slams, wta_matches, wta_players, "wta_reference_name_mapping")


@dg.asset(group_name="identity", kinds={"pandas", "parquet"})
def pbp_matched(raw_pbp_matches: pd.DataFrame, matches: pd.DataFrame, players: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """ATP point-by-point sequences with both servers' Sackmann ids and the Sackmann match."""
    index = PlayerIndex(matches, players)
    table = match_full_names(
        raw_pbp_matches,
        ["server1", "server2"],
        "date",
        matches,
        players,
        index=index,
        winner_col="winner",
        tournament_col="tny_name",
    )
    meta = _match_metadata(
        table[["date", "tny_name", "server1", "server2", "match_method", "server1_id", "server2_id", "match_id"]],
        ["server1_id", "server2_id"],
    )
    return dg.Output(table, metadata=meta)
