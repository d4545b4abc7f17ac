"""Ingest: one asset per historical dataset. Rows that cannot be read, rows named by the reviewed errata, and the
row-level defects the data checks find (``expectations.screening``) go to the quarantine table with their reason;
the good rows go on; the counts, the quality gate and the errata proposed are in the asset's metadata. The
dataset's suite runs in the same step and reports as its check ``gx_suite`` (blocking for the training inputs)."""

import csv
import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd

from expectations.freshness import TIMELINESS, timeliness
from expectations.propose_errata import ProposedErratum
from expectations.screening import Screened, screen
from expectations.suites import SUITES, validate_dataset
from feeds.historical import IngestResult, ingest, load_errata
from orchestration.defs.ingest.checks import FRESH_CHECK, GATES_TRAINING, GX_CHECK
from orchestration.defs.shared.execution import CRITICAL_PATH, LONGEST_CHAIN
from orchestration.defs.shared.gx import check_result
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
    "wta_matches": "WTA tour-level main-draw results 1968 on (Sackmann tennis_wta), one row a match.",
    "wta_players": "WTA players: ids, names, hand, birth date, height (Sackmann).",
    "wta_odds_slams": "WTA Grand Slam closing odds 2007 on, Bet365 and Pinnacle among others (tennis-data.co.uk).",
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


def screening_metadata(screened: Screened) -> dict[str, dg.MetadataValue]:
    proposed = pd.DataFrame(
        [
            {"key": e.key, "column": e.column or "", "reason": e.reason, "row": f"{e.source_file}:{e.source_line}"}
            for e in screened.proposed[:20]
        ]
    )
    return {
        "set_aside_by_data_checks": dg.MetadataValue.int(len(screened.set_aside)),
        "values_removed_by_data_checks": dg.MetadataValue.int(len(screened.values_removed)),
        "errata_proposed": dg.MetadataValue.int(len(screened.proposed)),
        "errata_proposed_sample": dg.MetadataValue.md(
            proposed.to_markdown(index=False) if not proposed.empty else "none"
        ),
        "values_removed_sample": dg.MetadataValue.md(
            pd.DataFrame([r.__dict__ for r in screened.values_removed[:20]]).to_markdown(index=False)
            if screened.values_removed
            else "none"
        ),
        "quality_gate": dg.MetadataValue.json(screened.gate.as_metadata()),
        "systemic_failures": dg.MetadataValue.json(list(screened.systemic)),
    }


def write_proposals(folder: str, dataset: str, proposed: tuple[ProposedErratum, ...]) -> None:
    """The errata this ingest proposes, for review (``courtside errata``), each under a comment naming its row; none:
    the file goes."""
    if not folder:
        return
    path = Path(folder) / f"{dataset}.csv"
    if not proposed:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["dataset", "key", "column", "reason"])
        for e in proposed:
            fh.write(f"# {e.source_file}:{e.source_line}\n")
            writer.writerow([e.dataset, e.key, e.column or "", e.reason])


def _files_last_time(context: dg.AssetExecutionContext) -> list[str]:
    """The files the previous ingest of this asset read (none before the first, or before the list was kept)."""
    records = context.instance.fetch_materializations(context.asset_key, limit=1).records
    materialization = records[0].asset_materialization if records else None
    names = materialization.metadata.get("file_names") if materialization else None
    return list(names.value) if names is not None else []


