"""Clean tables: every played match in true chronological order, and the players."""

import dagster as dg
import pandas as pd

from features.matches import WTA_LEVEL_FAMILY, clean_matches, clean_players
from orchestration.defs.shared.execution import LONGEST_CHAIN


@dg.asset(group_name="clean", kinds={"pandas", "parquet"}, op_tags=LONGEST_CHAIN)
def matches(raw_atp_matches: pd.DataFrame, raw_atp_matches_qual_chall: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Tour, qualifying and Challenger matches ordered by date, round and match number; walkovers
    dropped; retirements flagged; the exchange settlement outcome of each match."""
    return _clean_output(*clean_matches(raw_atp_matches, raw_atp_matches_qual_chall))


def _clean_output(table: pd.DataFrame, counts: dict[str, int]) -> dg.Output[pd.DataFrame]:
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
            "first_match": str(table["tourney_date"].min().date()),
            "last_match": str(table["tourney_date"].max().date()),
            "levels": dg.MetadataValue.json(
                table.groupby("tourney_level_source")["tourney_level"].first().sort_index().to_dict()
            ),
        },
    )


@dg.asset(group_name="clean", kinds={"pandas", "parquet"}, op_tags=LONGEST_CHAIN)
def players(raw_atp_players: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Players with parsed birth dates and full names."""
    table = clean_players(raw_atp_players)
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "with_birth_date": int(table["dob"].notna().sum()),
        },
    )


@dg.asset(group_name="clean", kinds={"pandas", "parquet"})
def wta_matches(raw_wta_matches: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """WTA matches in the same clean layout as the ATP's ``matches``: ordered, walkovers dropped, retirements
    flagged, the WTA's levels mapped onto the tiers the features know (``features.matches.WTA_LEVEL_FAMILY``)."""
    return _clean_output(*clean_matches(raw_wta_matches, None, "WTA", WTA_LEVEL_FAMILY))


@dg.asset(group_name="clean", kinds={"pandas", "parquet"})
def wta_players(raw_wta_players: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """WTA players with parsed birth dates and full names."""
    table = clean_players(raw_wta_players)
    return dg.Output(
        table,
        metadata={"dagster/row_count": len(table), "with_birth_date": int(table["dob"].notna().sum())},
    )
