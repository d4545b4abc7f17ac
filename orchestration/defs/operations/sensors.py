"""Sensors: retrain when files in the data directory are added or changed; the streaming sensor
that tails the live event log."""

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
from sqlalchemy.engine import Engine

from orchestration.defs.features.seasons import FIRST_SEASON
from orchestration.defs.features.seasons import SEASONS as SEASONS_PARTITIONS
from orchestration.defs.operations.jobs import (
    live_checks_job,
    prematch_value_job,
    retrain_job,
    season_update_job,
    settlement_job,
)
from orchestration.defs.shared.resources import CourtsideResource


def fingerprint_digest(fingerprint: dict[str, str]) -> str:
    """One short token for the state of every file in the data directory."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


RESULTS_FILE = re.compile(r"(?:^|/)(atp|wta)_matches_(?:qual_chall_)?(\d{4})\.csv(?:\.gz)?$")
"""A season's results file of a tour (Sackmann's ``atp_matches_2024.csv``, ``wta_matches_2024.csv``, ...)."""
PLAYERS_FILE = re.compile(r"(?:^|/)(atp|wta)_players\.csv(?:\.gz)?$")
"""A tour's player register: its facts (birth dates, heights, hands) are features of every season."""


def earliest_season(data_dir: str, name: str) -> int | None:
    """The first season partition a results file holds: its earliest ``tourney_date`` year (a season file starts
    in the last days of the year before); None when it is gone or cannot be read."""
    try:
        dates = pd.read_csv(Path(data_dir) / name, usecols=["tourney_date"])["tourney_date"]
        return int(pd.to_numeric(dates, errors="coerce").min()) // 10000
    except Exception:  # gone, half-copied, broken: its ingest says why
        return None


def touched_seasons(data_dir: str, changed: list[str], known: dict[str, int]) -> dict[str, int]:
    """The first season partition each tour's changed files touch -- for a results file the earliest season it
    holds now or held before (``known``: the cursor's), else the year before its own; for a player register, the
    first season. Every later season follows from it (each starts from the previous one's state)."""
    first: dict[str, int] = {}
    for name in changed:
        if found := PLAYERS_FILE.search(name):
            first[found.group(1)] = FIRST_SEASON
            continue
        if not (found := RESULTS_FILE.search(name)):
            continue
        tour, year = found.group(1), int(found.group(2))
        candidates = [y for y in (earliest_season(data_dir, name), known.get(name)) if y is not None]
        season = min(candidates) if candidates else year - 1
        first[tour] = min(first.get(tour, season), season)
    return first


def results_seasons(data_dir: str, files: dict[str, str], known: dict[str, int]) -> dict[str, int]:
    """The earliest season of every results file (read only for files not in ``known``): the sensor's cursor."""
    out = {}
    for name in files:
        if RESULTS_FILE.search(name):
            season = known.get(name) if name in known else earliest_season(data_dir, name)
            if season is not None:
                out[name] = season
    return out


def season_requests(
    context: dg.SensorEvaluationContext, data_dir: str, changed: list[str], known: dict[str, int], digest: str
) -> list[dg.RunRequest]:
    """One ``season_update`` run per tour whose results changed: its touched seasons through the current one."""
    current = int(SEASONS_PARTITIONS.get_last_partition_key() or 0)
    graph = context.repository_def.asset_graph if context.repository_def else None
    requests = []
    for tour, first in sorted(touched_seasons(data_dir, changed, known).items()):
        first = max(first, FIRST_SEASON)
        if graph is None or first > current:
            continue
        selection = dg.AssetSelection.assets(f"{tour}_season_features").upstream().resolve(graph)
        requests.append(
            dg.RunRequest(
                run_key=f"seasons-{tour}-{digest}",
                job_name=season_update_job.name,
                asset_selection=sorted(selection),
                tags={
                    "dagster/asset_partition_range_start": str(first),
                    "dagster/asset_partition_range_end": str(current),
                },
            )
        )
    return requests