def raw_asset(dataset: str, description: str) -> dg.AssetsDefinition:
    """The ingest asset of one dataset, with its suite as its check."""
    checked = dataset in SUITES
    dated = dataset in TIMELINESS
    specs = (
        [
            dg.AssetCheckSpec(
                FRESH_CHECK,
                asset=f"raw_{dataset}",
                description=f"The newest record is at most {TIMELINESS[dataset].max_age_days} days old "
                "(expectations.freshness.TIMELINESS; a warning)",
            )
        ]
        if dated
        else []
    )
    specs += (
        [
            dg.AssetCheckSpec(
                GX_CHECK,
                asset=f"raw_{dataset}",
                blocking=dataset in GATES_TRAINING,
                description=f"Great Expectations suite '{dataset}' (schema, types, ranges, uniqueness, allowed values, "
                "row counts): row-level defects are set aside at ingest; a systemic failure fails the check"
                + (" - blocking: gates training." if dataset in GATES_TRAINING else "."),
            )
        ]
        if checked
        else []
    )

    @dg.asset(
        name=f"raw_{dataset}",
        group_name="ingest",
        description=description,
        kinds={"pandas", "parquet"},
        op_tags=priority(dataset),
        check_specs=specs,
        # ingested at least weekly (the weekly retrain, or the data sensor): a source not read for longer is overdue
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=8)),
    )
    def _ingest(context: dg.AssetExecutionContext, courtside: CourtsideResource):
        source = courtside.source()
        errata = load_errata(courtside.errata_path())
        result = ingest(source, dataset, progress=reporter(context, f"read {dataset}"), errata=errata)
        screened = screen(dataset, result.frame, source) if checked else None
        rejections = list(result.rejections) + (screened.set_aside if screened else [])
        records = [QuarantinedRecord(r.location, r.line, r.record, r.reason) for r in rejections]
        quarantined = replace_quarantine(courtside.engine, dataset, records)
        if screened is not None and screened.set_aside:
            context.log.warning(
                f"{dataset}: {len(screened.set_aside)} rows set aside by the data checks "
                f"({len(screened.proposed)} errata proposed in {courtside.proposed_errata_dir})"
            )
        if result.rejections:
            context.log.warning(f"{dataset}: {len(result.rejections)} rows quarantined {result.rejected_by_reason}")
        frame = screened.frame if screened is not None else result.frame
        read = sorted(f.name for f in result.files if not f.missing)
        vanished = sorted(set(_files_last_time(context)) - set(read))
        if vanished:
            context.log.error(f"{dataset}: {len(vanished)} files read last time are gone: {vanished[:10]}")
        metadata = ingest_metadata(result, quarantined)
        metadata["file_names"] = dg.MetadataValue.json(read)
        metadata["files_vanished"] = dg.MetadataValue.json(vanished)
        metadata["dagster/row_count"] = metadata["rows"] = dg.MetadataValue.int(len(frame))
        if screened is not None:
            metadata.update(screening_metadata(screened))
            write_proposals(courtside.proposed_errata_dir, dataset, screened.proposed)
        yield dg.Output(frame, data_version=dg.DataVersion(result.data_version[:16]), metadata=metadata)
        found = timeliness(dataset, frame)
        if found is not None:
            yield dg.AssetCheckResult(
                check_name=FRESH_CHECK,
                passed=found.fresh,
                severity=dg.AssetCheckSeverity.WARN,
                description=None
                if found.fresh
                else f"the newest record is {found.newest}: {found.age_days} days old (limit {found.max_age_days})",
                metadata={
                    "newest_record": found.newest or "none",
                    "age_days": found.age_days if found.age_days is not None else -1,
                    "max_age_days": found.max_age_days,
                },
            )
        if screened is not None:
            # the suite on what goes on: clean unless the failure is systemic (then everything was kept, and it fails)
            verdict = validate_dataset(dataset, frame) if (screened.set_aside or screened.values_removed) else None
            yield check_result(
                verdict if verdict is not None else screened.result,
                GX_CHECK,
                also_failed=f"files read last time are gone: {', '.join(vanished[:10])}" if vanished else None,
                files_vanished=dg.MetadataValue.json(vanished),
                systemic_failures=dg.MetadataValue.json(list(screened.systemic)),
                set_aside_by_data_checks=len(screened.set_aside),
                quality_gate=dg.MetadataValue.json(screened.gate.as_metadata()),
            )

    return _ingest


raw_assets = [raw_asset(name, text) for name, text in DATASETS.items()]


@dg.asset(group_name="ingest", kinds={"pandas"}, deps=[a.key for a in raw_assets])
def errata_proposals(courtside: CourtsideResource) -> dg.Output[pd.DataFrame]:
    """Every erratum the data checks proposed at this ingest, with the row it names (``source``), for review: accept
    them with ``courtside errata accept [dataset ...]`` (they go to the reviewed errata file, and the next ingest sets
    those rows aside as reviewed)."""
    rows = []
    folder = Path(courtside.proposed_errata_dir) if courtside.proposed_errata_dir else None
    for path in sorted(folder.glob("*.csv")) if folder is not None and folder.is_dir() else []:
        where = None
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            if line.startswith("# "):
                where = line[2:]
                continue
            (dataset, key, column, reason) = next(csv.reader([line]))
            rows.append({"dataset": dataset, "key": key, "column": column, "reason": reason, "source": where})
    table = pd.DataFrame(rows, columns=["dataset", "key", "column", "reason", "source"])
    return dg.Output(
        table,
        metadata={
            "proposed": len(table),
            "by_dataset": dg.MetadataValue.json(table["dataset"].value_counts().to_dict()),
            "proposals": dg.MetadataValue.md(table.head(50).to_markdown(index=False) if len(table) else "none"),
            "accept_with": "courtside errata accept [dataset ...]",
        },
    )
