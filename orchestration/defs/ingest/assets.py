"""Ingest: one asset per historical dataset. Good rows go on, rejected rows go to the quarantine
table with their reason, and the counts are in the asset's metadata."""

import dagster as dg
import pandas as pd

from feeds.historical import IngestResult, ingest
from orchestration.defs.shared.execution import CRITICAL_PATH, LONGEST_CHAIN
from orchestration.defs.shared.progress import reporter
from orchestration.defs.shared.resources import CourtsideResource
from storage.quarantine import QuarantinedRecord, replace_quarantine

CRITICAL = ("atp_matches", "atp_matches_qual_chall", "atp_players", "odds_tour", "odds_slams")
"""Datasets the clean tables and the modelling table (and so every model) wait for: ingested and checked first."""
FIRST = ("atp_matches", "atp_matches_qual_chall", "atp_players")
"""Of those, the ones the feature walk waits for (the head of the run's longest chain)."""


def priority(dataset: str) -> dict[str, str] | None:
    """The op tags of a dataset's ingest step and of its suite's check (``orchestration.defs.shared.execution``)."""
    return LONGEST_CHAIN if dataset in FIRST else CRITICAL_PATH if dataset in CRITICAL else None


DATASETS: dict[str, str] = {
    "atp_matches": "ATP tour-level main-draw results (Sackmann), one row a match.",
    "atp_matches_qual_chall": "ATP qualifying and Challenger results (Sackmann).",
    "atp_players": "ATP players: ids, names, hand, birth date, height (Sackmann).",
    "odds_tour": "Bet365 closing odds of every ATP tour-level match since late 2012 (tennis-data layout).",
    "odds_slams": "Grand Slam closing odds 2000-2021, Bet365 and Pinnacle among others (tennis-data.co.uk).",
    "pbp_matches": "ATP point-by-point sequences 2011-2015 (Sackmann tennis_pointbypoint).",
    "slam_matches": "Grand Slam matches with point-level logs (Sackmann tennis_slam_pointbypoint).",
    "slam_points": "Grand Slam point-level logs with elapsed time, one row a point.",
}


def ingest_metadata(result: IngestResult, quarantined: int) -> dict[str, dg.MetadataValue]:
    """Row counts, rejection counts by reason, per-file table and a sample of rejected rows."""
    files = pd.DataFrame([f.__dict__ for f in result.files])
    sample = pd.DataFrame([r.__dict__ for r in result.rejections[:10]])
    md_files = files.to_markdown(index=False) if not files.empty else "no files"
    md_sample = sample.to_markdown(index=False) if not sample.empty else "nothing rejected"
    return {
        "dagster/row_count": dg.MetadataValue.int(len(result.frame)),
        "rows": dg.MetadataValue.int(len(result.frame)),
        "rejected_rows": dg.MetadataValue.int(quarantined),
        "rejected_by_reason": dg.MetadataValue.json(result.rejected_by_reason),
        "values_removed_by_errata": dg.MetadataValue.int(len(result.corrections)),
        "files_read": dg.MetadataValue.int(sum(not f.missing for f in result.files)),
        "files_missing": dg.MetadataValue.int(sum(f.missing for f in result.files)),
        "files": dg.MetadataValue.md(md_files),
        "rejected_sample": dg.MetadataValue.md(md_sample),
        "data_version": dg.MetadataValue.text(result.data_version),
    }


def raw_asset(dataset: str, description: str) -> dg.AssetsDefinition:
    """The ingest asset of one dataset."""

    @dg.asset(
        name=f"raw_{dataset}",
        group_name="ingest",
        description=description,
        kinds={"pandas", "parquet"},
        op_tags=priority(dataset),
    )
    def _ingest(context: dg.AssetExecutionContext, courtside: CourtsideResource) -> dg.Output[pd.DataFrame]:
        result = ingest(courtside.source(), dataset, progress=reporter(context, f"read {dataset}"))
        records = [QuarantinedRecord(r.location, r.line, r.record, r.reason) for r in result.rejections]
        quarantined = replace_quarantine(courtside.engine, dataset, records)
        if result.rejections:
            context.log.warning(f"{dataset}: {len(result.rejections)} rows quarantined {result.rejected_by_reason}")
        return dg.Output(
            result.frame,
            data_version=dg.DataVersion(result.data_version[:16]),
            metadata=ingest_metadata(result, quarantined),
        )

    return _ingest


raw_assets = [raw_asset(name, text) for name, text in DATASETS.items()]