@dg.sensor(
    jobs=[retrain_job, season_update_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s: a file of the data folder added, changed or removed -> the retrain "
    "(retrain_prematch), and season_update for the seasons a changed results or player file touches (a new week: "
    "the current season's partition only). Its first look only records the files.",
)
def data_files_changed(context: dg.SensorEvaluationContext, courtside: CourtsideResource) -> dg.SensorResult:
    """Requests a retrain when a file in COURTSIDE_DATA_DIR is added, removed or modified, and a ``season_update``
    of the seasons a changed results file touches (a new week: the current season's partition only).

    The cursor holds the fingerprint (size and modification time of every file) last seen; the
    first evaluation only records it, because ``make up`` has just run the pipeline on those files.
    """
    current = courtside.source().fingerprint()
    if not current:
        return dg.SensorResult(skip_reason="data source has no local files to watch (upstream URLs)")
    digest = fingerprint_digest(current)
    data_dir = courtside.data_dir
    if context.cursor is None:
        seasons = results_seasons(data_dir, current, {})
        return dg.SensorResult(
            cursor=json.dumps({"digest": digest, "files": current, "seasons": seasons}),
            skip_reason=f"recorded {len(current)} files",
        )
    previous = json.loads(context.cursor)
    if previous["digest"] == digest:
        return dg.SensorResult(skip_reason="no file changed")
    before = previous.get("files", {})
    known = previous.get("seasons", {})
    changed = sorted(k for k in set(current) | set(before) if current.get(k) != before.get(k))
    context.log.info(f"{len(changed)} data files changed: {changed[:10]}")
    unchanged = {k: v for k, v in known.items() if k not in changed}
    seasons = results_seasons(data_dir, current, unchanged)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"data-{digest}",
                job_name=retrain_job.name,
                tags={"courtside/changed_files": ",".join(changed[:20])[:1000]},
            ),
            *season_requests(context, data_dir, changed, known, digest),
        ],
        cursor=json.dumps({"digest": digest, "files": current, "seasons": seasons}),
    )


LIVE_CHECK_EVERY_EVENTS = 2000
"""A live data-check batch is requested once this many log entries are new..."""
LIVE_CHECK_EVERY_S = 60.0
"""...or this long after the last batch, whichever comes first (when anything is new)."""


