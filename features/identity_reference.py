"""Our Grand Slam matching (``features.identity.match_odds`` on ``features.odds_layout.odds_slams_neutral``
rows) scored against the reference mapping shipped with the data: a measuring stick only, never an input
of the matching."""

from __future__ import annotations

import pandas as pd


def compare_with_reference(matched_slams: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The reference rows (``Date, Winner, Loser, winner_id, loser_id, match_id``) joined with our
    matched slam rows on (date, p1_name, p2_name); our columns are ``our_p1_id``, ``our_p2_id``,
    ``our_match_id``, ``match_method`` (null when the row is absent from ``matched_slams``)."""
    ours = matched_slams[["date", "p1_name", "p2_name", "p1_id", "p2_id", "match_id", "match_method"]].rename(
        columns={
            "date": "Date",
            "p1_name": "Winner",
            "p2_name": "Loser",
            "p1_id": "our_p1_id",
            "p2_id": "our_p2_id",
            "match_id": "our_match_id",
        }
    )
    ours = ours.drop_duplicates(["Date", "Winner", "Loser"])
    ref = reference[["Date", "Winner", "Loser", "winner_id", "loser_id", "tourney_id", "match_id"]]
    return ref.merge(ours, on=["Date", "Winner", "Loser"], how="left")


def measure_against_reference(
    matched_slams: pd.DataFrame,
    reference: pd.DataFrame,
    matches: pd.DataFrame | None = None,
) -> dict[str, float | int]:
    """Score our slam matching against the reference mapping (a measuring stick, never an input).

    Player level, over both players of every reference row: ``precision`` = correct ids / ids we
    assigned, ``recall`` = correct ids / reference ids. Match level: ``match_precision`` /
    ``match_recall`` of ``match_id`` equality. With ``matches`` (Sackmann, as for
    ``features.identity.match_odds``), the same figures are also given (``consistent_*``) over the reference
    rows that Sackmann confirms, i.e. whose two ids did meet in the reference's ``tourney_id``:
    the reference has rows that point at unrelated Futures matches and at renumbered matches.
    """
    joined = compare_with_reference(matched_slams, reference)
    out: dict[str, float | int] = {
        "reference_rows": len(joined),
        "rows_found": int(joined["match_method"].notna().sum()),
    }
    out.update(_scores(joined, ""))
    if matches is not None:
        m = matches.loc[:, ["tourney_id", "winner_id", "loser_id", "match_id"]]
        pair_in_tourney = (
            pd.concat(
                [
                    m[["tourney_id", "winner_id", "loser_id", "match_id"]],
                    m.rename(columns={"winner_id": "loser_id", "loser_id": "winner_id"})[
                        ["tourney_id", "winner_id", "loser_id", "match_id"]
                    ],
                ]
            )
            .rename(columns={"match_id": "sackmann_match_id"})
            .drop_duplicates(["tourney_id", "winner_id", "loser_id"])
        )
        checked = joined.merge(pair_in_tourney, on=["tourney_id", "winner_id", "loser_id"], how="left")
        consistent = checked.loc[checked["sackmann_match_id"].notna()].copy()
        consistent["match_id"] = consistent["sackmann_match_id"]
        out["consistent_reference_rows"] = len(consistent)
        out.update(_scores(consistent, "consistent_"))
    return out


def _scores(joined: pd.DataFrame, prefix: str) -> dict[str, float | int]:
    ours = pd.concat([joined["our_p1_id"], joined["our_p2_id"]], ignore_index=True)
    ref = pd.concat([joined["winner_id"], joined["loser_id"]], ignore_index=True)
    assigned = ours.notna()
    correct = assigned & ref.notna() & (ours.astype("Int64") == ref.astype("Int64")).fillna(False)
    n_ref = int(ref.notna().sum())
    m_ours = joined["our_match_id"].astype("string")
    m_ref = joined["match_id"].astype("string")
    m_assigned = m_ours.notna()
    m_correct = m_assigned & (m_ours == m_ref).fillna(False)
    n_mref = int(m_ref.notna().sum())
    return {
        f"{prefix}ids_reference": n_ref,
        f"{prefix}ids_assigned": int(assigned.sum()),
        f"{prefix}ids_correct": int(correct.sum()),
        f"{prefix}precision": float(correct.sum() / max(int(assigned.sum()), 1)),
        f"{prefix}recall": float(correct.sum() / max(n_ref, 1)),
        f"{prefix}matches_reference": n_mref,
        f"{prefix}matches_assigned": int(m_assigned.sum()),
        f"{prefix}matches_correct": int(m_correct.sum()),
        f"{prefix}match_precision": float(m_correct.sum() / max(int(m_assigned.sum()), 1)),
        f"{prefix}match_recall": float(m_correct.sum() / max(n_mref, 1)),
    }
