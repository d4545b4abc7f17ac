"""The Great Expectations suite of each ingested dataset runs inside its ingest step (``assets.raw_asset``): the
screening that sets row-level defects aside needs the suite's failing rows, and one run of the suite serves both.
Its result is the asset's check ``gx_suite``. The suites of datasets that feed training are blocking: a systemic
failure (``expectations.screening``) stops every downstream asset of the run."""

GATES_TRAINING = {
    "atp_matches",
    "atp_matches_qual_chall",
    "atp_players",
    "odds_tour",
    "odds_slams",
    "wta_matches",
    "wta_players",
    "wta_odds_slams",
}
"""Datasets upstream of the pre-match models of either tour and their evaluation."""

GX_CHECK = "gx_suite"

FRESH_CHECK = "data_is_fresh"
"""The age of the newest record against ``expectations.freshness.TIMELINESS`` (a warning)."""