def _busy(context: dg.SensorEvaluationContext, job_name: str) -> bool:
    """A run of the job is queued or in progress (its assets would see the new events anyway)."""
    runs = context.instance.get_runs(
        dg.RunsFilter(
            job_name=job_name,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    return bool(runs)


def new_log_entries(
    engine: Engine,
    after: int,
    newest: int,
    kinds: list[str],
    wanted: Callable[[dict], bool],
    page: int = 100_000,
) -> list[int]:
    """Ids of EVERY log entry in (after, newest] of one of ``kinds`` whose payload is ``wanted``, oldest first, read
    page by page; the caller's cursor may then move to ``newest``.

    ``newest`` must be ``last_event_id()`` read before: entry ids are in commit order
    (``storage.live.LOG_WRITE_LOCK_KEY``), so every entry up to it is visible already or never will be, and moving the
    cursor there passes over nothing. An entry above it (committed since) is left for the next tick."""
    from storage.live import events_after

    hits: list[int] = []
    while after < newest:
        rows = events_after(engine, after, kinds=kinds, limit=page)
        hits.extend(i for i, _, _, _, _, p in rows if i <= newest and wanted(p))
        if len(rows) < page:  # a full page: more may follow (not a reason to jump to newest)
            break
        after = rows[-1][0]
    return hits


@dg.sensor(
    jobs=[prematch_value_job, settlement_job, live_checks_job],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="The streaming sensor, every 5 s: tails the live event log and requests the pre-match value scan "
    "(new pre-match odds), settlement and the P&L (finished matches), and the Great Expectations batch of the new "
    "entries; never two runs of one job at a time.",
)
def live_event_log(context: dg.SensorEvaluationContext, courtside: CourtsideResource) -> dg.SensorResult:
    """The streaming sensor: tails the live event log by id (the cursor) and requests runs —
    a pre-match value scan when new pre-match odds arrive, settlement (and the P&L) when matches
    finish, and a Great Expectations batch over the new entries. A job already queued or running
    is not requested again: its cursor stays, so the next tick asks once it is done."""
    from storage.live import last_event_id

    state = json.loads(context.cursor) if context.cursor else {}
    newest = last_event_id(courtside.engine)
    if state.get("newest", 0) > newest:  # the live tables were reset (a fresh paper session)
        state = {}
    requests, notes = [], []
    for job, key, kinds, wanted in (
        (
            prematch_value_job,
            "prematch",
            ["MARKET_UPDATE"],
            lambda p: not p.get("in_play") and p.get("status") == "OPEN",
        ),
        (settlement_job, "settle", ["MATCH_FINISHED"], lambda p: True),
    ):
        after = state.get(key, 0)
        if after >= newest:
            continue
        hits = new_log_entries(courtside.engine, after, newest, kinds, wanted)
        if not hits:
            state[key] = newest
        elif _busy(context, job.name):
            notes.append(f"{job.name} busy")
        else:
            requests.append(
                dg.RunRequest(
                    run_key=f"{key}-{hits[-1]}", job_name=job.name, tags={"courtside/after_event": str(after)}
                )
            )
            notes.append(f"{job.name}: {len(hits)} new")
            state[key] = newest
    after = state.get("checks", 0)
    state.setdefault("checked_at", time.time())  # the first tick starts the clock
    waited = time.time() - state["checked_at"] >= LIVE_CHECK_EVERY_S
    if newest > after and (newest - after >= LIVE_CHECK_EVERY_EVENTS or waited):
        if _busy(context, live_checks_job.name):
            notes.append("live_data_checks busy")
        else:
            requests.append(
                dg.RunRequest(
                    run_key=f"checks-{newest}",
                    job_name=live_checks_job.name,
                    run_config={"ops": {"live_event_batch": {"config": {"after_id": after, "upto_id": newest}}}},
                )
            )
            notes.append(f"live checks on entries {after + 1}..{newest}")
            state["checks"], state["checked_at"] = newest, time.time()
    state["newest"] = newest
    skip = None if requests else f"log at entry {newest}: {', '.join(notes) or 'nothing new'}"
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(state), skip_reason=skip)


DRIFT_ASSETS = ("prematch_feature_drift", "live_calibration_drift")


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 60 s: a drift asset's newest measurement says drifted (pre-match features beyond the PSI "
    "limit, live calibration beyond its limit) -> the retrain of the pre-match and in-play models, once for each "
    "data version or model judged.",
)
def drift_retrain(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Requests the retrain (pre-match and in-play models) when a drift asset's newest materialization says
    ``drifted`` (``training.drift``: features beyond the PSI limit, or live calibration beyond its limit) — once for
    each thing judged (``judged``: the data version measured, the in-play model measured), since measuring the same
    data or model again gives the same drift; one retrain at a time, one request a tick."""
    state = json.loads(context.cursor) if context.cursor else {}
    seen, asked = state.get("seen", {}), state.get("asked", {})
    requests, notes = [], []
    for name in DRIFT_ASSETS:
        records = context.instance.fetch_materializations(dg.AssetKey(name), limit=1).records
        event = records[0] if records else None
        if event is None or event.storage_id <= seen.get(name, 0):
            continue
        seen[name] = event.storage_id
        metadata = event.asset_materialization.metadata if event.asset_materialization else {}
        drifted, judged = metadata.get("drifted"), metadata.get("judged")
        judged_value = str(judged.value) if judged is not None else str(event.storage_id)
        if drifted is None or not drifted.value:
            notes.append(f"{name}: no drift")
            continue
        if asked.get(name) == judged_value:
            notes.append(f"{name}: drift on {judged_value} already asked for a retrain")
            continue
        if requests or _busy(context, retrain_job.name):
            seen[name] = event.storage_id - 1  # asked at the next tick, once this retrain is done
            notes.append(f"{name} drifted; a retrain is already on its way")
            continue
        detail = metadata.get("drifted_features") or metadata.get("calibration_error")
        requests.append(
            dg.RunRequest(
                run_key=f"drift-{name}-{event.storage_id}",
                tags={
                    "courtside/reason": f"drift: {name}",
                    "courtside/drift": str(detail.value if detail else "")[:500],
                },
            )
        )
        asked[name] = judged_value
        notes.append(f"{name} drifted on {judged_value}: retrain requested")
    skip = None if requests else "; ".join(notes) or "no new drift measurement"
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"seen": seen, "asked": asked}), skip_reason=skip)
